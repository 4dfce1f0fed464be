"""Project-wide HTTP middleware."""

from __future__ import annotations

import io
import ipaddress
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import render
from gunicorn.http.errors import ParseException

from drake.errors import CACHE_ERRORS, InvalidRequest, PayloadTooLarge, cache_unavailable, error_response

API_PREFIX = "/v1/"
# Set in the environ (request.META) of a request whose body ChunkedBodyMiddleware read.
CHUNKED_BODY = "drake.chunked_body"
MALFORMED_BODY = "drake.malformed_body"
MALFORMED_BODY_MESSAGE = "The request body's chunked encoding is malformed."
_READ_STEP = 64 * 1024


def is_api_request(request: HttpRequest) -> bool:
    return request.path.startswith(API_PREFIX)


class ForwardedForMiddleware:
    """REMOTE_ADDR is the client's address, also behind the proxy docs/deploy.md puts in front.

    gunicorn sets REMOTE_ADDR to its peer, which behind a proxy is the proxy: every per-IP
    throttle (console login, sign-up) would count everybody together and the usage log would
    hold the proxy's address. From a peer in FORWARDED_ALLOW_IPS (the list gunicorn trusts),
    the client is the right-most X-Forwarded-For address that is not itself a trusted proxy.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        entries = [entry.strip() for entry in settings.FORWARDED_ALLOW_IPS if entry.strip()]
        self.trust_all = "*" in entries
        self.trusted = [ipaddress.ip_network(entry, strict=False) for entry in entries if entry != "*"]

    def _trusted(self, value: str, *, peer: bool = False) -> bool:
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            return False
        # `*` trusts the peer (the proxy in front, whatever its address), not every entry of its
        # header: were each hop trusted, the left-most one, the client's own, would win.
        return (peer and self.trust_all) or any(address in network for network in self.trusted)

    @staticmethod
    def _address(hop: str) -> str | None:
        """The address of one X-Forwarded-For entry, without the port some proxies append
        ("192.0.2.1:5678", "[2001:db8::1]:5678"); None if it is no address."""
        if hop.startswith("["):
            hop = hop[1:].partition("]")[0]
        elif hop.count(":") == 1:
            hop = hop.partition(":")[0]
        try:
            return str(ipaddress.ip_address(hop))
        except ValueError:
            return None

    def __call__(self, request: HttpRequest) -> HttpResponse:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        if forwarded and self._trusted(request.META.get("REMOTE_ADDR", ""), peer=True):
            for part in reversed(forwarded.split(",")):
                hop = self._address(part.strip())
                if hop is None:
                    break  # Not an address: nothing left of it is to be believed.
                request.META["REMOTE_ADDR"] = hop
                if not self._trusted(hop):
                    break
        return self.get_response(request)


class ChunkedBodyMiddleware:
    """WSGI middleware (drake.wsgi wraps the application in it): a body sent chunked is the body.

    Django reads CONTENT_LENGTH bytes of wsgi.input, none without one, so a request sent with
    `Transfer-Encoding: chunked` and no Content-Length (clients streaming a body: requests with a
    generator, Node's fetch with a stream) was an empty one, and a valid POST /v1/send a 400.
    gunicorn decodes the chunks and marks the input as ending with the body
    (`wsgi.input_terminated`): from such a server, at most API_MAX_REQUEST_BYTES + 1 bytes of it
    are read into memory here and handed on with their count as CONTENT_LENGTH, so everything
    after sees what it sees of a Content-Length request: RequestSizeLimitMiddleware refuses more
    than the limit (413, without the rest ever being read), usage and the send record the size.
    From a server that does not terminate the input (runserver), reading to its end could wait
    for good: the request is passed on untouched, its body empty as before.
    """

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        # One lookup for every request without Transfer-Encoding: the send path, with its
        # Content-Length, passes straight through (gunicorn refuses both headers together).
        if (
            "HTTP_TRANSFER_ENCODING" in environ
            and not environ.get("CONTENT_LENGTH")
            and environ.get("wsgi.input_terminated")
        ):
            try:
                self._read_body(environ)
            except ParseException:
                # A chunk's framing is broken (a bad size line, a missing CRLF): gunicorn's own
                # answer was an HTML page. The request goes on with no body, marked, for
                # RequestSizeLimitMiddleware to answer in our format; gunicorn will not reuse
                # the connection (its body reader remembers the failure).
                environ.update({"CONTENT_LENGTH": "0", "wsgi.input": io.BytesIO(), MALFORMED_BODY: True})
        return self.app(environ, start_response)

    @staticmethod
    def _read_body(environ: dict[str, Any]) -> None:
        stream, body = environ["wsgi.input"], io.BytesIO()
        remaining = settings.API_MAX_REQUEST_BYTES + 1  # One byte over says "over the limit".
        while remaining > 0:
            # In steps: a server's read(n) may return less than n before the end, and one read of
            # the whole would hold it twice (the server's buffer and ours).
            data = stream.read(min(remaining, _READ_STEP))
            if not data:
                break
            body.write(data)
            remaining -= len(data)
        environ["CONTENT_LENGTH"] = str(body.tell())
        body.seek(0)
        environ["wsgi.input"] = body
        environ[CHUNKED_BODY] = True


class RequestSizeLimitMiddleware:
    """Refuse API requests over API_MAX_REQUEST_BYTES before a byte of the body is read (one sent
    chunked: before more than the limit and one byte of it is read, by ChunkedBodyMiddleware)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.META.get(MALFORMED_BODY):
            if is_api_request(request):
                return error_response(InvalidRequest(MALFORMED_BODY_MESSAGE))
            return HttpResponseBadRequest(MALFORMED_BODY_MESSAGE, content_type="text/plain")
        if is_api_request(request):
            raw = request.META.get("CONTENT_LENGTH") or "0"
            try:
                length = int(raw)
            except ValueError:
                return error_response(InvalidRequest("Content-Length is not a number."))
            limit = settings.API_MAX_REQUEST_BYTES
            if length > limit:
                if request.META.get(CHUNKED_BODY):  # Only its first limit + 1 bytes were read.
                    return error_response(PayloadTooLarge(f"The request is over the limit of {limit} bytes."))
                return error_response(PayloadTooLarge(f"The request is {length} bytes; the limit is {limit} bytes."))
        return self.get_response(request)


class NulCharacterMiddleware:
    """Refuse a URL whose path or query holds a NUL character (`%00`): no id, filter or page of
    ours has one, and PostgreSQL cannot compare text with one (a 500 before this). So is a
    console form posting one: Django's form fields refuse NUL, but a view that reads a raw
    value (the billing page's plan was one) handed it to a lookup, a 500. API bodies are
    checked where they are read (serializers and send validation refuse NUL)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        query = request.META.get("QUERY_STRING", "")
        if "\x00" in request.path or "%00" in query or "\x00" in query:
            if is_api_request(request):
                return error_response(InvalidRequest("The URL holds a NUL character (%00)."))
            return HttpResponseBadRequest("The URL holds a NUL character (%00).", content_type="text/plain")
        if (
            request.method == "POST"
            and request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data")
            and not is_api_request(request)
            and any("\x00" in name or any("\x00" in v for v in values) for name, values in request.POST.lists())
        ):
            return HttpResponseBadRequest("The form holds a NUL character.", content_type="text/plain")
        return self.get_response(request)


class ContentSecurityPolicyMiddleware:
    """A strict CSP on every response: no inline script, nothing from other origins."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", settings.CONTENT_SECURITY_POLICY)
        return response


class CacheUnavailableMiddleware:
    """A console view that finds the shared cache (Redis) unreachable or silent answers 503
    with Retry-After, as the API's views do (drake.errors): sign-in, sign-up and password
    confirmations count attempts there (django-ratelimit), and were a 500 with a traceback."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, CACHE_ERRORS):
            return None
        error = cache_unavailable(exception)
        if is_api_request(request):
            return error_response(error)
        response = render(request, "unavailable.html", status=error.status_code)
        for name, value in error.headers.items():
            response[name] = value
        return response
