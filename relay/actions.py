"""Accepting a message: the one write on the send path."""

from __future__ import annotations

import json
import math
import secrets
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError, transaction
from django.utils import timezone

from drake.errors import NotFound, PermissionDenied, ServiceUnavailable
from relay import outbox
from relay.minimize import minimize_subject
from relay.models import Message, OutboxContent
from relay.validation import SendRequest, address_of
from senders import crypto
from senders.models import Sender


def content_binding(public_id: str) -> str:
    return f"message:{public_id}"


def _message_id(from_email: str) -> str:
    domain = from_email.rpartition("@")[2] or "3drake.invalid"
    return f"<{secrets.token_hex(16)}@{domain}>"


def accept_message(user: Any, request: SendRequest, *, api_key: Any = None, size: int = 0) -> Message:
    """Durably accept a message for delivery and return it (status `queued`).

    One transaction writes the metadata row and the encrypted content; the delivery task is
    published only after commit, carrying only the message id. If the broker is unreachable
    the message is still accepted: the outbox sweep publishes it later. If the database cannot
    commit, ServiceUnavailable is raised and nothing was queued.
    Raises NotFound (sender unknown or another account's) and PermissionDenied (sender disabled).
    """
    sender = Sender.objects.for_account(user).filter(public_id=request.sender).first()
    if sender is None:
        raise NotFound("No sender with this id.", field="sender")
    if sender.is_disabled:
        raise PermissionDenied(f"This sender is disabled: {sender.disabled_reason or 'by support'}.", field="sender")
    now = timezone.now()
    message = Message(
        user=user,
        sender=sender,
        api_key=api_key,
        from_email=sender.from_email,
        # Bare addresses only: display names are not needed to troubleshoot delivery.
        to=[address_of(a) for a in request.to],
        cc_count=len(request.cc),
        bcc_count=len(request.bcc),
        subject=minimize_subject(request.subject, policy=user.plan.subject_policy, account_id=user.pk),
        size_approx=max(1, math.ceil(size / 1024)) * 1024,
        message_id_header=_message_id(sender.from_email),
        created_at=now,
        next_attempt_at=now,
        enqueued_at=now,
        expires_at=now + timedelta(hours=settings.RELAY_MESSAGE_LIFETIME_HOURS),
    )
    token = crypto.encrypt(
        json.dumps(request.content(), separators=(",", ":")).encode("utf-8"), binding=content_binding(message.public_id)
    )
    try:
        with transaction.atomic():
            message.save(force_insert=True)
            OutboxContent.objects.create(message=message, content_encrypted=token)
            transaction.on_commit(lambda: outbox.enqueue(message.public_id))
    except DatabaseError as exc:
        raise ServiceUnavailable() from exc
    return message
