"""`delete_account --email E --yes`: erase an account, keeping only what law requires."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from accounts import privacy
from accounts.models import User
from drake.commands import TextCommand


class Command(TextCommand):
    help = (
        "Erase an account: deletes its senders (secrets destroyed), API keys, messages and pending outbox "
        "content (queued messages are not sent), request logs, aggregates, two-factor devices, sessions and "
        "its own security events, and cancels its Stripe subscription. Keeps its invoices (accounting law), "
        "detached from the account, and one audit event recording the deletion. Needs --yes."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--email", required=True)
        parser.add_argument("--yes", action="store_true", help="Really delete (there is no undo).")

    def handle(self, *args: Any, **options: Any) -> None:
        user = User.objects.filter(email__iexact=options["email"].strip()).first()
        if user is None:
            raise CommandError(f"No account with the email {options['email']}.")
        if not options["yes"]:
            raise CommandError("Nothing deleted: add --yes to erase this account for good.")
        try:
            counts = privacy.delete_account(user, via="shell")
        except privacy.DeletionBlocked as exc:
            raise CommandError(f"Nothing deleted: {exc.for_staff()}") from exc
        for label, count in sorted(counts.items()):
            self.stdout.write(f"  {label}: {count}")
        self.stdout.write(
            self.style.SUCCESS(f"Deleted {options['email']}. Invoices, if any, were kept without the account.")
        )
