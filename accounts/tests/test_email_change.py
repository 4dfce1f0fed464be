"""The email-change link: opaque, expiring, single use, bound to the address it changes from.

Its token was signing.dumps of both addresses (base64 JSON, readable in any log of the URL); it
is now that signed change encrypted (accounts.actions._email_change_token). Single use and the
binding to the old address are tested in test_privacy_rights.py.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import timedelta

import pytest
import time_machine
from django.core import mail, signing
from django.utils import timezone

from accounts import actions
from conftest import PASSWORD
from senders import crypto

pytestmark = pytest.mark.django_db


def _request_change(client, alice) -> str:
    client.force_login(alice)
    client.post("/account/", {"new_email": "alice@new.example", "password": PASSWORD})
    return re.search(r"http://testserver(/account/email/\S+/)", mail.outbox[-1].body).group(1)


def _every_decoding(text: str) -> str:
    """The text with every base64 run in it decoded (what a log reader can do by hand)."""
    out = [text]
    for candidate in re.findall(r"[A-Za-z0-9_\-]{8,}", text):
        try:
            out.append(base64.urlsafe_b64decode(candidate + "=" * (-len(candidate) % 4)).decode("utf-8", "replace"))
        except (binascii.Error, ValueError):
            continue
    return "\n".join(out)


def test_the_link_gives_away_neither_address(client, alice):
    link = _request_change(client, alice)
    readable = _every_decoding(link)
    assert "alice@example.org" not in readable and "alice@new.example" not in readable
    assert "=" not in link


def test_the_link_expires(client, alice):
    link = _request_change(client, alice)
    later = timezone.now() + timedelta(seconds=actions.EMAIL_CHANGE_MAX_AGE + 5)
    with time_machine.travel(later):
        assert client.get(link).status_code == 400
    alice.refresh_from_db()
    assert alice.email == "alice@example.org"


def test_a_link_signed_as_before_the_encryption_is_refused(client, alice):
    """Links mailed before the token was encrypted stopped working (the customer asks again)."""
    old = signing.dumps({"u": alice.pk, "f": alice.email, "e": "alice@new.example"}, salt=actions.EMAIL_CHANGE_SALT)
    client.force_login(alice)
    assert client.get(f"/account/email/{old}/").status_code == 400


def test_a_ciphertext_of_another_purpose_is_no_token(client, alice):
    signed = signing.dumps({"u": alice.pk, "f": alice.email, "e": "alice@new.example"}, salt=actions.EMAIL_CHANGE_SALT)
    elsewhere = crypto.encrypt(signed.encode(), binding="sender:snd_x:account:1")
    client.force_login(alice)
    assert client.get(f"/account/email/{elsewhere}/").status_code == 400
    alice.refresh_from_db()
    assert alice.email == "alice@example.org"


def test_a_password_change_voids_a_pending_link(client, alice):
    """Whoever knew alice's password could ask to move her account to their own mailbox; her new
    password (which logs their session out) must void that link too, or it still takes the account:
    the address becomes theirs, and a password reset to it is the rest."""
    link = _request_change(client, alice)
    alice.set_password("a new and different password")
    alice.save(update_fields=["password"])
    assert client.get(link).status_code == 400
    alice.refresh_from_db()
    assert alice.email == "alice@example.org"


def test_an_email_change_while_the_mail_server_is_down_is_a_503(client, alice, settings):
    """It was a 500."""
    from auditlog.models import AuditEvent
    from drake.testing.smtp import free_port

    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", free_port()
    client.force_login(alice)
    response = client.post("/account/", {"new_email": "alice@new.example", "password": PASSWORD})
    assert response.status_code == 503
    assert not AuditEvent.objects.filter(action="email.change_requested").exists()
