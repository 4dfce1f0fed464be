"""A two-factor sign-in during rotate_encryption_keys undid the rotation of that authenticator.
AuthenticatorDevice.verify_token (django-otp's TOTPDevice code) ends in a full `save()`, which
wrote back the key_encrypted it had loaded, under the old key, after the command re-encrypted it.
The command exited 0 and said every value was under the first key; the operator dropped the old
key as README says, and that person's authenticator no longer decrypted (locked out of the
console, or of the back office for staff). Found by an operator review helper."""

from io import StringIO

from cryptography.fernet import Fernet
from django.core.management import call_command
from django_otp.oath import totp

from accounts.models import AuthenticatorDevice


def test_a_sign_in_during_the_rotation_does_not_put_the_old_ciphertext_back(alice, settings):
    device = AuthenticatorDevice.objects.create(user=alice, name="phone", confirmed=True)
    old_keys = list(settings.FIELD_ENCRYPTION_KEYS)
    new = Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [new, *old_keys]

    signing_in = AuthenticatorDevice.objects.get(pk=device.pk)  # The login form has loaded it...
    out = StringIO()
    call_command("rotate_encryption_keys", "--no-progress", stdout=out)  # ...the rotation runs...
    assert "0 unreadable" in out.getvalue()
    assert signing_in.verify_token(str(totp(signing_in.bin_key)).zfill(6))  # ...and the code is checked.

    settings.FIELD_ENCRYPTION_KEYS = [new]  # The old key dropped, after a clean run.
    stored = AuthenticatorDevice.objects.get(pk=device.pk).key_encrypted
    Fernet(new).decrypt(stored.encode())  # InvalidToken: the rotation was undone.
