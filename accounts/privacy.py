"""Users' rights: export everything we hold about an account, and erase the account.

Export streams a JSON document section by section (bounded memory for large accounts) and never
contains a secret, a key hash or message content (we do not have content to give). Deletion
removes the account and everything personal; it keeps the billing records accounting law requires,
detached from the person, and one audit event saying that the deletion happened.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Iterator
from datetime import date, datetime
from functools import partial
from typing import Any

from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.contrib.sessions.models import Session
from django.db import transaction
from django.db.models import CharField, Q, QuerySet, TextField
from django.db.models.functions import Cast, Lower
from django.http import HttpRequest

from accounts.models import ApiKey, AuthenticatorDevice, User
from auditlog.events import record
from auditlog.models import AuditEvent

logger = logging.getLogger(__name__)

CHUNK = 1000


def _default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def _rows(queryset: QuerySet, fields: list[str]) -> Iterator[dict[str, Any]]:
    yield from queryset.values(*fields).iterator(chunk_size=CHUNK)


def _without_staff_ips(events: Iterable[dict[str, Any]], user: User) -> Iterator[dict[str, Any]]:
    """The account's security events, each with the IP it came from but for staff's."""
    for event in events:
        event["actor_ip"] = AuditEvent.ip_shown_to_account(
            event.pop("actor_id"), event["actor_ip"], user.pk, event.pop("actor_is_staff")
        )
        yield event


def _section(name: str, rows: Iterable[dict[str, Any]]) -> Iterator[str]:
    yield f',\n"{name}": ['
    for index, row in enumerate(rows):
        yield ("" if index == 0 else ",") + "\n  " + json.dumps(row, default=_default, ensure_ascii=False)
    yield "\n]"


def export_chunks(user: User) -> Iterator[str]:
    """The account's data as one JSON document, in pieces."""
    from billing.models import Invoice, Subscription, UsageCounter
    from relay.models import ApiRequest, DailyUsage, DeliveryAttempt, IdempotencyKey, Message
    from senders.models import AddressBlock, Sender

    header = {
        "format": "3drake-export-1",
        "exported_at": datetime.now().astimezone().isoformat(),
        "account": {
            "email": user.email,
            "name": user.name,
            "date_joined": user.date_joined,
            "activated_at": user.activated_at,
            "last_login": user.last_login,
            "plan": user.plan.as_api() | {"retention_days": user.plan.retention_days},
            "suspended_at": user.suspended_at,
            "suspension_reason": user.suspension_reason,
            "policy_acknowledged_at": user.policy_acknowledged_at,
        },
    }
    yield json.dumps(header, default=_default, ensure_ascii=False)[:-1]
    subscription = Subscription.objects.filter(user=user).values(
        "status", "current_period_start", "current_period_end", "cancel_at_period_end"
    )
    yield from _section("subscription", subscription)
    invoice_fields = [
        "number",
        "amount_due",
        "amount_paid",
        "currency",
        "status",
        "period_start",
        "period_end",
        "hosted_invoice_url",
        "created_at",
    ]
    yield from _section("invoices", _rows(Invoice.objects.filter(user=user).order_by("pk"), invoice_fields))
    yield from _section(
        "usage_counters",
        _rows(UsageCounter.objects.filter(user=user).order_by("pk"), ["period_start", "accepted"]),
    )
    sender_fields = [
        "public_id", "provider", "from_email", "from_name", "host", "port", "security", "username",
        "verified_at", "last_verify_error", "disabled_at", "disabled_reason", "paused_at", "paused_until",
        "paused_reason", "max_per_minute", "max_per_day", "max_recipients_per_message", "max_connections",
        "created_at", "updated_at",
    ]  # fmt: skip
    yield from _section("senders", _rows(Sender.objects.for_account(user).order_by("pk"), sender_fields))
    blocks = AddressBlock.objects.filter(user=user).order_by("pk")
    yield from _section("address_blocks", _rows(blocks, ["from_email", "reason", "disabled_at", "created_at"]))
    key_fields = ["prefix", "name", "created_at", "last_used_at", "revoked_at"]
    yield from _section("api_keys", _rows(ApiKey.objects.for_account(user).order_by("pk"), key_fields))
    # The authenticator's name and use, never its key.
    device_fields = ["name", "confirmed", "created_at", "last_used_at"]
    devices = AuthenticatorDevice.objects.filter(user=user).order_by("pk")
    yield from _section("two_factor_devices", _rows(devices, device_fields))
    message_fields = [
        "public_id", "sender__public_id", "api_key__prefix", "from_email", "to", "cc_count", "bcc_count", "subject",
        "size_approx", "message_id_header", "status", "attempts", "last_error", "provider_message_id",
        "refused_recipients", "created_at", "sent_at", "finished_at",
    ]  # fmt: skip
    yield from _section("messages", _rows(Message.objects.for_account(user).order_by("pk"), message_fields))
    attempt_fields = ["message__public_id", "number", "started_at", "outcome", "category", "smtp_code", "reply"]
    yield from _section(
        "delivery_attempts", _rows(DeliveryAttempt.objects.filter(message__user=user).order_by("pk"), attempt_fields)
    )
    # The keys as the customer sent them, not the fingerprint (a hash of the message's content).
    yield from _section(
        "idempotency_keys",
        _rows(IdempotencyKey.objects.filter(user=user).order_by("pk"), ["key", "created_at", "message__public_id"]),
    )
    request_fields = [
        "created_at",
        "key_prefix",
        "method",
        "endpoint",
        "status",
        "error_type",
        "size_bucket",
        "ip",
        "user_agent",
    ]
    yield from _section("api_requests", _rows(ApiRequest.objects.filter(user=user).order_by("pk"), request_fields))
    yield from _section(
        "daily_aggregates",
        _rows(DailyUsage.objects.filter(user=user).order_by("pk"), ["day", "metric", "dimension", "count"]),
    )
    event_fields = [
        "created_at",
        "action",
        "actor_ip",
        "target_type",
        "target_id",
        "detail",
        "actor_id",
        "actor_is_staff",
    ]
    events = _rows(AuditEvent.objects.for_account(user).order_by("pk"), event_fields)
    yield from _section("security_events", _without_staff_ips(events, user))
    yield "\n}\n"


