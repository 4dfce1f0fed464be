"""`apikey create --email E --name N` · `apikey list --email E` · `apikey revoke --prefix P`."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError, CommandParser

from accounts import actions
from accounts.models import ApiKey, User
from drake.commands import TextCommand


class Command(TextCommand):
    help = "Create, list or revoke API keys. `create` prints the raw key once, on its own last line."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="command", required=True)
        create = sub.add_parser("create", help="Create a key and print it (it is never shown again).")
        create.add_argument("--email", required=True)
        create.add_argument("--name", required=True)
        listing = sub.add_parser("list", help="List an account's keys (prefix, name, dates; never secrets).")
        listing.add_argument("--email", required=True)
        revoke = sub.add_parser("revoke", help="Revoke the key with this prefix; requests with it get 401.")
        revoke.add_argument(
            "--prefix",
            required=True,
            help="The key's prefix, with or without drk_ (or the whole key: only its prefix is read).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        getattr(self, f"handle_{options['command']}")(**options)

    def _user(self, email: str) -> User:
        try:
            return User.objects.get(email__iexact=email.strip())
        except User.DoesNotExist as exc:
            raise CommandError(f"No account with the email {email}.") from exc

    def handle_create(self, email: str, name: str, **_: Any) -> None:
        user = self._user(email)
        try:
            ApiKey._meta.get_field("name").clean(name, None)
        except ValidationError as exc:
            raise CommandError(f"--name: {' '.join(exc.messages)}") from exc
        key, raw = actions.create_api_key(user, name, via="shell")
        self.stdout.write(
            f"Created key {key.display_prefix} ({key.name}) for {user.email}. Store it now; it is not shown again:"
        )
        self.stdout.write(raw)

    def handle_list(self, email: str, **_: Any) -> None:
        user = self._user(email)
        keys = ApiKey.objects.for_account(user)
        for key in keys:
            status = f"revoked {key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "active"
            last = f"{key.last_used_at:%Y-%m-%d %H:%M}" if key.last_used_at else "never"
            self.stdout.write(
                f"{key.display_prefix}\t{key.name}\tcreated {key.created_at:%Y-%m-%d %H:%M}\tlast used {last}\t{status}"
            )
        self.stdout.write(f"{len(keys)} key(s).")

    def handle_revoke(self, prefix: str, **_: Any) -> None:
        # A whole key (a leaked one, pasted) revokes too: only its prefix is read, or echoed.
        prefix = prefix.removeprefix("drk_").split("_", 1)[0].rstrip(".…")
        try:
            key = ApiKey.objects.select_related("user").get(prefix=prefix)
        except ApiKey.DoesNotExist as exc:
            raise CommandError(f"No key with the prefix {prefix}.") from exc
        if actions.revoke_api_key(key, via="shell"):
            self.stdout.write(self.style.SUCCESS(f"Revoked {key.display_prefix} ({key.name}) of {key.user.email}."))
        else:
            self.stdout.write(f"{key.display_prefix} was revoked already; nothing changed.")
