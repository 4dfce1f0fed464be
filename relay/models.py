"""The relay's data: minimized message metadata, the encrypted outbox, and delivery attempts.

A message's content (recipients list, subject, body, attachments, and once some recipients have
it, those the server deferred: relay.refusals) lives only in OutboxContent, encrypted, and only
until the message reaches a terminal state. What stays is the metadata the
privacy policy lists: from and to addresses, a minimized subject, size, status, provider codes
and identifiers, timestamps.
"""

from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from senders.fields import EncryptedField


def new_public_id() -> str:
    return f"msg_{secrets.token_hex(12)}"


class Status(models.TextChoices):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"


TERMINAL = (Status.SENT, Status.FAILED)


class MessageQuerySet(models.QuerySet["Message"]):
    def for_account(self, user: object) -> MessageQuerySet:
        return self.filter(user=user)


class Message(models.Model):
    # Unique by a constraint in Meta rather than unique=True, which on PostgreSQL also adds a
    # varchar_pattern_ops index for LIKE prefixes that nothing here runs. The user's own index
    # is left out too: msg_account_recent and msg_account_status lead with it. Every write of a
    # message (the insert, its claim, its outcome: none of them a HOT update, since each changes
    # an indexed column) updates every index: two fewer of ten cost ~15% less of PostgreSQL's
    # time for the three (bench/README.md, seventh session).
    public_id = models.CharField(max_length=32, default=new_public_id, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="messages", db_index=False
    )
    # SET_NULL: deleting a sender keeps its delivery log (the from address is kept below).
    sender = models.ForeignKey("senders.Sender", null=True, on_delete=models.SET_NULL, related_name="messages")
    api_key = models.ForeignKey("accounts.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    from_email = models.EmailField(max_length=254)
    # To addresses only; Cc and Bcc are kept as counts (Bcc addresses are nobody's business).
    to = models.JSONField(default=list)
    cc_count = models.PositiveIntegerField(default=0)
    bcc_count = models.PositiveIntegerField(default=0)
    subject = models.JSONField(default=dict, help_text="The subject in the plan's minimized form only.")
    size_approx = models.PositiveIntegerField(default=0, help_text="Request size rounded up to 1 KiB.")
    # <32 hex digits@the From domain>: 288 characters with the longest domain (253). At 200 a
    # sender with a long domain got a 503 on every send (the row refused).
    message_id_header = models.CharField(max_length=300, help_text="Our Message-ID, reused on every attempt.")

    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    # While `sending`: the worker holding the message must finish by then, or another takes over.
    lease_until = models.DateTimeField(null=True, blank=True)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(help_text="Undelivered by then: failed with category `expired`.")
    last_error = models.JSONField(null=True, blank=True)
    provider_message_id = models.CharField(max_length=200, blank=True)
    refused_recipients = models.JSONField(
        default=dict,
        blank=True,
        help_text='{"count": n, "codes": {"550": n}} of recipients refused for good ("expired": those deferred '
        'until the lifetime ended); "deferred": {"count", "codes"} of those still to be tried (relay.refusals).',
    )
    created_at = models.DateTimeField(default=timezone.now)
    # When the server first accepted the message, for some recipients if it deferred others.
    sent_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = MessageQuerySet.as_manager()

    class Meta:
        ordering = ("-created_at", "-id")
        constraints = [models.UniqueConstraint(fields=["public_id"], name="msg_public_id_unique")]
        indexes = [
            # The delivery log and GET /v1/messages: newest first per account, optionally by status.
            models.Index(fields=["user", "-created_at", "-id"], name="msg_account_recent"),
            models.Index(fields=["user", "status", "-created_at"], name="msg_account_status"),
            # The outbox sweep: only unfinished messages, by when they are due.
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(status__in=["queued", "sending"]),
                name="msg_sweep_due",
            ),
            # relay.claims.claim_more: a sender's due messages, oldest first.
            models.Index(
                fields=["sender", "next_attempt_at"],
                condition=Q(status="queued"),
                name="msg_sender_due",
            ),
        ]

    def __str__(self) -> str:
        return self.public_id

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL


class OutboxContent(models.Model):
    """The encrypted content of an unfinished message; deleted at the terminal state."""

    message = models.OneToOneField(Message, primary_key=True, on_delete=models.CASCADE, related_name="content")
    content_encrypted = EncryptedField()

    def __str__(self) -> str:
        return f"content of {self.message_id}"


class DeliveryAttempt(models.Model):
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=20, help_text="sent, retry, failed, deferred, partial")
    category = models.CharField(max_length=30, blank=True)
    smtp_code = models.PositiveIntegerField(null=True, blank=True)
    reply = models.CharField(max_length=320, blank=True, help_text="The server's reply, sanitised and truncated.")

    class Meta:
        ordering = ("message", "number")

    def __str__(self) -> str:
        return f"{self.message_id} #{self.number} {self.outcome}"


class IdempotencyKey(models.Model):
    """An Idempotency-Key of POST /v1/send, kept 24 hours. Unique per account: the database,
    not a check-then-insert, decides who was first."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64, help_text="SHA-256 of the canonical request.")
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "key"], name="idempotency_key_per_account")]

    def __str__(self) -> str:
        return self.key


class ApiRequest(models.Model):
    """Usage metadata of one /v1/ request (privacy policy 2.3): no body, no query string."""

    # No index of its own: apireq_account_recent leads with it (one index fewer per request).
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    key_prefix = models.CharField(max_length=16, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    method = models.CharField(max_length=8)
    endpoint = models.CharField(max_length=100, help_text="The route, e.g. /v1/messages/{id}, never the concrete URL.")
    status = models.PositiveSmallIntegerField()
    error_type = models.CharField(max_length=40, blank=True)
    size_bucket = models.CharField(max_length=12, help_text="Approximate request size, e.g. <1K, 1-10K.")
    ip = models.GenericIPAddressField(null=True, blank=True)
    # Set once the IP is cut to its /24 (IPv4) or /48 (IPv6) network after REQUEST_IP_RETENTION_DAYS.
    ip_truncated = models.BooleanField(default=False)
    user_agent = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ("-created_at", "-id")
        indexes = [
            # The console's API request log and GET /v1/usage, newest first per account.
            models.Index(fields=["user", "-created_at"], name="apireq_account_recent"),
            # Retention rotation deletes oldest first.
            models.Index(fields=["created_at"], name="apireq_created"),
        ]

    def __str__(self) -> str:
        return f"{self.method} {self.endpoint} {self.status}"


class DailyUsage(models.Model):
    """What raw logs become after their retention window: counts per account, day and dimension."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    # e.g. "messages.status" / "sent", "messages.error" / "auth_failed", "requests.endpoint" / "POST /v1/send"
    metric = models.CharField(max_length=40)
    dimension = models.CharField(max_length=120)
    count = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ("-day", "metric", "dimension")
        constraints = [
            models.UniqueConstraint(fields=["user", "day", "metric", "dimension"], name="one_aggregate_per_key")
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.metric}={self.dimension}: {self.count}"
