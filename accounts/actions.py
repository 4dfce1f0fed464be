"""Writes that matter for accounts and API keys. The API, console, admin and commands call these."""

from __future__ import annotations

from functools import partial
from typing import Any

from django.contrib.auth.tokens import PasswordResetTokenGenerator
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone
from django.utils.crypto import constant_time_compare

from accounts import keys
from accounts.models import ApiKey, User
from auditlog.events import record


class ActivationTokenGenerator(PasswordResetTokenGenerator):
    """Activation links: a salt of their own, so a password-reset token (same uid, same
    secret) is no activation token, and void once the account is active."""

    key_salt = "drake.accounts.ActivationTokenGenerator"

    def _make_hash_value(self, user: User, timestamp: int) -> str:
        return f"{super()._make_hash_value(user, timestamp)}{user.is_active}"


activation_tokens = ActivationTokenGenerator()


class EmailTaken(Exception):
    """An account with this email exists already (callers must not reveal this to strangers)."""


def create_account(
    email: str,
    password: str | None,
    *,
    name: str = "",
    is_staff: bool = False,
    is_active: bool = True,
    actor: User | None = None,
    request: HttpRequest | None = None,
    via: str = "console",
) -> User:
    """Create a customer (or staff) account on the default plan. Raises EmailTaken."""
    try:
        with transaction.atomic():
            user = User.objects.create_user(email, password, name=name, is_staff=is_staff, is_active=is_active)
            record("account.created", actor=actor, account=user, target=user, request=request, detail={"via": via})
    except IntegrityError as exc:
        raise EmailTaken(email) from exc
    return user


def create_api_key(
    user: User, name: str, *, actor: User | None = None, request: HttpRequest | None = None, via: str = "console"
) -> tuple[ApiKey, str]:
    """Create a key and return it with its raw value, which exists only in this return value."""
    raw, parts = keys.generate()
    with transaction.atomic():
        key = ApiKey.objects.create(
            user=user,
            name=name.strip() or "Unnamed key",
            prefix=parts.prefix,
            secret_hash=keys.hash_secret(parts.secret),
        )
        record(
            "api_key.created",
            actor=actor or user,
            account=user,
            target=key,
            request=request,
            detail={"prefix": key.display_prefix, "name": key.name, "via": via},
        )
    return key, raw


def revoke_api_key(
    key: ApiKey,
    *,
    actor: User | None = None,
    request: HttpRequest | None = None,
    via: str = "console",
    reason: str = "",
) -> bool:
    """Revoke a key; returns False if it was revoked already (nothing changes then)."""
    with transaction.atomic():
        updated = ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
        if updated != 1:
            return False
        key.refresh_from_db(fields=["revoked_at"])
        record(
            "api_key.revoked",
            actor=actor,
            account=key.user,
            target=key,
            request=request,
            detail={"prefix": key.display_prefix, "via": via, **({"reason": reason[:300]} if reason else {})},
        )
    return True


def sign_up(email: str, password: str, *, name: str = "", request: HttpRequest, activation_url: str) -> None:
    """Start a console sign-up without revealing whether the email has an account already.

    A new email gets an inactive account and an activation link; a known email gets a note
    that someone tried to sign up with it. The caller shows the same page in both cases.
    `activation_url` is a format string with `{uid}` and `{token}` placeholders. Raises
    mail.MailUnavailable in both cases alike if the mail cannot go; a new account is not kept then.
    """
    from django.contrib.auth.hashers import make_password
    from django.utils.encoding import force_bytes
    from django.utils.http import urlsafe_base64_encode

    from accounts import mail

    existing = User.objects.filter(email__iexact=email.strip()).first()
    if existing is not None:
        make_password(password)  # Same work as the other branch: no timing tell.
        mail.send_signup_existing(existing, request=request)
        return
    from drake.legal import policy

    # One transaction with the mail: an account whose link could not be mailed is not kept (a
    # second try is then a sign-up again, not "it already has one").
    with transaction.atomic():
        try:
            user = create_account(email, password, name=name, is_active=False, request=request, via="signup")
        except EmailTaken:
            return  # Lost a race with an identical sign-up: that one sends the mail.
        # Signing up accepts the policy in force (the page says so): no "updated" notice for it.
        User.objects.filter(pk=user.pk).update(policy_acknowledged_at=policy()["updated"])
        uid = urlsafe_base64_encode(force_bytes(user.pk))
        token = activation_tokens.make_token(user)
        mail.send_activation(user, request.build_absolute_uri(activation_url.format(uid=uid, token=token)))


def activate_account(user: User, *, request: HttpRequest) -> None:
    """Activate a sign-up that was never activated (its link, or a password reset)."""
    with transaction.atomic():
        now = timezone.now()
        User.objects.filter(pk=user.pk, activated_at__isnull=True).update(is_active=True, activated_at=now)
        user.is_active, user.activated_at = True, now
        record("account.activated", actor=user, account=user, target=user, request=request)


