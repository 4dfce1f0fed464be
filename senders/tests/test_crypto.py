"""Secrets are encrypted at rest, bound to their row, and rotate to a new key."""

from io import StringIO

import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command
from django.db import connection

from senders import actions, crypto
from senders.models import Sender

SECRET = "app-password-XYZZY-4242"


@pytest.fixture
def sender(alice):
    return actions.create_sender(alice, {"provider": "gmail", "from_email": "alice@example.org", "password": SECRET})


def _raw_rows():
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM senders_sender")
        return repr(cursor.fetchall())


def test_the_database_holds_only_ciphertext(sender):
    assert SECRET not in _raw_rows()
    assert Sender.objects.get(pk=sender.pk).get_password() == SECRET


def test_a_secret_copied_into_another_row_does_not_decrypt(sender, charlie):
    other = actions.create_sender(
        charlie, {"provider": "gmail", "from_email": "charlie@example.net", "password": "his"}
    )
    Sender.objects.filter(pk=other.pk).update(password_encrypted=sender.password_encrypted)
    other.refresh_from_db()
    with pytest.raises(crypto.DecryptionError, match="another row"):
        other.get_password()


def test_keys_rotate_and_the_old_key_can_be_dropped(sender, settings):
    old_key = settings.FIELD_ENCRYPTION_KEYS[0]
    new_key = Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [new_key, old_key]
    out = StringIO()
    call_command("rotate_encryption_keys", "--no-progress", stdout=out)
    assert "Re-encrypted 1 value(s)" in out.getvalue()

    settings.FIELD_ENCRYPTION_KEYS = [new_key]
    assert Sender.objects.get(pk=sender.pk).get_password() == SECRET

    # Safe to re-run: nothing left to do.
    out = StringIO()
    call_command("rotate_encryption_keys", "--no-progress", stdout=out)
    assert "Re-encrypted 0 value(s); 1 already under the first key" in out.getvalue()


def test_without_the_old_key_nothing_decrypts(sender, settings):
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(crypto.DecryptionError):
        Sender.objects.get(pk=sender.pk).get_password()


def test_rotation_shows_progress(sender, settings, capsys):
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode(), settings.FIELD_ENCRYPTION_KEYS[0]]
    call_command("rotate_encryption_keys")
    assert "senders.Sender.password_encrypted" in capsys.readouterr().err


def test_rotation_that_cannot_decrypt_a_value_fails(sender, settings):
    """Run without the key that encrypted a value (the old key left out of FIELD_ENCRYPTION_KEYS
    too early), nothing can be re-encrypted: the command says so with its exit status, so a
    script does not go on to drop the old key."""
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    out = StringIO()
    with pytest.raises(CommandError, match="1 value"):
        call_command("rotate_encryption_keys", "--no-progress", stdout=out)
    assert "Re-encrypted 0 value(s); 0 already under the first key; 1 unreadable." in out.getvalue()
