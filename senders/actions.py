"""Writes that matter for senders: connect, change, verify, delete; pause and resume (the relay,
staff), disable and enable (staff only). Every one is audited."""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.http import HttpRequest
from django.utils import timezone

from auditlog.events import record
from drake.errors import PermissionDenied
from senders import crypto, smtp
from senders.models import AddressBlock, Sender, disabled_notice
from senders.presets import PRESETS, hint_for
from senders.validation import check_login, resolve_config

# Changing any of these means the old verification no longer proves anything.
_CONNECTION_FIELDS = {"host", "port", "security", "username", "from_email"}
# The provider is chosen once; everything else can change.
_EDITABLE = ("provider", "from_email", "from_name", "username", "host", "port", "security")
# What an update changes because of the fields it was given (not audited as given).
_CONSEQUENCES = {"verified_at", "last_verify_error", "paused_at", "paused_until", "paused_reason"}

# A sender password encrypted with a key no longer in FIELD_ENCRYPTION_KEYS.
UNREADABLE_PASSWORD = "The stored password cannot be decrypted; enter it again."


def create_sender(user: Any, data: dict[str, Any], *, request: HttpRequest | None = None, via: str = "api") -> Sender:
    """Connect a sender. `data` is validated input with a `password`; raises ConfigError."""
    config = resolve_config(data)
    check_login("password", data["password"])
    _refuse_disabled_address(user, config["from_email"])
    with transaction.atomic():
        sender = Sender(user=user, **config)
        sender.set_password(data["password"])
        sender.save()
        record("sender.connected", actor=user, account=user, target=sender, request=request, detail=_meta(sender, via))
    return sender


def update_sender(
    sender: Sender, data: dict[str, Any], *, actor: Any, request: HttpRequest | None = None, via: str = "api"
) -> Sender:
    """Change a sender. Unverifies it when connection settings or the secret change."""
    merged = {field: getattr(sender, field) for field in _EDITABLE}
    merged.update({field: value for field, value in data.items() if field in _EDITABLE})
    if "port" in data and "security" not in data and sender.provider in PRESETS:
        merged["security"] = None  # The preset picks the security that goes with the port.
    config = resolve_config(merged)
    if data.get("password"):
        check_login("password", data["password"])
    changed = {k for k, v in config.items() if getattr(sender, k) != v}
    if "from_email" in changed and sender.is_disabled:
        # Staff's disable holds for its From address: moved away, the address would have no
        # disabled sender left and connect again (as after a delete, without its block).
        raise PermissionDenied(sender.disabled_notice, field="from_email")
    if "from_email" in changed:
        # Before the sender changes in memory: the console renders it again with the refusal.
        _refuse_disabled_address(sender.user, config["from_email"], exclude=sender)
    for field in changed:
        setattr(sender, field, config[field])
    if data.get("password"):
        sender.set_password(data["password"])
        changed.add("password")
    if not changed:
        return sender
    if changed & (_CONNECTION_FIELDS | {"password"}):
        # Unverified, and what the last verify said (of the old settings) no longer stands.
        sender.verified_at, sender.last_verify_error = None, {}
        changed.update({"verified_at", "last_verify_error"})
        if sender.paused_at is not None:
            # New settings deserve a new try: waiting messages go out on their next attempt.
            sender.paused_at = sender.paused_until = None
            sender.paused_reason = ""
            changed.update({"paused_at", "paused_until", "paused_reason"})
    with transaction.atomic():
        update_fields = [f if f != "password" else "password_encrypted" for f in changed] + ["updated_at"]
        sender.save(update_fields=update_fields)
        record(
            "sender.updated",
            actor=actor,
            account=sender.user,
            target=sender,
            request=request,
            detail={
                "fields": sorted(changed - _CONSEQUENCES),
                "via": via,
            },
        )
    return sender


