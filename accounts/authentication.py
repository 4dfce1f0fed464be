"""DRF authentication: `Authorization: Bearer drk_...`, and nothing else."""

from __future__ import annotations

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

    def authenticate(self, request: Request) -> tuple[User, ApiKey] | None:
        if any(value.startswith("drk_") for values in request.query_params.lists() for value in values[1]):
            raise AuthenticationFailed("API keys are accepted only in the Authorization header, never in the URL.")
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None
        scheme, _, raw = header.partition(" ")
        if scheme.lower() != self.keyword.lower() or not raw.strip():
            raise AuthenticationFailed("Use the header Authorization: Bearer <api key>.")
        key = ApiKey.objects.authenticate(raw.strip())
        if key is None or not key.user.is_active:
            raise AuthenticationFailed(MESSAGE_INVALID)
        key.touch()
        return key.user, key

    def authenticate_header(self, request: Request) -> str:
        return f'{self.keyword} realm="api"'
