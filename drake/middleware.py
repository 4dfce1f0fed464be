"""Project-wide HTTP middleware."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import render

from drake.errors import CACHE_ERRORS, InvalidRequest, PayloadTooLarge, cache_unavailable, error_response

API_PREFIX = "/v1/"


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


class RequestSizeLimitMiddleware:
    """Refuse API requests over API_MAX_REQUEST_BYTES before a byte of the body is read."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if is_api_request(request):
            raw = request.META.get("CONTENT_LENGTH") or "0"
            try:
                length = int(raw)
            except ValueError:
                return error_response(InvalidRequest("Content-Length is not a number."))
            limit = settings.API_MAX_REQUEST_BYTES
            if length > limit:
                return error_response(PayloadTooLarge(f"The request is {length} bytes; the limit is {limit} bytes."))
        return self.get_response(request)


class NulCharacterMiddleware:
    """Refuse a URL whose path or query holds a NUL character (`%00`): no id, filter or page of
    ours has one, and PostgreSQL cannot compare text with one (a 500 before this). Bodies are
    checked where they are read (forms, serializers and send validation refuse NUL)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        query = request.META.get("QUERY_STRING", "")
        if "\x00" in request.path or "%00" in query or "\x00" in query:
            if is_api_request(request):
                return error_response(InvalidRequest("The URL holds a NUL character (%00)."))
            return HttpResponseBadRequest("The URL holds a NUL character (%00).", content_type="text/plain")
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
