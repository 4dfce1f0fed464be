"""Console pages: the delivery log (filters, exact recipient search, pages) and a message's detail."""

from __future__ import annotations

import json
from datetime import date

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from accounts.permissions import refuse_if_suspended
from drake.errors import ApiError
from relay import actions, ratelimits
from relay.models import ApiRequest, Message, Status
from relay.validation import parse_send_request, with_ascii_domain

PAGE_SIZE = 50


def _date(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


def _as_stored(address: str) -> str:
    """An address as the log holds it (relay.validation writes its domain in IDNA)."""
    try:
        return with_ascii_domain(address)
    except UnicodeError:
        return address


@login_required
def message_log(request: HttpRequest) -> HttpResponse:
    messages = Message.objects.for_account(request.user).select_related("sender")
    status = request.GET.get("status", "")
    if status in Status.values:
        messages = messages.filter(status=status)
    start, end = _date(request.GET.get("from")), _date(request.GET.get("to"))
    if start:
        messages = messages.filter(created_at__date__gte=start)
    if end:
        messages = messages.filter(created_at__date__lte=end)
    recipient = request.GET.get("recipient", "").strip()
    if recipient:
        # Exact match on one stored address: the JSON text holds each one quoted.
        messages = messages.filter(to__icontains=json.dumps(_as_stored(recipient)))
    page = Paginator(messages, PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "relay/log.html",
        {
            "page": page,
            "statuses": Status.values,
            "filters": {"status": status, "from": start, "to": end, "recipient": recipient},
            "query": query.urlencode(),
        },
    )


@login_required
def message_detail(request: HttpRequest, message_id: str) -> HttpResponse:
    message = get_object_or_404(
        Message.objects.for_account(request.user).select_related("sender"), public_id=message_id
    )
    return render(request, "relay/detail.html", {"message": message, "attempts": message.attempt_log.all()})


REQUEST_STATUS_CHOICES = (
    ("2xx", "Success (2xx)"),
    ("4xx", "Client errors (4xx)"),
    ("429", "Rate limited (429)"),
    ("5xx", "Server errors (5xx)"),
)


@login_required
def request_log(request: HttpRequest) -> HttpResponse:
    requests = ApiRequest.objects.filter(user=request.user)
    status = request.GET.get("status", "")
    if status in ("2xx", "4xx", "5xx"):
        low = int(status[0]) * 100
        requests = requests.filter(status__gte=low, status__lt=low + 100)
    elif status.isascii() and status.isdigit() and len(status) == 3:  # "²" is a digit to isdigit()
        requests = requests.filter(status=int(status))
    page = Paginator(requests, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request, "relay/requests.html", {"page": page, "status": status, "status_choices": REQUEST_STATUS_CHOICES}
    )


@login_required
@require_POST
def send_test(request: HttpRequest, sender_id: str) -> HttpResponse:
    """Send a test message to the customer's own address through the real relay path."""
    from senders.models import Sender

    sender = get_object_or_404(Sender.objects.for_account(request.user), public_id=sender_id)
    try:
        # Suspension stops the account's sending (its API keys get 403, its queue waits): the
        # console's button is a send too. It queued, charged the quota, then waited.
        refuse_if_suspended(request.user)
        ratelimits.check_console(request.user)
        # Through the API's own validation: the account's address as the wire and the log
        # take it (an internationalized domain in IDNA; built past it, the message could not
        # be delivered, and the log's search could not find it).
        test = parse_send_request(
            {
                "sender": sender.public_id,
                "to": request.user.email,
                "subject": "3drake test message",
                "text": "This is a test message sent through 3drake. If you can read it, your sender works.",
            }
        )
        message, _ = actions.accept_message(request.user, test, size=len(test.text or ""))
    except ApiError as error:
        messages.error(request, f"Not sent: {error.message}")
        return redirect("senders:detail", sender_id=sender.public_id)
    messages.success(request, f"Test message queued to {request.user.email}.")
    return redirect("relay:detail", message_id=message.public_id)
