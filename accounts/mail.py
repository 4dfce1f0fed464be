"""Mail the console sends to its own users (not relayed mail: that is the relay app's)."""

from __future__ import annotations

from django.conf import settings
from django.core.mail import send_mail
from django.http import HttpRequest
from django.template.loader import render_to_string

from accounts.models import User


class MailUnavailable(Exception):
    """The mail server refused, failed or timed out: nothing was sent."""


def _deliver(subject: str, body: str, to: str) -> None:
    try:
        send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [to])
    except OSError as exc:  # Refused, timed out, or an SMTP error (smtplib's are OSErrors).
        raise MailUnavailable(str(exc)) from exc


def _send(user: User, template: str, context: dict) -> None:
    subject = render_to_string(f"accounts/email/{template}_subject.txt", context).strip()
    body = render_to_string(f"accounts/email/{template}.txt", context)
    _deliver(subject, body, user.email)


def send_activation(user: User, link: str) -> None:
    _send(user, "activate", {"user": user, "link": link})


def send_signup_existing(user: User, *, request: HttpRequest) -> None:
    from django.urls import reverse

    context = {
        "user": user,
        "login_link": request.build_absolute_uri(reverse("accounts:login")),
        "reset_link": request.build_absolute_uri(reverse("accounts:password_reset")),
    }
    _send(user, "signup_existing", context)


def send_email_change(new_email: str, link: str) -> None:
    subject = render_to_string("accounts/email/email_change_subject.txt", {}).strip()
    body = render_to_string("accounts/email/email_change.txt", {"link": link})
    _deliver(subject, body, new_email)


def send_two_factor_reset(user: User, reason: str) -> None:
    """The account's owner hears of a staff reset of their two-factor: a request made in their
    name (social engineering) is then noticed by the one person who can tell."""
    _send(user, "two_factor_reset", {"user": user, "reason": reason})