def _refuse_disabled_address(user: Any, from_email: str, *, exclude: Sender | None = None) -> None:
    """Staff's disable holds for the From address, not only for the sender it was put on: a
    second sender of the address, or one connected again after the disabled one was deleted,
    would undo it. Raises PermissionDenied."""
    disabled = Sender.objects.filter(user=user, from_email__iexact=from_email, disabled_at__isnull=False)
    if exclude is not None:
        disabled = disabled.exclude(pk=exclude.pk)
    if (sender := disabled.first()) is not None:
        raise PermissionDenied(disabled_notice(f"The From address {from_email}", sender.disabled_reason))
    if (block := AddressBlock.objects.filter(user=user, from_email__iexact=from_email).first()) is not None:
        raise PermissionDenied(block.notice)


def delete_sender(sender: Sender, *, actor: Any, request: HttpRequest | None = None, via: str = "api") -> None:
    """Delete a sender and destroy its stored secret. A disabled one leaves its From address
    blocked on the account (AddressBlock) until staff lift it: the disable is not undone by
    deleting and connecting again, and the secret still goes, as the privacy policy says."""
    with transaction.atomic():
        if sender.is_disabled:
            block = AddressBlock(
                user_id=sender.user_id,
                from_email=sender.from_email,
                reason=sender.disabled_reason,
                disabled_at=sender.disabled_at,
            )
            AddressBlock.objects.bulk_create([block], ignore_conflicts=True)  # One block an address.
        # Overwritten, then deleted. Neither reaches the ciphertext's earlier copies: PostgreSQL
        # keeps old row versions until VACUUM reclaims them, and the WAL and backups keep theirs
        # for their own retention. Those copies are Fernet tokens that only FIELD_ENCRYPTION_KEYS
        # open (docs/deploy.md: rotating the keys).
        Sender.objects.filter(pk=sender.pk).update(password_encrypted="")
        record(
            "sender.deleted",
            actor=actor,
            account=sender.user,
            target=sender,
            request=request,
            detail=_meta(sender, via),
        )
        sender.delete()


def verify_sender(
    sender: Sender, *, actor: Any, request: HttpRequest | None = None, via: str = "api"
) -> smtp.SmtpFailure | None:
    """Connect, (STARTTLS/TLS,) log in and quit. Returns None on success, else the failure.

    The result is stored on the sender; the attempt is audited either way. A disabled sender
    raises PermissionDenied without connecting: support stopped it, so no login is made with
    its credentials, and a success would neither enable it nor mean it can send.
    """
    if sender.is_disabled:
        raise PermissionDenied(sender.disabled_notice)
    failure: smtp.SmtpFailure | None = None
    timeout = settings.SMTP_VERIFY_TIMEOUT
    try:
        # Each wait is bounded by the timeout, and the whole verification by a few of them.
        deadline = time.monotonic() + smtp.VERIFY_TIMEOUTS * timeout
        smtp.probe(**sender.connection_params(), timeout=timeout, deadline=deadline)
    except smtp.SmtpFailure as exc:
        failure = exc
    except crypto.DecryptionError:
        failure = smtp.SmtpFailure("secret_unreadable", UNREADABLE_PASSWORD)
    now = timezone.now()
    fields = ["verified_at", "last_verify_error", "updated_at"]
    if failure is None:
        sender.verified_at, sender.last_verify_error = now, {}
        if sender.paused_at is not None:
            sender.paused_at = sender.paused_until = None
            sender.paused_reason = ""
            fields += ["paused_at", "paused_until", "paused_reason"]
    else:
        hint = hint_for(sender.provider, failure.smtp_code, failure.message, failure.category)
        sender.last_verify_error = {**failure.as_dict(), "hint": hint, "at": now.isoformat()}
    with transaction.atomic():
        sender.save(update_fields=fields)
        detail = {"ok": failure is None, "via": via}
        if failure is not None:
            detail.update(category=failure.category, smtp_code=failure.smtp_code)
        record("sender.verified", actor=actor, account=sender.user, target=sender, request=request, detail=detail)
    return failure