def export_requested(user: User, *, request: HttpRequest | None = None, via: str = "console") -> None:
    actor = user if via == "console" else None
    record(
        "export.requested",
        actor=actor,
        actor_label=None if actor else "shell",
        account=user,
        target=user,
        request=request,
        detail={"via": via},
    )


def _addresses_of(user: User) -> set[str]:
    """Every address the account has used, as far as we still hold it, lower-cased: its login
    email, now and before (the labels of its own events: a change is requested under the old
    address and made under the new), the From addresses of its senders, address blocks and
    messages, and those its events recorded (of a sender deleted since: `sender.connected`,
    `sender.deleted`, `sender.address_unblocked`). Read before any of those rows go.

    A former address of which no event of the account is left (all pruned by retention) is not
    found: nothing we hold ties it to the account any more."""
    from relay.models import Message
    from senders.models import AddressBlock, Sender

    events = AuditEvent.objects.filter(account_id=user.pk)
    found = {user.email}
    found.update(events.filter(actor_id=user.pk).values_list("actor_label", flat=True).distinct())
    found.update(events.filter(detail__has_key="from_email").values_list("detail__from_email", flat=True))
    found.update(Sender.objects.filter(user=user).values_list("from_email", flat=True))
    found.update(AddressBlock.objects.filter(user=user).values_list("from_email", flat=True))
    found.update(Message.objects.filter(user=user).values_list("from_email", flat=True).distinct())
    return {address.strip().lower() for address in found if isinstance(address, str) and "@" in address}


def _delete_admin_log_entries(user: User, addresses: set[str]) -> None:
    """Django admin's own log of changes to the account and to each of its objects (senders,
    keys, devices...): each entry names its object as it was shown ("alice@example.org via
    smtp.gmail.com"). Our own audit events of the same changes stay (admin.*, naming staff).

    Found three ways, since an object gone before the account (a sender the customer deleted
    after staff saved it, a device staff deleted) is no longer there to point at its entries:
    through the objects still there; through the targets of the account's events (read before
    its own events go), by id, or by public id for messages (shown by it); and, for the kinds of
    objects an account owns, through the entries naming one of the account's `addresses` whose
    object is not another account's (a sender is shown by its From address, a device by its
    owner's email). Entries staff made of other accounts' objects stay (LogEntry.user is
    staff's own account, and Django deletes those with it)."""
    owned: list[tuple[type, str]] = [(User, "pk")]
    for relation in User._meta.related_objects:
        if relation.related_model is LogEntry or not (relation.one_to_many or relation.one_to_one):
            continue
        owned.append((relation.related_model, relation.field.name))
    for model, field in owned:
        ids = model._default_manager.filter(**{field: user.pk}).annotate(text_id=Cast("pk", output_field=CharField()))
        LogEntry.objects.filter(
            content_type=ContentType.objects.get_for_model(model), object_id__in=ids.values("text_id")
        ).delete()
    targets = AuditEvent.objects.filter(account_id=user.pk).exclude(target_id="").exclude(target_type="")
    for target_type, target_id in targets.values_list("target_type", "target_id").distinct():
        app_label, _, model_name = target_type.partition(".")
        shown = Q(object_id=target_id) if target_id.isdigit() else Q(object_repr=target_id)
        LogEntry.objects.filter(shown, content_type__app_label=app_label, content_type__model=model_name).delete()
    if not addresses:
        return
    naming = Q()
    for address in addresses:
        naming |= Q(object_repr__icontains=address)  # A first cut; the pattern decides.
    whole = _pattern(addresses)
    for model, field in owned:
        others = model._default_manager.exclude(**{field: user.pk}).annotate(
            text_id=Cast("pk", output_field=CharField())
        )
        candidates = LogEntry.objects.filter(naming, content_type=ContentType.objects.get_for_model(model)).exclude(
            object_id__in=others.values("text_id")
        )
        named = [pk for pk, shown in candidates.values_list("pk", "object_repr") if whole and whole.search(shown)]
        LogEntry.objects.filter(pk__in=named).delete()


