"""Encryption at rest for secrets and outbox content: Fernet under FIELD_ENCRYPTION_KEYS.

The first key encrypts, every key decrypts (cryptography's MultiFernet), so keys rotate without
downtime: add a new key first, run `rotate_encryption_keys`, then drop the old one.

Fernet has no associated data, so each plaintext carries the identity of the row it belongs to
(`binding`), checked after decryption: a ciphertext copied into another row does not decrypt
there.
"""

from __future__ import annotations

import json
from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver


class DecryptionError(Exception):
    """The ciphertext is corrupt, under an unknown key, or bound to another row."""


def _keys() -> list[str]:
    """FIELD_ENCRYPTION_KEYS as the app uses them: stripped, empty entries skipped (",NEW,OLD",
    a shell's "${NEW},${OLD}" with NEW unset, encrypts with NEW)."""
    return [key.strip() for key in settings.FIELD_ENCRYPTION_KEYS if key.strip()]


@cache
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key) for key in keys])


def fernet() -> MultiFernet:
    return _fernet(tuple(_keys()))


@receiver(setting_changed)
def _forget_keys(setting: str, **kwargs: object) -> None:
    if setting == "FIELD_ENCRYPTION_KEYS":
        _fernet.cache_clear()


def encrypt(plaintext: bytes, *, binding: str) -> str:
    """Encrypt `plaintext` bound to `binding` (e.g. "sender:snd_x:account:42")."""
    envelope = json.dumps({"b": binding}).encode() + b"\n" + plaintext
    return fernet().encrypt(envelope).decode("ascii")


def decrypt(token: str, *, binding: str) -> bytes:
    """The plaintext of `token`, provided it was bound to `binding`."""
    try:
        envelope = fernet().decrypt(token.encode("ascii"))
    except (InvalidToken, ValueError) as exc:
        raise DecryptionError("The ciphertext does not decrypt under FIELD_ENCRYPTION_KEYS.") from exc
    header, _, plaintext = envelope.partition(b"\n")
    try:
        bound_to = json.loads(header)["b"]
    except (ValueError, KeyError, TypeError) as exc:
        raise DecryptionError("The plaintext carries no binding.") from exc
    if bound_to != binding:
        raise DecryptionError("The ciphertext belongs to another row.")
    return plaintext


def rotate(token: str) -> str:
    """Re-encrypt under the first key; the plaintext (binding included) is unchanged."""
    return fernet().rotate(token.encode("ascii")).decode("ascii")


def primary_key_encrypted(token: str) -> bool:
    """Whether `token` is already under the first key (so a rotation run can skip it)."""
    primary = Fernet(_keys()[0])  # The first key the app encrypts with.
    try:
        primary.decrypt(token.encode("ascii"))
    except InvalidToken:
        return False
    return True
