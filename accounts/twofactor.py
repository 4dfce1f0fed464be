"""Two-factor authentication (TOTP) for console users, on django-otp."""

from __future__ import annotations

import base64

from django.db import transaction
from django.http import HttpRequest
from django_otp import login as otp_login

from accounts.models import AuthenticatorDevice, User
from auditlog.events import record


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
