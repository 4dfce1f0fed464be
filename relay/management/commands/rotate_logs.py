"""`rotate_logs`: retention. Aggregate, then delete, raw operational logs older than the plan's window."""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from auditlog.events import record
from relay import retention


class Command(BaseCommand):
    help = (
        "For each account, fold message and API request records older than its plan's retention window "
        "into daily aggregates (counts by status, error category, endpoint), then delete them; truncate "
        "request IPs (IPv4 /24, IPv6 /48) after REQUEST_IP_RETENTION_DAYS; delete customers' security "
        "events after SECURITY_EVENT_RETENTION_DAYS, Idempotency-Keys after their 24 hours and expired "
        "console sessions. Keeps the aggregates, billing records and staff audit trails. Runs in batches: "
        "safe to interrupt and re-run."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--quiet", action="store_true", help="Only the summary line.")

    def handle(self, *args: Any, **options: Any) -> None:
        def progress(line: str) -> None:
            if not options["quiet"]:
                sys.stderr.write(line + "\n")

        report = retention.rotate(progress=progress)
        record(
            "logs.rotated",
            actor_label="shell",
            detail={"messages": report.messages, "requests": report.requests, "ips": report.ips_truncated},
        )
        self.stdout.write(self.style.SUCCESS(report.line()))
