"""Usage metadata of every /v1/ request (privacy policy 2.3) and the usage summary.

Recorded: time, endpoint (the route, never the concrete URL or query string), method, status,
error type, a size bucket (not the exact size), IP and user agent. Never a body or a header value
other than the user agent.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, Q, Sum
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from billing.periods import current_period
from billing.quota import charged
from drake import sql
from drake.middleware import is_api_request
from relay.models import ApiRequest, DailyUsage, Message, Status

logger = logging.getLogger(__name__)
_BUCKETS = (
    (1024, "<1K"),
    (10 * 1024, "1-10K"),
    (100 * 1024, "10-100K"),
    (1024 * 1024, "100K-1M"),
    (10 * 1024 * 1024, "1-10M"),
)
_PARAM = re.compile(r"<(?:\w+:)?(\w+)>")
# The methods a client may name are any token (RFC 9110): anything else is recorded as OTHER,
# so neither the log nor the metrics labels made of it grow with what clients invent.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def size_bucket(size: int) -> str:
    for limit, label in _BUCKETS:
        if size < limit:
            return label
    return ">10M"


def _endpoint(request: HttpRequest) -> str:
    match = getattr(request, "resolver_match", None)
    if match is None or not match.route:
        return "(unknown)"
    return "/" + _PARAM.sub(r"{\1}", match.route)


def _error_type(response: HttpResponse) -> str:
    if response.status_code < 400:
        return ""
    data = getattr(response, "data", None)
    if data is None:
        try:
            data = json.loads(response.content)
        except (ValueError, AttributeError):
            return ""
    try:
        return str(data["error"]["type"])[:40]
    except (KeyError, TypeError):
        return ""


class UsageMiddleware:
    """Writes every API request's record after the answer, except POST /v1/send's accepted
    ones: those are written in the accept's own statement (`request_record`), so a record that
    cannot be written there fails the send with 503, nothing accepted."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if is_api_request(request) and not getattr(request, "drake_usage_recorded", False):
            try:
                record(request, response)
            except Exception:
                # Usage metadata must never turn a good answer into an error.
                logger.exception("Could not record API usage")
        return response


def record(request: HttpRequest, response: HttpResponse) -> None:
    # Every API request writes one: SQL written once, not compiled by the ORM each time.
    sql.insert(request_record(request, response.status_code, _error_type(response)))


def request_record(request: HttpRequest, status: int, error_type: str = "") -> ApiRequest:
    """The usage record of an API request answered with `status`, not yet saved.

    POST /v1/send has its record written with the message it accepts (one statement, one
    commit: relay.actions), then calls `recorded(request)` so the middleware does not write a
    second one.
    """
    user = getattr(request, "user", None)
    key = getattr(request, "auth", None)
    try:
        size = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        size = 0
    return ApiRequest(
        user=user if getattr(user, "is_authenticated", False) else None,
        key_prefix=getattr(key, "display_prefix", "")[:16],
        method=request.method if request.method in METHODS else "OTHER",
        endpoint=_endpoint(request)[:100],
        status=status,
        error_type=error_type,
        size_bucket=size_bucket(size),
        ip=request.META.get("REMOTE_ADDR") or None,
        # Printable characters only: a NUL would make PostgreSQL refuse the row (and the send
        # whose commit carries it), and escapes have no place in a console.
        user_agent="".join(c for c in request.META.get("HTTP_USER_AGENT", "") if c.isprintable())[:200],
    )


def recorded(request: HttpRequest) -> None:
    """This request's usage record is written: the middleware leaves it."""
    # A DRF Request wraps the HttpRequest the middleware sees.
    getattr(request, "_request", request).drake_usage_recorded = True