def _meta(sender: Sender, via: str) -> dict[str, Any]:
    return {"provider": sender.provider, "from_email": sender.from_email, "host": sender.host, "via": via}


def pause_sender(
    sender: Sender, reason: str, *, until: Any = None, actor: Any = None, request: HttpRequest | None = None
) -> bool:
    """Pause delivery through a sender (by the relay, or by staff). Returns False if already paused."""
    now = timezone.now()
    with transaction.atomic():
        # Not paused now: never paused, or a timed pause (a throttle, a daily quota) that lapsed.
        not_paused = Q(paused_at__isnull=True) | Q(paused_until__isnull=False, paused_until__lte=now)
        updated = Sender.objects.filter(not_paused, pk=sender.pk).update(
            paused_at=now, paused_until=until, paused_reason=reason[:300]
        )
        if updated:
            record(
                "sender.paused",
                actor=actor,
                actor_label=None if actor else "system",
                account=sender.user,
                target=sender,
                request=request,
                detail={"reason": reason[:300], "until": until.isoformat() if until else None},
            )
    return bool(updated)


def resume_sender(sender: Sender, reason: str, *, actor: Any, request: HttpRequest | None = None) -> bool:
    with transaction.atomic():
        updated = Sender.objects.filter(pk=sender.pk, paused_at__isnull=False).update(
            paused_at=None, paused_until=None, paused_reason=""
        )
        if updated:
            record(
                "sender.resumed",
                actor=actor,
                account=sender.user,
                target=sender,
                request=request,
                detail={"reason": reason[:300]},
            )
    return bool(updated)


def disable_sender(sender: Sender, reason: str, *, actor: Any, request: HttpRequest | None = None) -> bool:
    """Stop a sender (staff): a stop its owner cannot undo. Returns False if already disabled
    (the first reason stays).

    `POST /v1/send` refuses it with 403 from the next request on, in every web process: the
    send path's one statement checks `disabled_at` in the database (ACCEPT_FIELDS), whatever
    a process's snapshot says. Its queued messages fail (`sender_disabled`) at their next
    attempt and do not come back with `enable_sender` (relay.delivery). Verify refuses it
    without connecting, and updating it leaves it disabled; only `enable_sender` lifts it.
    The reason is shown to the owner and kept in the audit log.
    """
    return _set_disabled(sender, disabled=True, reason=reason, actor=actor, request=request)


def enable_sender(sender: Sender, reason: str, *, actor: Any, request: HttpRequest | None = None) -> bool:
    """Lift `disable_sender` (staff). Returns False if the sender was not disabled. Messages
    that failed meanwhile stay failed."""
    return _set_disabled(sender, disabled=False, reason=reason, actor=actor, request=request)


def _set_disabled(sender: Sender, *, disabled: bool, reason: str, actor: Any, request: HttpRequest | None) -> bool:
    reason = reason[:300]
    now = timezone.now()
    fields = (
        {"disabled_at": now, "disabled_reason": reason} if disabled else {"disabled_at": None, "disabled_reason": ""}
    )
    with transaction.atomic():
        updated = Sender.objects.filter(pk=sender.pk, disabled_at__isnull=disabled).update(**fields, updated_at=now)
        if updated:
            record(
                "sender.disabled" if disabled else "sender.enabled",
                actor=actor,
                account=sender.user,
                target=sender,
                request=request,
                detail={"reason": reason},
            )
    sender.refresh_from_db(fields=["disabled_at", "disabled_reason", "updated_at"])
    return bool(updated)


def lift_address_block(block: AddressBlock, reason: str, *, actor: Any, request: HttpRequest | None = None) -> bool:
    """Let the owner connect a blocked From address again (staff). Returns False if it was
    lifted already."""
    with transaction.atomic():
        deleted, _ = AddressBlock.objects.filter(pk=block.pk).delete()
        if deleted:
            record(
                "sender.address_unblocked",
                actor=actor,
                account=block.user,
                request=request,
                detail={"from_email": block.from_email, "reason": reason},
            )
    return bool(deleted)
