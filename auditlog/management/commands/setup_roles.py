"""`setup_roles`: create or refresh the staff groups (Support, Finance) with least privilege."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group, Permission
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from auditlog.events import record
from auditlog.roles import ROLES


class Command(BaseCommand):
    help = (
        "Create or refresh the Support and Finance groups so their permissions are exactly the "
        "least-privilege lists in auditlog/roles.py (extra permissions are removed). Safe to re-run."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        with transaction.atomic():
            for name, codes in ROLES.items():
                permissions = []
                for code in codes:
                    app_label, codename = code.split(".")
                    try:
                        permissions.append(Permission.objects.get(content_type__app_label=app_label, codename=codename))
                    except Permission.DoesNotExist as exc:
                        raise CommandError(f"Unknown permission {code}: run migrate first.") from exc
                group, created = Group.objects.get_or_create(name=name)
                group.permissions.set(permissions)
                self.stdout.write(f"{'Created' if created else 'Refreshed'} {name}: {len(permissions)} permission(s).")
            record("roles.setup", actor_label="shell", detail={"roles": sorted(ROLES)})
        self.stdout.write(self.style.SUCCESS(f"{len(ROLES)} role(s) set up."))
