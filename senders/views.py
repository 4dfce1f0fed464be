"""Console pages for senders: list, connect, detail (settings, verify) and delete."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods, require_POST

from drake.errors import PermissionDenied, RateLimited
from relay import ratelimits
from senders import actions
from senders.forms import SenderForm, SenderSettingsForm
from senders.models import Sender
from senders.presets import PRESETS
from senders.validation import ConfigError


def _get(request: HttpRequest, sender_id: str) -> Sender:
    return get_object_or_404(Sender.objects.for_account(request.user), public_id=sender_id)


@login_required
def sender_list(request: HttpRequest) -> HttpResponse:
    return render(request, "senders/list.html", {"senders": Sender.objects.for_account(request.user)})


@sensitive_post_parameters("password")
@login_required
@require_http_methods(["GET", "POST"])
def sender_new(request: HttpRequest) -> HttpResponse:
    form = SenderForm(request.POST or None, initial={"from_email": request.user.email})
    if request.method == "POST" and form.is_valid():
        data = {k: v for k, v in form.cleaned_data.items() if v not in ("", None)}
        try:
            sender = actions.create_sender(request.user, data, request=request, via="console")
        except ConfigError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        except PermissionDenied as exc:
            form.add_error("from_email", exc.message)
        else:
            messages.success(request, "Sender connected. Verify it to check the credentials work.")
            return redirect("senders:detail", sender_id=sender.public_id)
    return render(request, "senders/new.html", {"form": form, "presets": PRESETS})


@sensitive_post_parameters("password")
@login_required
@require_http_methods(["GET", "POST"])
def sender_detail(request: HttpRequest, sender_id: str) -> HttpResponse:
    sender = _get(request, sender_id)
    form = SenderSettingsForm(sender, request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            actions.update_sender(sender, form.cleaned_data, actor=request.user, request=request, via="console")
        except ConfigError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        except PermissionDenied as exc:
            form.add_error("from_email" if "from_email" in form.fields else None, exc.message)
        else:
            messages.success(request, _saved(sender))
            return redirect("senders:detail", sender_id=sender.public_id)
    preset = PRESETS.get(sender.provider)
    return render(request, "senders/detail.html", {"sender": sender, "form": form, "preset": preset})


def _saved(sender: Sender) -> str:
    if sender.is_disabled:
        return "Settings saved. The sender stays disabled: only support can enable it again."
    if sender.verified_at is None:
        return "Settings saved. Verify the sender again to check that they work."
    return "Settings saved."


@login_required
@require_POST
def sender_verify(request: HttpRequest, sender_id: str) -> HttpResponse:
    sender = _get(request, sender_id)
    try:
        ratelimits.check_console(request.user)
        failure = actions.verify_sender(sender, actor=request.user, request=request, via="console")
    except (PermissionDenied, RateLimited) as exc:
        messages.error(request, exc.message)
        return redirect("senders:detail", sender_id=sender.public_id)
    if failure is None:
        messages.success(request, "Verified: the provider accepted the connection and the login.")
    else:
        messages.error(request, "Verification failed. See the details below.")
    return redirect("senders:detail", sender_id=sender.public_id)


@login_required
@require_http_methods(["GET", "POST"])
def sender_delete(request: HttpRequest, sender_id: str) -> HttpResponse:
    sender = _get(request, sender_id)
    if request.method == "POST":
        actions.delete_sender(sender, actor=request.user, request=request, via="console")
        messages.success(request, f"Sender {sender.from_email} deleted; its stored password is destroyed.")
        return redirect("senders:list")
    return render(request, "senders/delete.html", {"sender": sender})
