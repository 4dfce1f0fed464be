"""Authenticators move from django-otp's TOTPDevice (its secret in clear, hex) to
AuthenticatorDevice (encrypted, bound to its account), and the clear copies are deleted."""

from binascii import hexlify, unhexlify

from django.db import migrations

FIELDS = (
    "name", "confirmed", "throttling_failure_timestamp", "throttling_failure_count",
    "created_at", "last_used_at", "step", "t0", "digits", "tolerance", "drift", "last_t",
)  # fmt: skip


def move(apps, schema_editor):
    from senders import crypto

    old = apps.get_model("otp_totp", "TOTPDevice")
    new = apps.get_model("accounts", "AuthenticatorDevice")
    for device in old.objects.all().iterator():
        key = crypto.encrypt(unhexlify(device.key.encode()), binding=f"totp:{device.user_id}")
        moved = new(user_id=device.user_id, key_encrypted=key, **{f: getattr(device, f) for f in FIELDS})
        moved.save()
        # created_at is auto_now_add: keep the original's.
        new.objects.filter(pk=moved.pk).update(created_at=device.created_at)
        device.delete()


def move_back(apps, schema_editor):
    # Rolled back, 0005 drops AuthenticatorDevice's table: its devices go back to TOTPDevice
    # first (in clear, as that model keeps them), or every second factor would be lost.
    from senders import crypto

    old = apps.get_model("otp_totp", "TOTPDevice")
    new = apps.get_model("accounts", "AuthenticatorDevice")
    for device in new.objects.all().iterator():
        key = crypto.decrypt(device.key_encrypted, binding=f"totp:{device.user_id}")
        moved = old(user_id=device.user_id, key=hexlify(key).decode(), **{f: getattr(device, f) for f in FIELDS})
        moved.save()
        old.objects.filter(pk=moved.pk).update(created_at=device.created_at)
        device.delete()


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0005_authenticator_device"),
        ("otp_totp", "0003_add_timestamps"),
    ]

    operations = [migrations.RunPython(move, move_back)]
