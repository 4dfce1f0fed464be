"""DRF authentication: `Authorization: Bearer drk_...`, and nothing else."""

from __future__ import annotations

from typing import Any

from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request

from accounts.models import ApiKey, User
from drake.errors import AuthenticationFailed

MESSAGE_INVALID = "The API key is invalid or revoked."


class ApiKeyAuthentication(BaseAuthentication):
    """Authenticate with an API key in the Authorization header.

    Keys are never accepted from a query string (they would end up in proxy and access logs);
    a request that carries one there is refused outright so the mistake is noticed.
    """

    keyword = "Bearer"

    def raw_key(self, request: Request) -> str | None:
        """The key the request presents, or None if it presents none; raises if it is misplaced."""
        if any(value.startswith("drk_") for values in request.query_params.lists() for value in values[1]):
            raise AuthenticationFailed("API keys are accepted only in the Authorization header, never in the URL.")
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None
        scheme, _, raw = header.partition(" ")
        if scheme.lower() != self.keyword.lower() or not raw.strip():
            raise AuthenticationFailed("Use the header Authorization: Bearer <api key>.")
        return raw.strip()

    def authenticate(self, request: Request) -> tuple[User, ApiKey] | None:
        if self._may_use_snapshot(request):
            raw = self.raw_key(request)
            key = ApiKey.objects.authenticate_from_snapshot(raw) if raw is not None else None
            if key is not None:
                request.drake_from_snapshot = True
                return key.user, key
        return self.authenticate_from_database(request)

    def authenticate_from_database(self, request: Request) -> tuple[User, ApiKey] | None:
        raw = self.raw_key(request)
        if raw is None:
            return None
        key = ApiKey.objects.authenticate(raw)
        if key is None or not key.user.is_active:
            raise AuthenticationFailed(MESSAGE_INVALID)
        key.touch()
        return key.user, key

    def authenticate_header(self, request: Request) -> str:
        return f'{self.keyword} realm="api"'

    @staticmethod
    def _may_use_snapshot(request: Request) -> bool:
        """POST to a view that says `authenticates_from_snapshot = True` (POST /v1/send): a key
        this process authenticated before comes from its snapshot, without a query, and the
        request is marked so. Such a request is not yet authenticated by the database: the
        view may act on it only through a statement that checks the snapshot in the database
        (relay.actions.accept_from_snapshot); for anything else, an error included, it calls
        `confirm` first."""
        view = (request.parser_context or {}).get("view")
        return request.method == "POST" and getattr(view, "authenticates_from_snapshot", False)


def from_snapshot(request: Request) -> bool:
    """Was `request` authenticated from a snapshot, and not yet confirmed?"""
    return getattr(request, "drake_from_snapshot", False)


def confirm(request: Request, view: Any) -> None:
    """Authenticate a request taken from a snapshot against the database now, and check the
    view's permissions again: raises AuthenticationFailed (revoked, unknown) or the
    permission's error (a suspended account: 403). Does nothing for any other request."""
    if not from_snapshot(request):
        return
    request.drake_from_snapshot = False
    try:
        found = ApiKeyAuthentication().authenticate_from_database(request)
        if found is None:  # The header was there a moment ago; it cannot have gone.
            raise AuthenticationFailed()
    except AuthenticationFailed:
        # Refused, the request is nobody's, as one the database refused first: its usage record
        # names no account (the snapshot's may be deleted) and a 401 has no rate-limit headers.
        request._not_authenticated()
        request._request.drake_ratelimit = None
        raise
    request.user, request.auth = found
    view.check_permissions(request)
