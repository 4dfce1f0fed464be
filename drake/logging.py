"""Structured JSON logs with a request id, and never a body, subject, secret or API key.

Every log line is one JSON object: time, level, logger, message, request_id (when inside a
request), and the exception's type and traceback. The request id comes from X-Request-ID when a
proxy sets a well-formed one, else it is made here; it is echoed in the response header.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import secrets
import traceback
from collections.abc import Callable
from datetime import UTC, datetime

from django.http import HttpRequest, HttpResponse

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
_VALID_ID = re.compile(r"[A-Za-z0-9._-]{8,64}")  # fullmatch: "$" would let a trailing newline in
# Anything shaped like one of our API keys is masked, wherever it turns up in a message.
_KEY = re.compile(r"drk_[0-9A-Za-z]{10}_[0-9A-Za-z]+")
# And Stripe's secrets (secret and restricted keys, webhook signing secrets): an HTTP library's
# error quotes the Authorization header it refused, and the Stripe error that wraps it says so.
_STRIPE_SECRET = re.compile(r"\b((?:sk|rk)_(?:live|test)_|whsec_)[0-9A-Za-z]+")

# And the console's links whose path is a credential: a password reset's and an activation's
# (/password-reset/<uid>/<token>/: it sets a new password until used), an email change's.
_TOKEN_PATH = re.compile(r"(/(?:password-reset|activate)/)[^/\s\"]+/[^/\s\"?]+|(/account/email/)[^/\s\"?]+")


def _masked_token(match: re.Match[str]) -> str:
    return f"{match[1]}…/…" if match[1] else f"{match[2]}…"


def masked_path(text: str) -> str:
    """`text` with the token of every credential-carrying console link in it masked."""
    return _TOKEN_PATH.sub(_masked_token, text)


def _masked(text: str) -> str:
    return masked_path(_STRIPE_SECRET.sub(r"\1[redacted]", _KEY.sub("drk_[redacted]", text)))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = _masked(record.getMessage())
        entry = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": message,
        }
        rid = request_id.get()
        if rid:
            entry["request_id"] = rid
        if record.exc_info:
            entry["exception"] = record.exc_info[0].__name__ if record.exc_info[0] else ""
            entry["traceback"] = _masked("".join(traceback.format_exception(*record.exc_info)))
        return json.dumps(entry, ensure_ascii=False)


class PlainFormatter(logging.Formatter):
    """The development log's plain lines (LOG_FORMAT=plain), API keys masked as in the JSON ones."""

    def format(self, record: logging.LogRecord) -> str:
        return _masked(super().format(record))


class RequestIdMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-ID", "")
        rid = incoming if _VALID_ID.fullmatch(incoming) else secrets.token_hex(8)
        token = request_id.set(rid)
        try:
            response = self.get_response(request)
        finally:
            request_id.reset(token)
        response["X-Request-ID"] = rid
        return response
