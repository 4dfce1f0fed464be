"""The one way to write an audit event. Other apps call `record`."""

from __future__ import annotations

from typing import Any

from django.db import models
from django.http import HttpRequest

from auditlog.models import AuditEvent

# Detail keys that must never be written, whatever a caller passes.
_FORBIDDEN_KEYS = {"password", "secret", "key", "token", "body", "text", "html", "subject", "content"}


def client_ip(request: HttpRequest | None) -> str | None:
    if request is None:
        return None
    return request.META.get("REMOTE_ADDR") or None


def record(
    action: str,
    *,
    actor: Any = None,
    account: Any = None,
    target: models.Model | None = None,
    request: HttpRequest | None = None,
    detail: dict[str, Any] | None = None,
    actor_label: str | None = None,
) -> AuditEvent:
    """Append one audit event. `detail` is small, JSON, and may not carry secrets or content."""
    detail = dict(detail or {})
    leaked = _FORBIDDEN_KEYS.intersection(k.lower() for k in detail)
    if leaked:
        raise ValueError(f"Audit detail may not carry {sorted(leaked)}")
    if actor is not None and not getattr(actor, "is_authenticated", False):
        actor = None
    label = actor_label if actor_label is not None else (actor.email if actor is not None else "")
    account_pk = getattr(account, "pk", None)
    return AuditEvent.objects.create(
        actor=actor,
        actor_label=label,
        actor_ip=client_ip(request),
        actor_is_staff=bool(actor is not None and getattr(actor, "is_staff", False) and actor.pk != account_pk),
        account_id=account_pk,
        action=action,
        target_type=target._meta.label_lower if target is not None else "",
        target_id=str(getattr(target, "public_id", None) or getattr(target, "pk", "") or "") if target else "",
        detail=detail,
    )