ERASED_EMAIL = "[deleted account]"


def _without_addresses(value: Any, addresses: re.Pattern[str]) -> Any:
    if isinstance(value, str):
        return addresses.sub(ERASED_EMAIL, value)
    if isinstance(value, dict):
        return {key: _without_addresses(item, addresses) for key, item in value.items()}
    if isinstance(value, list):
        return [_without_addresses(item, addresses) for item in value]
    return value


def _pattern(addresses: Iterable[str]) -> re.Pattern[str] | None:
    """The addresses as whole addresses: bob@example.org is not inside jimbob@example.org or
    bob@example.org.uk (matched as bare text, erasing bob rewrote jim's events too)."""
    ordered = sorted(addresses, key=len, reverse=True)  # A longer address before one inside it.
    if not ordered:
        return None
    alternatives = "|".join(map(re.escape, ordered))
    return re.compile(rf"(?<![\w.!#$%&'*+/=?^`{{|}}~-])(?:{alternatives})(?![\w-]|\.\w)", flags=re.IGNORECASE)


def _used_by_other_accounts(user: User, addresses: set[str]) -> set[str]:
    """Those of `addresses` another account uses now (a team's From address, connected by two
    accounts): that account's own events keep them."""
    from senders.models import AddressBlock, Sender

    used: set[str] = set()
    for model, field in ((User, "email"), (Sender, "from_email"), (AddressBlock, "from_email")):
        others = model._default_manager.exclude(**({"pk": user.pk} if model is User else {"user": user}))
        found = others.annotate(address=Lower(field)).filter(address__in=addresses).values_list("address", flat=True)
        used.update(found)
    return used


def _erase_addresses_from_kept_events(user: User, addresses: set[str]) -> int:
    """The events deletion keeps (staff's, the system's) hold no trace of the account's
    addresses (`_addresses_of`: its login email now and before, its senders' From addresses):
    staff searching the admin's lists for "alice@example.org" recorded the query
    (`admin.listed`), a suspension's reason is what staff typed, lifting an address block
    records the address. Each such event is rewritten without them, who did what and when
    unchanged: erased and written again, the one way the append-only trail allows (erase() is
    for retention and account erasure). An address another account uses too stays in that
    account's own events.

    One scan of the whole trail, its JSON as text matched against every address: account
    deletion is rare, and nothing but the text says where staff typed an address."""
    everything = _pattern(addresses)
    if everything is None:
        return 0
    shared = _used_by_other_accounts(user, addresses)
    of_others = _pattern(addresses - shared)
    naming = Q()
    for address in addresses:
        naming |= Q(text__icontains=address)
    named = AuditEvent.objects.annotate(text=Cast("detail", TextField())).filter(naming)
    fields = [f.attname for f in AuditEvent._meta.concrete_fields if not f.primary_key]
    rewritten = 0
    for event in list(named):
        pattern = everything if event.account_id in (None, user.pk) else of_others
        detail = _without_addresses(event.detail, pattern) if pattern is not None else event.detail
        if detail == event.detail:
            continue
        kept = {name: getattr(event, name) for name in fields}
        kept["detail"] = detail
        AuditEvent.objects.filter(pk=event.pk).erase()
        AuditEvent.objects.create(**kept)
        rewritten += 1
    return rewritten


