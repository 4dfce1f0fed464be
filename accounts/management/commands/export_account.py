"""`export_account --email E [--output FILE]`: the account's data as JSON (GDPR access/export)."""

from __future__ import annotations

import contextlib
import os
import stat
from typing import Any

from django.core.management.base import CommandError, CommandParser

from accounts import privacy
from accounts.models import User
from drake.commands import TextCommand


class Command(TextCommand):
    help = (
        "Write everything 3drake holds about an account as one JSON document: profile, plan, billing "
        "records, quota counters, sender metadata, API key and two-factor device metadata, message metadata, "
        "Idempotency-Keys, request logs, aggregates and security events. Never secrets, key hashes, request "
        "fingerprints or message content. Streams, so large accounts fit."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--email", required=True)
        parser.add_argument("--output", help="File to write (default: standard output).")

    def handle(self, *args: Any, **options: Any) -> None:
        user = User.objects.filter(email__iexact=options["email"].strip()).select_related("plan").first()
        if user is None:
            raise CommandError(f"No account with the email {options['email']}.")
        size = 0
        if options["output"]:
            path = options["output"]
            try:
                # Everything we hold about a person: for the operator's eyes only, whatever the umask.
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                # A file that was there keeps its mode otherwise; not so /dev/null, a terminal or a
                # pipe, which root would make its own alone.
                regular = stat.S_ISREG(os.fstat(fd).st_mode)
                if regular:
                    os.fchmod(fd, 0o600)
                out = open(fd, "w", encoding="utf-8")  # noqa: SIM115 (closed below)
            except OSError as exc:
                raise CommandError(f"Cannot write {path}: {exc.strerror}.") from exc
            privacy.export_requested(user, via="shell")  # Once it can be written.
            try:
                with out:
                    for chunk in privacy.export_chunks(user):
                        out.write(chunk)
                        size += len(chunk)
            except OSError as exc:
                # A full disk, say: a partial export must not pass for the whole one.
                if regular:
                    with contextlib.suppress(OSError):
                        os.unlink(path)
                kept = "; the incomplete file was removed" if regular else ""
                raise CommandError(f"Cannot write {path}: {exc.strerror}{kept}.") from exc
        else:
            privacy.export_requested(user, via="shell")
            for chunk in privacy.export_chunks(user):
                self.stdout.write(chunk, ending="")
        if options["output"]:
            self.stdout.write(self.style.SUCCESS(f"Exported {user.email} to {options['output']} ({size} characters)."))
