"""A model field that holds only Fernet ciphertext (see senders.crypto)."""

from __future__ import annotations

from django.db import models


class EncryptedField(models.TextField):
    """Ciphertext from `senders.crypto.encrypt`; never plaintext.

    It is deliberately dumb: models encrypt and decrypt through explicit methods that know the
    row's binding, so no form, serializer or admin can read plaintext by accident. It exists so
    `rotate_encryption_keys` can find every encrypted column, and so the columns say what they are.
    """

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("editable", False)
        kwargs.setdefault("blank", True)
        super().__init__(*args, **kwargs)
