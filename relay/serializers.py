from __future__ import annotations

from typing import Any

from relay.models import Message, Status


def message_status(message: Message) -> str:
    return message.status if message.status in Status.values else Status.QUEUED


def message_as_api(message: Message) -> dict[str, Any]:
    """SPEC's message shape. The sender's id is read through the FK id cache (no extra query
    when the caller selected it)."""
    return {
        "id": message.public_id,
        "status": message_status(message),
        "sender": message.sender.public_id if message.sender_id else None,
        "from": message.from_email,
        "to": list(message.to),
        "subject": message.subject,
        "size_approx": message.size_approx,
        "attempts": message.attempts,
        "last_error": message.last_error or None,
        "provider_message_id": message.provider_message_id or None,
        "refused_recipients": message.refused_recipients or None,
        "created_at": message.created_at.isoformat().replace("+00:00", "Z"),
        "sent_at": message.sent_at.isoformat().replace("+00:00", "Z") if message.sent_at else None,
    }