def _delete_stripe_customer(customer_id: str) -> None:
    """After the account's deletion commits: the customer Stripe holds for it (its email) goes
    too. Best effort: the account is gone whatever Stripe says, and a customer left behind is
    logged, by its id alone, for staff to delete in Stripe's dashboard."""
    from billing import stripe_api

    if not stripe_api.configured():
        logger.warning(
            "Stripe customer %s of a deleted account left at Stripe: Stripe is not configured here.", customer_id
        )
        return
    try:
        stripe_api.delete_customer(customer_id)
    except Exception:
        logger.warning(
            "Stripe customer %s of a deleted account could not be deleted at Stripe.", customer_id, exc_info=True
        )


class DeletionBlocked(Exception):
    """Something outside us must happen first (e.g. Stripe could not cancel the subscription).

    The message is safe to show the customer; `detail` (the kind of Stripe's error: its text
    is only logged, masked) is for staff."""

    def __init__(self, message: str, *, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail

    def for_staff(self) -> str:
        return f"{self} ({self.detail})" if self.detail else str(self)


@transaction.atomic
def delete_account(
    user: User, *, actor: Any = None, request: HttpRequest | None = None, via: str = "console"
) -> dict[str, int]:
    """Erase an account. Returns counts of what was removed.

    Removed: the account, its senders (secrets overwritten first), API keys, messages and their
    encrypted outbox content (so queued messages are never sent), delivery attempts, request
    logs, aggregates, idempotency keys, two-factor devices, sessions, its security events (its
    own, and those from an IP with nobody signed in, as a failed login) and Django admin's log
    of its objects (of those deleted before it too), and the customer Stripe holds for it (after
    the commit). Kept: invoices (accounting law), detached from the account, here and at Stripe;
    what staff did to it (their access trail, suspensions with their reasons: they name staff,
    not the customer) and what the system did, with every address the account used taken out of
    them (a search for its email, former or current, or its sender's From address; a reason
    naming one); one audit event that the deletion happened, without the email.
    """
    from billing import actions as billing_actions
    from billing import stripe_api
    from billing.models import Subscription
    from senders.models import Sender

    pk = user.pk
    subscription = Subscription.objects.filter(user=user).first()
    if (
        subscription
        and subscription.stripe_subscription_id
        and subscription.status not in ("canceled", "incomplete_expired")
    ):
        if not stripe_api.configured():
            raise DeletionBlocked("The account has a Stripe subscription but Stripe is not configured here.")
        try:
            billing_actions.end_subscription(subscription.stripe_subscription_id)
        except Exception as exc:
            # The error's text is for the log (masked there): it may quote our request to
            # Stripe, headers included. The customer gets a plain sentence, staff its kind.
            logger.warning("Account %s not deleted: Stripe could not cancel its subscription.", pk, exc_info=True)
            raise DeletionBlocked(
                "Stripe could not cancel the subscription just now.", detail=type(exc).__name__
            ) from exc
    Sender.objects.filter(user=user).update(password_encrypted="")
    addresses = _addresses_of(user)
    # Before the account's own events go: their targets lead to the admin's entries of objects
    # deleted before the account.
    _delete_admin_log_entries(user, addresses)
    counts: dict[str, int] = {}
    # Its security events: what the customer did, and what came from an IP without anyone
    # signed in (a failed login: the customer's IP, most likely). Kept: what staff did to the
    # account (their access trail, a suspension and its reason) and what the system did.
    # Only events of this account: a staff member's account going does not take with it their
    # access trail of the customers they looked at or acted on.
    anonymous_with_ip = Q(actor__isnull=True, actor_ip__isnull=False)
    labelled_by_it = Q()
    for address in addresses:
        labelled_by_it |= Q(actor_label__iexact=address)
    own = Q(account_id=pk, actor_is_staff=False) & (Q(actor_id=pk) | labelled_by_it | anonymous_with_ip)
    counts["security_events"] = AuditEvent.objects.filter(own).erase()
    _erase_addresses_from_kept_events(user, addresses)
    for session in Session.objects.iterator():
        if str(session.get_decoded().get("_auth_user_id")) == str(pk):
            session.delete()
    if subscription is not None:
        subscription.delete()
        if subscription.stripe_customer_id:
            transaction.on_commit(partial(_delete_stripe_customer, subscription.stripe_customer_id))
    _, deleted = user.delete()
    counts.update({label: n for label, n in deleted.items() if n})
    # The person who acted is kept only if it is someone else (staff); a self-deletion names no one.
    staff = actor if actor is not None and getattr(actor, "pk", None) != pk else None
    record(
        "account.deleted",
        actor=staff,
        actor_label=None if staff else "account owner",
        # Staff's IP is their access trail; the customer's own goes with their other events.
        request=request if staff else None,
        detail={"via": via},
    )
    return counts