def usage_summary(user: Any, now: datetime | None = None) -> dict[str, Any]:
    start, end = current_period(user, now)
    counts = (
        Message.objects.for_account(user)
        .filter(created_at__gte=start, created_at__lte=end)
        .aggregate(
            accepted=Count("id"),
            sent=Count("id", filter=Q(status=Status.SENT)),
            failed=Count("id", filter=Q(status=Status.FAILED)),
        )
    )
    quota = user.plan.monthly_quota
    # Accepted as the quota counts it: retention may have rotated part of the period's message
    # log (a plan keeping logs for less than a period), never the counter. Sent and failed are
    # of the messages still in the log, plus the outcomes retention folded into daily counts.
    accepted = charged(user, start)
    folded = _folded_outcomes(user, start, end)
    return {
        "period_start": start.isoformat().replace("+00:00", "Z"),
        "period_end": end.isoformat().replace("+00:00", "Z"),
        "accepted": accepted,
        "sent": counts["sent"] + folded.get(Status.SENT, 0),
        "failed": counts["failed"] + folded.get(Status.FAILED, 0),
        "quota": quota,
        "remaining": max(0, quota - accepted),
    }


def _folded_outcomes(user: Any, start: datetime, end: datetime) -> dict[str, int]:
    """Sent and failed of the period's messages that retention rotated (DailyUsage), which
    deletes the messages it folds in the same transaction: none is counted twice. Whole days
    only: a period starting after midnight (a subscription's) leaves its first day out, whose
    counts include the previous period's last hours (an undercount, never an overcount)."""
    start, end = timezone.localtime(start), timezone.localtime(end)  # DailyUsage's days are TIME_ZONE's.
    first = start.date()
    if start != start.replace(hour=0, minute=0, second=0, microsecond=0):
        first += timedelta(days=1)
    rows = (
        DailyUsage.objects.filter(
            user=user,
            metric="messages.status",
            dimension__in=[Status.SENT, Status.FAILED],
            day__range=(first, end.date()),
        )
        .values("dimension")
        .annotate(n=Sum("count"))
    )
    return {row["dimension"]: row["n"] for row in rows}


def daily_counts(user: Any, days: int = 30, now: datetime | None = None) -> list[dict[str, Any]]:
    """Sent and failed per day for the last `days` days (for the dashboard chart), rotated
    days included."""
    from datetime import timedelta

    from django.db.models.functions import TruncDate

    now = now or timezone.now()
    first = (now - timedelta(days=days - 1)).date()
    rows = (
        Message.objects.for_account(user)
        .filter(created_at__date__gte=first)
        .annotate(day=TruncDate("created_at"))
        .values("day")
        .annotate(sent=Count("id", filter=Q(status=Status.SENT)), failed=Count("id", filter=Q(status=Status.FAILED)))
    )
    counts = {(row["day"], status): row[status] for row in rows for status in (Status.SENT, Status.FAILED)}
    # Days older than the plan's log retention live on as DailyUsage (relay.retention), which
    # deletes the messages it folds in the same transaction: no message is counted twice.
    folded = DailyUsage.objects.filter(
        user=user, metric="messages.status", dimension__in=[Status.SENT, Status.FAILED], day__gte=first
    ).values_list("day", "dimension", "count")
    for day, status, count in folded:
        counts[(day, status)] = counts.get((day, status), 0) + count
    series = []
    for offset in range(days):
        day = first + timedelta(days=offset)
        series.append(
            {"day": day, "sent": counts.get((day, Status.SENT), 0), "failed": counts.get((day, Status.FAILED), 0)}
        )
    return series


def chart(user: Any, days: int = 30, width: int = 600, height: int = 140) -> dict[str, Any]:
    """Geometry of a stacked bar chart (sent, failed per day), drawn as SVG by the template."""
    series = daily_counts(user, days)
    top = max([row["sent"] + row["failed"] for row in series] + [1])
    slot = width / days
    bars = []
    for index, row in enumerate(series):
        sent_h = round(height * row["sent"] / top, 1)
        failed_h = round(height * row["failed"] / top, 1)
        bars.append(
            {
                **row,
                "x": round(index * slot + 1, 1),
                "w": round(slot - 2, 1),
                "sent_y": round(height - sent_h, 1),
                "sent_h": sent_h,
                "failed_y": round(height - sent_h - failed_h, 1),
                "failed_h": failed_h,
            }
        )
    return {
        "bars": bars,
        "top": top,
        "width": width,
        "height": height,
        "total": sum(r["sent"] + r["failed"] for r in series),
    }
