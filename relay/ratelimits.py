"""API rate limits on the shared cache (django-ratelimit): per key from the plan, per account overall.

Counters live in CACHE_URL, so every web process counts against the same numbers (Redis in
production). Every authenticated API response carries X-RateLimit-Limit/-Remaining/-Reset for the
per-key limit; over either limit the answer is 429 rate_limited with Retry-After.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django_ratelimit.core import get_usage
from rest_framework.request import Request

from drake.errors import RateLimited


def _key_of(group: str, request: Any) -> str:
    return request.auth.prefix


def _account_of(group: str, request: Any) -> str:
    return str(request.user.pk)


def check(request: Request) -> dict[str, int] | None:
    """Count this request; raise RateLimited when over a limit. Returns the per-key usage."""
    if request.auth is None:
        return None
    django_request = request._request
    plan_rate = f"{request.user.plan.rate_per_minute}/m"
    per_key = get_usage(django_request, group="api-key", key=_key_of, rate=plan_rate, increment=True)
    per_account = get_usage(
        django_request,
        group="api-account",
        key=_account_of,
        rate=f"{settings.API_ACCOUNT_RATE_PER_MINUTE}/m",
        increment=True,
    )
    usage = {
        "limit": per_key["limit"],
        "remaining": max(0, per_key["limit"] - per_key["count"]),
        "reset": per_key["time_left"],
    }
    request._request.drake_ratelimit = usage
    for name, counted in (("API key", per_key), ("account", per_account)):
        if counted["should_limit"]:
            raise RateLimited(
                f"Over the {name} limit of {counted['limit']} requests per minute. Retry in {counted['time_left']} s.",
                retry_after=counted["time_left"],
                headers=headers(usage),
            )
    return usage


def headers(usage: dict[str, int] | None) -> dict[str, str]:
    if not usage:
        return {}
    return {
        "X-RateLimit-Limit": str(usage["limit"]),
        "X-RateLimit-Remaining": str(usage["remaining"]),
        "X-RateLimit-Reset": str(usage["reset"]),
    }
