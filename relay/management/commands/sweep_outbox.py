"""`sweep_outbox`: what the periodic sweep does, run by hand."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from auditlog.events import record
from relay import outbox


class Command(BaseCommand):
    help = (
        "Re-publish delivery tasks for messages that are due but have no live task (broker was down, "
        "restarted, or a worker died), and fail queued messages past their lifetime. Changes nothing else."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        counts = outbox.sweep()
        record("outbox.swept", actor_label="shell", detail=counts)
        self.stdout.write(f"Published {counts['published']} message(s); expired {counts['expired']}.")
