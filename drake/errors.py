"""API errors: one class per SPEC error type, rendered once into SPEC's envelope.

`{"error": {"type": ..., "message": ..., "field": ...}}`, `field` only where one field is at
fault. Every path that answers under /v1/ (DRF views, Django's 400/404/500 handlers, the size-limit
middleware) goes through `error_response` or `exception_handler`, so the shape never drifts.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import DisallowedHost, RequestDataTooBig, SuspiciousOperation, TooManyFieldsSent
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db import InterfaceError, OperationalError
from django.http import Http404, JsonResponse
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rest_framework import exceptions as drf
from rest_framework.response import Response

logger = logging.getLogger(__name__)


class ApiError(drf.APIException):
    """Base class: `type` and `status_code` are SPEC's; `field` names the offending field."""

    type = "invalid_request"
    status_code = 400
    default_detail = "The request is invalid."

    def __init__(
        self,
        message: str | None = None,
        *,
        field: str | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.message = message or str(self.default_detail)
        self.field = field
        self.headers = headers or {}
        self.extra = extra or {}
        super().__init__(self.message)

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"type": self.type, "message": _encodable(self.message)}
        if self.field:
            error["field"] = _encodable(self.field)
        error.update(self.extra)
        return {"error": error}


def _encodable(text: str) -> str:
    """`text` as UTF-8 can carry it: a lone surrogate from the request (valid JSON, "\\ud800")
    quoted in a message or field is written as its escape, or rendering the error raised."""
    if text.isascii():
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


class InvalidRequest(ApiError):
    pass


class AuthenticationFailed(ApiError):
    type = "authentication_failed"
    status_code = 401
    default_detail = "A valid API key is required: Authorization: Bearer drk_..."


class QuotaExceeded(ApiError):
    type = "quota_exceeded"
    status_code = 402
    default_detail = "The monthly send quota of your plan is used up."


class PermissionDenied(ApiError):
    type = "permission_denied"
    status_code = 403
    default_detail = "This account may not do this."


class NotFound(ApiError):
    type = "not_found"
    status_code = 404
    default_detail = "No such object."


class IdempotencyConflict(ApiError):
    type = "idempotency_conflict"
    status_code = 409
    default_detail = "This Idempotency-Key was used with a different request body."


class PayloadTooLarge(ApiError):
    type = "payload_too_large"
    status_code = 413
    default_detail = "The request is larger than the limit."


class SenderVerificationFailed(ApiError):
    type = "sender_verification_failed"
    status_code = 422
    default_detail = "The provider refused the connection or login."


class RateLimited(ApiError):
    type = "rate_limited"
    status_code = 429
    default_detail = "Too many requests."

    def __init__(self, message: str | None = None, *, retry_after: int = 1, **kwargs: Any) -> None:
        headers = {"Retry-After": str(max(1, int(retry_after)))}
        headers.update(kwargs.pop("headers", None) or {})
        super().__init__(message, headers=headers, **kwargs)


class ServiceUnavailable(ApiError):
    type = "service_unavailable"
    status_code = 503
    default_detail = "The message could not be durably accepted; nothing was queued. Retry later."


class InternalError(ApiError):
    # Not a SPEC type because SPEC lists what clients can act on; a 500 is ours to fix.
    type = "internal_error"
    status_code = 500
    default_detail = "Something went wrong on our side. Nothing about it is in this response."


def error_response(error: ApiError) -> JsonResponse:
    """A plain Django response carrying `error` (for code that runs outside DRF views)."""
    response = JsonResponse(error.body(), status=error.status_code)
    for name, value in error.headers.items():
        response[name] = value
    return response


