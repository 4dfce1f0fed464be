"""Two-factor authentication (TOTP) for console users, on django-otp."""

from __future__ import annotations

import base64
import logging
import math

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from django_otp import device_classes
from django_otp import login as otp_login

from accounts import mail
from accounts.models import AuthenticatorDevice, User
from auditlog.events import record

logger = logging.getLogger(__name__)


def confirmed_device(user: User) -> AuthenticatorDevice | None:
    return AuthenticatorDevice.objects.filter(user=user, confirmed=True).first()


def pending_device(user: User) -> AuthenticatorDevice:
    """The unconfirmed device being set up (a fresh secret unless one is pending already)."""
    device = AuthenticatorDevice.objects.filter(user=user, confirmed=False).first()
    return device or AuthenticatorDevice.objects.create(user=user, name="Authenticator app", confirmed=False)


def secret_base32(device: AuthenticatorDevice) -> str:
    return base64.b32encode(device.bin_key).decode("ascii").rstrip("=")


def qr_svg(device: AuthenticatorDevice) -> str:
    import segno

    return segno.make(device.config_url, error="m").svg_inline(scale=4)


WRONG_CODE = "That code is not right. Codes change every 30 seconds."


def refusal(device: AuthenticatorDevice) -> str:
    """Why a code is refused before it is checked: django-otp takes none for a while after a
    miss (1 s, 2 s, 4 s...), so a right code then is not wrong, only early. Ask this before
    `verify`, which starts a longer wait when it fails."""
    allowed, info = device.verify_is_allowed()
    locked_until = (info or {}).get("locked_until")
    if allowed or locked_until is None:
        return WRONG_CODE
    wait = max(1, math.ceil((locked_until - timezone.now()).total_seconds()))
    return f"Too many wrong codes in a row: wait {wait} seconds, then enter the code your app shows."


def verify(device: AuthenticatorDevice, token: str) -> bool:
    token = "".join(token.split())
    return token.isdigit() and device.verify_token(token)


def enable(user: User, device: AuthenticatorDevice, token: str, *, request: HttpRequest) -> bool:
    if not verify(device, token):
        return False
    with transaction.atomic():
        AuthenticatorDevice.objects.filter(user=user).exclude(pk=device.pk).delete()
        device.confirmed = True
        device.save(update_fields=["confirmed"])
        record("2fa.enabled", actor=user, account=user, request=request)
    otp_login(request, device)
    return True


def disable(user: User, token: str, *, request: HttpRequest) -> bool:
    device = confirmed_device(user)
    if device is None or not verify(device, token):
        return False
    with transaction.atomic():
        AuthenticatorDevice.objects.filter(user=user).delete()
        record("2fa.disabled", actor=user, account=user, request=request)
    return True


def reset(user: User, *, reason: str, actor: User | None, request: HttpRequest | None = None) -> bool:
    """Staff: turn two-factor authentication off for `user`, who lost their authenticator.

    Every device of the account goes (confirmed or half set up, of every django-otp kind), so
    sign-in takes the password alone, a sign-in waiting for a code starts over, and a session
    verified with one of them is verified no more (the back office asks for a code again). The
    customer sets up a new one on the console's two-factor page. No secret is read or shown.
    Audited as `2fa.reset` with the reason, which the customer sees in their recent security
    activity (as "3drake staff", as a suspension).

    A staff account's second factor only a superuser resets (PermissionDenied): Support would
    otherwise strip an administrator's. Returns False, and records nothing, if there was no
    device to remove (a second click, or another agent first).
    """
    if (user.is_staff or user.is_superuser) and actor is not None and not actor.is_superuser:
        raise PermissionDenied("Only a superuser resets a staff member's two-factor authentication.")
    with transaction.atomic():
        removed = sum(model.objects.filter(user=user).delete()[0] for model in device_classes())
        if not removed:
            return False
        record(
            "2fa.reset",
            actor=actor,
            account=user,
            target=user,
            request=request,
            detail={"reason": reason[:300], "devices": removed},
        )
    # The owner hears of it, after the commit: a mail server that is down must not undo the
    # reset (it is logged instead).
    transaction.on_commit(lambda: _notify_reset(user, reason))
    return True


def _notify_reset(user: User, reason: str) -> None:
    try:
        mail.send_two_factor_reset(user, reason[:300])
    except Exception:
        logger.warning("Could not mail account %s about its two-factor reset.", user.pk, exc_info=True)