def _set_suspension(
    user: User, *, suspended: bool, reason: str, actor: User | None, request: HttpRequest | None
) -> bool:
    with transaction.atomic():
        fields = (
            {"suspended_at": timezone.now(), "suspension_reason": reason[:300]}
            if suspended
            else {"suspended_at": None, "suspension_reason": ""}
        )
        updated = User.objects.filter(pk=user.pk, suspended_at__isnull=suspended).update(**fields)
        if updated:
            action = "account.suspended" if suspended else "account.unsuspended"
            record(action, actor=actor, account=user, target=user, request=request, detail={"reason": reason[:300]})
    user.refresh_from_db(fields=["suspended_at", "suspension_reason"])
    return bool(updated)


def suspend_account(user: User, *, reason: str, actor: User | None, request: HttpRequest | None = None) -> bool:
    """Suspend an account (staff): its API keys get 403 and its queued messages wait (relay.delivery
    reads the suspension with each claim) until unsuspended. Audited with the reason."""
    return _set_suspension(user, suspended=True, reason=reason, actor=actor, request=request)


def unsuspend_account(user: User, *, reason: str, actor: User | None, request: HttpRequest | None = None) -> bool:
    return _set_suspension(user, suspended=False, reason=reason, actor=actor, request=request)


EMAIL_CHANGE_SALT = "drake.accounts.email-change"
EMAIL_CHANGE_MAX_AGE = 60 * 60 * 48


def _email_change_token(user: User, new_email: str) -> str:
    """The link's token: the signed change (account, address it changes from, the password it was
    asked under as the session's hash of it, new address, when), encrypted. Signed alone it was
    base64 of plain JSON, both addresses readable wherever the URL goes (gunicorn's access log,
    the browser's history, a proxy's log). Fernet under FIELD_ENCRYPTION_KEYS, bound to this
    purpose (no other ciphertext of ours is a token), and the signature under SECRET_KEY inside
    it, as before: neither key alone makes a link."""
    from django.core import signing

    from senders import crypto

    change = {"u": user.pk, "f": user.email, "a": user.get_session_auth_hash(), "e": new_email}
    signed = signing.dumps(change, salt=EMAIL_CHANGE_SALT)
    return crypto.encrypt(signed.encode(), binding=EMAIL_CHANGE_SALT).rstrip("=")  # No '=' in a URL.


def _email_change_of(token: str) -> dict[str, Any] | None:
    """The change a token carries, if it is ours, for this purpose, and not expired."""
    from django.core import signing

    from senders import crypto

    try:
        signed = crypto.decrypt(token + "=" * (-len(token) % 4), binding=EMAIL_CHANGE_SALT)
        return signing.loads(signed.decode(), salt=EMAIL_CHANGE_SALT, max_age=EMAIL_CHANGE_MAX_AGE)
    except (crypto.DecryptionError, signing.BadSignature, UnicodeDecodeError):
        return None


def request_email_change(user: User, new_email: str, *, request: HttpRequest, confirm_url: str) -> None:
    """Mail a confirmation link to the new address; nothing changes until it is followed.

    `confirm_url` is a format string with a `{token}` placeholder. The token is opaque (no
    address can be read from the URL), expires after EMAIL_CHANGE_MAX_AGE, and is bound to the
    address it changes from: once the address changes (by this link or another), every older
    link is void, and none can switch it back. It is bound to the password too: whoever asked
    with a stolen password loses the link with the owner's next password (change or reset).
    Raises mail.MailUnavailable (nothing recorded) if the mail cannot go.
    """
    from accounts import mail

    token = _email_change_token(user, new_email.strip())
    mail.send_email_change(new_email.strip(), request.build_absolute_uri(confirm_url.format(token=token)))
    record("email.change_requested", actor=user, account=user, request=request)


def confirm_email_change(token: str, *, request: HttpRequest) -> User | None:
    """Apply a confirmed email change; None if the link is bad, expired, used, older than the
    last change of address or of password, or the address taken. After the commit the account's Stripe
    customer, if any, gets the new address (billing.actions.sync_customer_email: best effort)."""
    data = _email_change_of(token)
    if data is None:
        return None
    user = User.objects.filter(pk=data["u"], email=data.get("f")).first()
    if user is None or not constant_time_compare(data.get("a", ""), user.get_session_auth_hash()):
        return None
    if User.objects.filter(email__iexact=data["e"]).exclude(pk=user.pk).exists():
        return None
    from billing import actions as billing_actions

    try:
        with transaction.atomic():
            User.objects.filter(pk=user.pk).update(email=data["e"])
            record("email.changed", actor=user, actor_label=data["e"], account=user, request=request)
            # Stripe holds the email too (the customer was created with the old one).
            transaction.on_commit(partial(billing_actions.sync_customer_email, user.pk))
    except IntegrityError:
        return None
    user.email = data["e"]
    return user
