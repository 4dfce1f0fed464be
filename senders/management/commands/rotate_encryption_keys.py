"""`rotate_encryption_keys`: re-encrypt every stored secret under the first FIELD_ENCRYPTION_KEYS key."""

from __future__ import annotations

import sys
from typing import Any

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError, CommandParser

from auditlog.events import record
from senders import crypto
from senders.fields import EncryptedField

BATCH = 500


def encrypted_columns() -> list[tuple[type, str]]:
    """Every (model, field name) holding ciphertext, across all apps."""
    return [
        (model, field.name)
        for model in apps.get_models()
        for field in model._meta.get_fields()
        if isinstance(field, EncryptedField)
    ]


class Command(BaseCommand):
    help = (
        "Re-encrypt every encrypted column (sender secrets, authenticator secrets, outbox content) "
        "with the first key of FIELD_ENCRYPTION_KEYS. Safe to interrupt and re-run. Once a run exits 0 "
        "the other keys can be removed; not while it exits 1 (some value decrypted with no key)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--no-progress", action="store_true", help="Do not draw a progress bar.")

    def handle(self, *args: Any, **options: Any) -> None:
        show = not options["no_progress"]
        rotated = current = unreadable = 0
        for model, name in encrypted_columns():
            label = f"{model._meta.label}.{name}"
            rows = model._default_manager.exclude(**{name: ""}).order_by("pk")
            total = rows.count()
            done = 0
            last_pk = None
            while True:
                batch = rows.filter(pk__gt=last_pk) if last_pk is not None else rows
                chunk = list(batch.values_list("pk", name)[:BATCH])
                if not chunk:
                    break
                for pk, token in chunk:
                    done += 1
                    last_pk = pk
                    if crypto.primary_key_encrypted(token):
                        current += 1
                        continue
                    try:
                        new = crypto.rotate(token)
                    except Exception:
                        unreadable += 1
                        continue
                    # Conditional: a row changed meanwhile (new secret) is already under the new key.
                    rotated += model._default_manager.filter(pk=pk, **{name: token}).update(**{name: new})
                if show:
                    self._progress(label, done, total)
            if show and total:
                sys.stderr.write("\n")
        record(
            "encryption_keys.rotated",
            actor_label="shell",
            detail={"rotated": rotated, "current": current, "unreadable": unreadable},
        )
        summary = f"Re-encrypted {rotated} value(s); {current} already under the first key; {unreadable} unreadable."
        self.stdout.write(self.style.SUCCESS(summary) if not unreadable else self.style.WARNING(summary))
        if unreadable:
            # Not done: a script must not go on to drop the old key (exit status 1).
            raise CommandError(
                f"{unreadable} value(s) decrypt with no key of FIELD_ENCRYPTION_KEYS, so they were not "
                "re-encrypted: drop no old key yet (add back the one that encrypted them, or enter them again)."
            )

    def _progress(self, label: str, done: int, total: int) -> None:
        width = 30
        filled = int(width * done / total) if total else width
        sys.stderr.write(f"\r{label:<32} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
        sys.stderr.flush()
