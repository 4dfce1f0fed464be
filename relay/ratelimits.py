"""API rate limits on the shared cache: per key from the plan, per account overall.

Fixed one-minute windows (they turn over at each minute), counted in CACHE_URL, so every web
process counts against the same numbers (Redis in production). Both counters of a request are
one Redis round trip (`drake.cache.add_to`): django-ratelimit's `get_usage`, used here before,
made two calls per counter and cost 2.7 ms of the send path's CPU on the bench machine
(bench/README.md); it still throttles the console's login and sign-up forms.

Every authenticated API response carries X-RateLimit-Limit/-Remaining/-Reset for the per-key
limit; over either limit the answer is 429 rate_limited with Retry-After.
"""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from rest_framework.request import Request

from drake.cache import add_to
from drake.errors import RateLimited

WINDOW_SECONDS = 60


def check(request: Request) -> dict[str, int] | None:
    """Count this request; raise RateLimited when over a limit. Returns the per-key usage."""
    if request.auth is None:
        return None
    usage, over = _count("API key", f"key:{request.auth.prefix}", request.user)
    request._request.drake_ratelimit = usage  # The X-RateLimit headers and recheck read it, a 429 too.
    if over is not None:
        raise over
    return usage


def check_console(user: Any) -> None:
    """Count a console action that reaches a provider or the outbox (a sender's verify, a test
    email) as an API request of the account: against the plan's rate, as one more key of the
    account, and the account's ceiling, which the API's keys count against too. Without it the
    console was a way around both (a login to the provider per click). Raises RateLimited."""
    _, over = _count("console", f"console:{user.pk}", user)
    if over is not None:
        raise over


def _count(name: str, bucket: str, user: Any) -> tuple[dict[str, int], RateLimited | None]:
    """Count one request in `bucket` (held to the plan's rate) and in the account's ceiling, in
    one round trip: the bucket's usage, and the RateLimited to raise if over either."""
    now = time.time()
    window = int(now // WINDOW_SECONDS)
    reset = max(1, int((window + 1) * WINDOW_SECONDS - now))
    own, per_account = f"drake:rl:{bucket}:{window}", f"drake:rl:account:{user.pk}:{window}"
    counted = add_to({own: 1, per_account: 1}, timeout=WINDOW_SECONDS + 5)
    limit = user.plan.rate_per_minute
    usage = {"limit": limit, "remaining": max(0, limit - counted[own]), "reset": reset}
    if counted[own] > limit:
        return usage, _over(name, limit, usage)
    if counted[per_account] > settings.API_ACCOUNT_RATE_PER_MINUTE:
        return usage, _over("account", settings.API_ACCOUNT_RATE_PER_MINUTE, usage)
    return usage, None


def _over(name: str, limit: int, usage: dict[str, int]) -> RateLimited:
    return RateLimited(
        f"Over the {name} limit of {limit} requests per minute. Retry in {usage['reset']} s.",
        retry_after=usage["reset"],
        headers=headers(usage),
    )


def recheck(request: Request) -> None:
    """Hold a request that `check` counted against a snapshot's plan (accounts.
    authentication.confirm) to its plan's rate as the database has it now."""
    usage = getattr(request._request, "drake_ratelimit", None)
    limit = request.user.plan.rate_per_minute
    if usage is None or usage["limit"] == limit:
        return
    count = usage["limit"] - usage["remaining"]  # Exact: over the old limit, check raised.
    usage.update(limit=limit, remaining=max(0, limit - count))
    if count > limit:
        raise _over("API key", limit, usage)


def headers(usage: dict[str, int] | None) -> dict[str, str]:
    if not usage:
        return {}
    return {
        "X-RateLimit-Limit": str(usage["limit"]),
        "X-RateLimit-Remaining": str(usage["remaining"]),
        "X-RateLimit-Reset": str(usage["reset"]),
    }
