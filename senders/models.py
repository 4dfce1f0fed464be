"""Senders: a customer's own provider account that 3drake relays through."""

from __future__ import annotations

import secrets
from datetime import datetime
from functools import cache
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone

from drake import snapshots, sql
from senders import crypto
from senders.fields import EncryptedField
from senders.presets import LIMITS, Limits, Provider, Security


def new_public_id() -> str:
    return f"snd_{secrets.token_hex(12)}"


class SenderQuerySet(models.QuerySet["Sender"]):
    def for_account(self, user: object) -> SenderQuerySet:
        return self.filter(user=user)

    def of_account(self, user: Any, public_id: str) -> Sender | None:
        """`for_account(user).filter(public_id=...).first()`, as SQL written once (the send path)."""
        found = _sender_of_account().rows([public_id, user.pk])
        sender = found[0][0] if found else None
        if sender is None:
            _snapshots.discard((user.pk, public_id))
        else:
            _snapshots.put((user.pk, public_id), sender)
        return sender

    def of_account_from_snapshot(self, user: Any, public_id: str) -> Sender | None:
        """The sender `of_account` last read in this process, else read now. Only a statement
        that also runs `unchanged(sender)` may act on it (drake.snapshots)."""
        return _snapshots.get((user.pk, public_id)) or self.of_account(user, public_id)

    def unchanged(self, sender: Sender, connection: Any) -> tuple[str, list[Any]]:
        """A condition (drake.sql) that `sender` is still as read in what an accept takes from
        it: its owner, not disabled, its From address and its recipient cap."""
        return sql.unchanged(sender, ACCEPT_FIELDS, connection)


# What an accept reads of a sender (relay.actions): the owner, whether it is disabled, the From
# address and domain of the Message-ID, and the recipient cap (provider default or override).
ACCEPT_FIELDS = ("user_id", "disabled_at", "from_email", "provider", "max_recipients_per_message")
# The senders this process read for an accept, by (account id, public id).
_snapshots = snapshots.Snapshots(size=4096)


@cache
def _sender_of_account() -> sql.Select:
    table = Sender._meta.db_table
    return sql.Select(
        sql.Columns(Sender, "s"),
        build=lambda s: f"SELECT {s} FROM {table} s WHERE s.public_id = %s AND s.user_id = %s",  # noqa: S608
    )


class Sender(models.Model):
    public_id = models.CharField(max_length=32, unique=True, default=new_public_id, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="senders")
    provider = models.CharField(max_length=10, choices=Provider.CHOICES)
    from_email = models.EmailField(max_length=254)
    from_name = models.CharField(max_length=100, blank=True)
    host = models.CharField(max_length=253)
    port = models.PositiveIntegerField()
    security = models.CharField(max_length=10, choices=Security.CHOICES)
    username = models.CharField(max_length=254, blank=True)
    # The app password / SMTP secret, bound to (account, sender) and encrypted: see senders.crypto.
    password_encrypted = EncryptedField()
    verified_at = models.DateTimeField(null=True, blank=True)
    # {"category", "smtp_code", "message", "hint", "at"} of the last failed verification, or {}.
    last_verify_error = models.JSONField(default=dict, blank=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.CharField(max_length=300, blank=True)
    # Paused by delivery itself (e.g. the provider refused the login): messages wait, none fail,
    # until the customer fixes the sender or `paused_until` passes (None: until fixed).
    paused_at = models.DateTimeField(null=True, blank=True)
    paused_until = models.DateTimeField(null=True, blank=True)
    paused_reason = models.CharField(max_length=300, blank=True)
    # Pacing overrides; None means the provider's default (senders.presets.LIMITS).
    max_per_minute = models.PositiveIntegerField(null=True, blank=True)
    max_per_day = models.PositiveIntegerField(null=True, blank=True, help_text="Messages per rolling 24 hours.")
    max_recipients_per_message = models.PositiveIntegerField(null=True, blank=True)
    max_connections = models.PositiveIntegerField(null=True, blank=True, help_text="Concurrent SMTP connections.")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    objects = SenderQuerySet.as_manager()

    class Meta:
        ordering = ("-created_at",)
        # Apart: a pause is something the customer lifts (by updating or verifying the sender), a
        # disable only staff do, so a role may pause without being able to stop a sender for good.
        permissions = [
            ("pause_sender", "Can pause or resume a sender"),
            ("disable_sender", "Can disable or enable a sender (the customer cannot undo it)"),
        ]

    def __str__(self) -> str:
        return f"{self.from_email} via {self.host}"

    @property
    def binding(self) -> str:
        return f"sender:{self.public_id}:account:{self.user_id}"

    def set_password(self, raw: str) -> None:
        self.password_encrypted = crypto.encrypt(raw.encode("utf-8"), binding=self.binding) if raw else ""

    def get_password(self) -> str:
        """The plaintext secret, for the one moment it is handed to smtplib. Never log it."""
        if not self.password_encrypted:
            return ""
        return crypto.decrypt(self.password_encrypted, binding=self.binding).decode("utf-8")

    @property
    def has_password(self) -> bool:
        return bool(self.password_encrypted)

    @property
    def is_disabled(self) -> bool:
        return self.disabled_at is not None

    @property
    def disabled_notice(self) -> str:
        """What the owner is told when a disabled sender is refused (send, verify, delivery)."""
        return disabled_notice("This sender", self.disabled_reason)

    def is_paused(self, now: datetime | None = None) -> bool:
        if self.paused_at is None:
            return False
        return self.paused_until is None or self.paused_until > (now or timezone.now())

    def limits(self) -> Limits:
        """The pacing limits in force: the sender's overrides over its provider's defaults."""
        default = LIMITS.get(self.provider, LIMITS["smtp"])
        return Limits(
            per_minute=self.max_per_minute or default.per_minute,
            per_day=self.max_per_day or default.per_day,
            recipients_per_message=self.max_recipients_per_message or default.recipients_per_message,
            connections=self.max_connections or default.connections,
        )

    def connection_params(self) -> dict[str, object]:
        return {
            "host": self.host,
            "port": self.port,
            "security": self.security,
            "username": self.username,
            "password": self.get_password(),
        }


class AddressBlock(models.Model):
    """A staff disable that outlives its sender: the owner deleted a disabled sender, and its
    From address may not be connected again on that account until staff lift this (the
    admin's "lift" action). Without it, deleting and connecting again undid the disable."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="address_blocks")
    from_email = models.EmailField(max_length=254)
    reason = models.CharField(max_length=300, blank=True)
    disabled_at = models.DateTimeField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ("-created_at",)
        constraints = [models.UniqueConstraint("user", Lower("from_email"), name="sender_address_block_unique")]

    def __str__(self) -> str:
        return self.from_email

    @property
    def notice(self) -> str:
        return disabled_notice(f"The From address {self.from_email}", self.reason)


def disabled_notice(subject: str, reason: str) -> str:
    """What the owner is told when staff's disable refuses something (send, verify, connect)."""
    reason = reason.strip().rstrip(".")
    return f"{subject} is disabled by support{': ' + reason if reason else ''}. Please contact support."
