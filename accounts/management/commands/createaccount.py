"""`createaccount --email E --password P [--name N] [--staff]`."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError
from django.core.management.base import CommandError, CommandParser

from accounts.actions import EmailTaken, create_account
from accounts.models import User
from drake.commands import TextCommand


class Command(TextCommand):
    help = "Create an active account on the default plan (with --staff: a staff member with admin access)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--email", required=True)
        parser.add_argument("--password", required=True)
        parser.add_argument("--name", default="")
        parser.add_argument(
            "--staff", action="store_true", help="Allow sign-in to /admin/ (no permissions until a role is given)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            # As the model's fields check them (an address, lengths), before anything is written.
            for name in ("email", "name"):
                User._meta.get_field(name).clean(options[name].strip(), None)
            password_validation.validate_password(options["password"])
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        try:
            user = create_account(
                options["email"], options["password"], name=options["name"], is_staff=options["staff"], via="shell"
            )
        except EmailTaken as exc:
            raise CommandError(f"An account with the email {options['email']} exists already.") from exc
        kind = "staff account" if user.is_staff else "account"
        self.stdout.write(self.style.SUCCESS(f"Created {kind} {user.email} on plan {user.plan.name}."))
