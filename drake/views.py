"""Project-level endpoints: health, and the error pages that speak JSON under /v1/."""

from __future__ import annotations

import logging

from django.core.exceptions import SuspiciousOperation
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from drake.celery import app as celery_app
from drake.errors import InternalError, InvalidRequest, NotFound, error_response, suspicious
from drake.middleware import is_api_request

logger = logging.getLogger(__name__)


def _database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            return cursor.fetchone() == (1,)
    except Exception:
        logger.warning("healthz: database check failed", exc_info=True)
        return False


def _broker_ok() -> bool:
    try:
        with celery_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        return True
    except Exception:
        logger.warning("healthz: broker check failed", exc_info=True)
        return False


def _cache_ok() -> bool:
    from django.core.cache import cache

    try:
        cache.get("drake:healthz")
        return True
    except Exception:
        logger.warning("healthz: cache check failed", exc_info=True)
        return False


@never_cache
@require_safe  # GET and HEAD: load balancers use either
def healthz(request: HttpRequest) -> JsonResponse:
    # The status follows SPEC: the database and the broker. The shared cache is reported too:
    # while it is down the API answers 503 service_unavailable (rate limits live there).
    checks = {"database": _database_ok(), "broker": _broker_ok()}
    healthy = all(checks.values())
    body = {"status": "ok" if healthy else "unavailable"}
    body.update({name: "ok" if ok else "down" for name, ok in {**checks, "cache": _cache_ok()}.items()})
    return JsonResponse(body, status=200 if healthy else 503)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    # Django's answer to a SuspiciousOperation raised outside a view (a Host not in ALLOWED_HOSTS).
    if is_api_request(request):
        return error_response(suspicious(exception) if isinstance(exception, SuspiciousOperation) else InvalidRequest())
    return defaults.bad_request(request, exception)


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if is_api_request(request):
        return error_response(NotFound("No such endpoint."))
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    if is_api_request(request):
        return error_response(InternalError())
    return defaults.server_error(request)


def docs(request: HttpRequest) -> HttpResponse:
    """Quick start, with the signed-in customer's own sender id in the example."""
    from django.shortcuts import render

    sender, ready = None, False
    if request.user.is_authenticated:
        senders = list(request.user.senders.filter(disabled_at__isnull=True))
        # One that works first: the newest may be one whose verification failed.
        working = [s for s in senders if s.verified_at is not None and not s.is_paused()]
        sender, ready = (working[0], True) if working else (senders[0] if senders else None, False)
    base = request.build_absolute_uri("/").rstrip("/")
    return render(request, "docs.html", {"sender": sender, "ready": ready, "base": base})
