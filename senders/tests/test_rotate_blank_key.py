"""FIELD_ENCRYPTION_KEYS with an empty first entry (",NEW,OLD", as a
shell writes "${NEW},${OLD}" when NEW is unset, or a stray comma) passes `check`, and the app
encrypts and decrypts with it (senders.crypto skips empty entries), but rotate_encryption_keys
crashed on the first value with a traceback: `primary_key_encrypted` built a Fernet from
FIELD_ENCRYPTION_KEYS[0] unstripped of empties ("ValueError: Fernet key must be 32 url-safe
base64-encoded bytes."). It must rotate under the key the app encrypts with, or refuse in one line."""

from io import StringIO

from cryptography.fernet import Fernet
from django.core import checks
from django.core.management import CommandError, call_command

from senders import actions as sender_actions
from senders.models import Sender


def test_a_leading_empty_entry_in_the_key_list_is_no_traceback(alice, settings):
    sender = sender_actions.create_sender(
        alice, {"provider": "gmail", "from_email": "alice@example.org", "password": "app password"}
    )
    new = Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = ["", new, *settings.FIELD_ENCRYPTION_KEYS]
    assert not [m for m in checks.run_checks() if m.level >= checks.ERROR]  # The configuration is accepted.
    try:
        call_command("rotate_encryption_keys", "--no-progress", stdout=StringIO())
    except CommandError:
        return  # Refused in one line: acceptable.
    except Exception as exc:  # noqa: BLE001
        raise AssertionError(f"rotate_encryption_keys crashed: {type(exc).__name__}: {exc}") from exc
    Fernet(new).decrypt(Sender.objects.get(pk=sender.pk).password_encrypted.encode())