def _first_field_error(detail: Any, prefix: str = "") -> tuple[str | None, str]:
    """Walk DRF's nested ValidationError detail down to its first message and dotted field."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            field = key if key != "non_field_errors" else None
            path = f"{prefix}.{field}" if prefix and field else (field or prefix or None)
            return _first_field_error(value, path or "")
    if isinstance(detail, list) and detail:
        for index, item in enumerate(detail):
            if isinstance(item, dict | list):
                return _first_field_error(item, f"{prefix}[{index}]" if prefix else str(index))
            return (prefix or None), str(item)
    return (prefix or None), str(detail)


def suspicious(exc: SuspiciousOperation) -> ApiError:
    """What Django refuses as suspicious (its DATA_UPLOAD_* limits, a Host not served), in SPEC's terms."""
    if isinstance(exc, RequestDataTooBig):
        return PayloadTooLarge()
    if isinstance(exc, TooManyFieldsSent):
        return InvalidRequest("The request has too many query parameters.")
    if isinstance(exc, DisallowedHost):
        return InvalidRequest("The Host header names no host served here.")
    return InvalidRequest()


# What redis-py raises when the shared cache (rate limits, pacing) is unreachable or silent.
CACHE_ERRORS = (RedisConnectionError, RedisTimeoutError)


def cache_unavailable(exc: Exception) -> ServiceUnavailable:
    """The shared cache is down: refuse, as when the database is, so no limit goes unchecked
    (the API's views here, the console's throttled forms in drake.middleware). Logged once per
    request, without the traceback's noise."""
    logger.warning("The shared cache cannot be reached: %s", exc)
    return ServiceUnavailable(
        "A service the API needs is unavailable; nothing was changed or queued. Retry shortly.",
        headers={"Retry-After": "5"},
    )


def database_unavailable(exc: Exception) -> ServiceUnavailable:
    """The database cannot be reached (a dropped connection, a server restarting): an outage
    to retry through, not a bug of ours. POST /v1/send says so in its own words."""
    logger.warning("The database cannot be reached: %s", exc)
    return ServiceUnavailable("A service the API needs is unavailable. Retry shortly.", headers={"Retry-After": "5"})


def _translate(exc: Exception) -> ApiError | None:
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, SuspiciousOperation):
        return suspicious(exc)
    if isinstance(exc, CACHE_ERRORS):
        return cache_unavailable(exc)
    if isinstance(exc, OperationalError | InterfaceError):
        return database_unavailable(exc)
    if isinstance(exc, Http404):
        return NotFound()
    if isinstance(exc, DjangoPermissionDenied):
        return PermissionDenied()
    if isinstance(exc, drf.ValidationError):
        field, message = _first_field_error(exc.detail)
        return InvalidRequest(message, field=field)
    if isinstance(exc, drf.ParseError):
        return InvalidRequest(f"The body is not valid JSON: {exc.detail}")
    if isinstance(exc, drf.NotAuthenticated | drf.AuthenticationFailed):
        message = str(exc.detail) if isinstance(exc, drf.AuthenticationFailed) else None
        return AuthenticationFailed(message)
    if isinstance(exc, drf.PermissionDenied):
        return PermissionDenied(str(exc.detail))
    if isinstance(exc, drf.NotFound):
        return NotFound()
    if isinstance(exc, drf.Throttled):
        return RateLimited(retry_after=int(exc.wait or 1))
    if isinstance(exc, drf.MethodNotAllowed | drf.UnsupportedMediaType | drf.NotAcceptable):
        # SPEC's types are a closed set clients switch on; the status code says which of these.
        error = InvalidRequest(str(exc.detail))
        error.status_code = exc.status_code
        return error
    return None


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """DRF's EXCEPTION_HANDLER: every error of every API view leaves here in SPEC's envelope."""
    error = _translate(exc)
    if error is None:
        # Logged with its traceback for us; the client sees no internals.
        logger.exception("Unhandled error in %s", context.get("view").__class__.__name__)
        error = InternalError()
    headers = dict(error.headers)
    if isinstance(exc, drf.APIException):
        auth_header = getattr(exc, "auth_header", None)
        if auth_header:
            headers.setdefault("WWW-Authenticate", auth_header)
    if error.status_code == 401:
        headers.setdefault("WWW-Authenticate", 'Bearer realm="api"')
    return Response(error.body(), status=error.status_code, headers=headers)
