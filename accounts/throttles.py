"""The login throttle, one for every way in (the console's login, the back office's): per IP and
per account, against credential stuffing. Both count in the same buckets, so a second login
page is not a second allowance; so do the activation page and the signed-in forms that ask for
the password again."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest
from django_ratelimit.core import is_ratelimited

from accounts.models import User


def account_typed(request: HttpRequest) -> User | None:
    """The account a login form's typed address signs in to, if any (also what a failed login
    is audited against). Raw input: an address with a NUL (which PostgreSQL refuses) is none."""
    typed = (request.POST.get("username") or "").strip()
    if not typed or "\x00" in typed:
        return None
    return User.objects.filter(email__iexact=typed).first()


def _account_key(group: str, request: HttpRequest) -> str:
    """The account the typed address signs in to (its id), else the address as the database
    compares it (upper case: PostgreSQL's UPPER, which `email__iexact` runs, folds "ı" and "ſ"
    into "I" and "S": keyed on Python's lower(), `alıce@` was a bucket of its own for alice's
    account)."""
    account = account_typed(request)
    if account is not None:
        return f"account:{account.pk}"
    return f"address:{(request.POST.get('username') or '').strip().upper()}"


def login_limited(request: HttpRequest) -> bool:
    """Count this login attempt (a POST); whether its IP or its account is over the limit."""
    return _limited(request, _account_key)


def password_check_limited(request: HttpRequest, account: User) -> bool:
    """Count a check of `account`'s password outside the login (the activation link asks for
    it); in the login's buckets, so no page is a second allowance of guesses."""
    return _limited(request, lambda group, request: f"account:{account.pk}")


def signed_in_account(group: str, request: HttpRequest) -> str:
    """The login's account bucket of the signed-in account (a django-ratelimit key): a form
    asking a signed-in person for their password again counts in it (accounts.views)."""
    return f"account:{request.user.pk}"


def _limited(request: HttpRequest, account_key: Callable[[str, HttpRequest], str]) -> bool:
    by_ip = is_ratelimited(
        request, group="login.ip", key="ip", rate=settings.LOGIN_RATE_PER_IP, method="POST", increment=True
    )
    by_account = is_ratelimited(
        request,
        group="login.account",
        key=account_key,
        rate=settings.LOGIN_RATE_PER_ACCOUNT,
        method="POST",
        increment=True,
    )
    return by_ip or by_account


def email_domain(request: HttpRequest) -> str:
    """The domain of the typed address, for a throttled attempt's audit event. Unvalidated input
    (the form is not checked when throttled): printable characters only, as PostgreSQL's JSON
    refuses a NUL."""
    domain = (request.POST.get("username") or "").rpartition("@")[2]
    return "".join(c for c in domain if c.isprintable())[:100]
