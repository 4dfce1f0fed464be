"""Append-only audit events: who did what to which object, never a secret or message content."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import connections, models, transaction
from django.utils import timezone

# On PostgreSQL a trigger (migration 0003) refuses every UPDATE of an event but the actor's
# account going (ON DELETE SET NULL) and every DELETE outside `erase()`, which says so for the
# length of its own statement with this transaction-local setting.
ERASE_SETTING = "drake.audit_erase"


class AuditEventQuerySet(models.QuerySet["AuditEvent"]):
    def update(self, **kwargs: Any) -> int:
        raise TypeError("Audit events are append-only.")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise TypeError("Audit events are append-only (retention and account erasure use erase()).")

    def erase(self) -> int:
        """Delete these events: for retention and account erasure only. Returns how many."""
        connection = connections[self.db]
        with transaction.atomic(using=self.db):
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute("SELECT set_config(%s, 'on', true)", [ERASE_SETTING])
            try:
                return super().delete()[0]
            finally:
                if connection.vendor == "postgresql":
                    with connection.cursor() as cursor:
                        cursor.execute("SELECT set_config(%s, '', true)", [ERASE_SETTING])

    def for_account(self, user: Any) -> AuditEventQuerySet:
        return self.filter(account_id=user.pk)


class AuditEvent(models.Model):
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    # The person who acted: a customer, a staff member, or None for the system/an operator shell.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Kept as text so the trail survives the actor's deletion.
    actor_label = models.CharField(max_length=254, blank=True)
    actor_ip = models.GenericIPAddressField(null=True, blank=True)
    # Staff acting on someone else's account. Set when the event is written, so that it stays
    # staff's (kept by retention and account deletion, its IP and name hidden from the
    # customer) after the staff member's own account is gone and `actor` is NULL.
    actor_is_staff = models.BooleanField(default=False)
    # The customer account the event concerns (for the console's recent-activity page).
    account_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    action = models.CharField(max_length=60, db_index=True)
    target_type = models.CharField(max_length=60, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    detail = models.JSONField(default=dict, blank=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ("-created_at", "-id")
        indexes = [
            # Used by the console's recent-activity list and the export.
            models.Index(fields=["account_id", "-created_at"], name="audit_account_recent"),
        ]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.actor_label or 'system'} {self.action}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None:
            raise TypeError("Audit events are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise TypeError("Audit events are append-only.")

    @staticmethod
    def ip_shown_to_account(
        actor_id: int | None, actor_ip: str | None, account_id: int | None, actor_is_staff: bool = False
    ) -> str | None:
        """The IP an event came from, as the account's owner sees it (console, export): theirs
        and the system's, not staff's. That a support agent looked is the customer's to know;
        where the agent was is not."""
        if actor_is_staff:
            return None
        return actor_ip if actor_id is None or actor_id == account_id else None
