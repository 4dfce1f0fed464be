"""System checks that prove a configuration: `manage.py check --deploy` runs them."""

from __future__ import annotations

import ipaddress
import ssl

from django.conf import settings
from django.core import checks
from django.core.checks import CheckMessage


@checks.register(checks.Tags.security)
def check_encryption_keys(app_configs: object, **kwargs: object) -> list[CheckMessage]:
    from cryptography.fernet import Fernet

    errors: list[CheckMessage] = []
    keys = [k for k in settings.FIELD_ENCRYPTION_KEYS if k.strip()]
    if not keys:
        errors.append(
            checks.Error(
                "FIELD_ENCRYPTION_KEYS is empty.",
                hint="Set one or more comma-separated Fernet keys; the first one encrypts.",
                id="drake.E001",
            )
        )
    for index, key in enumerate(keys):
        try:
            Fernet(key.strip())
        except (ValueError, TypeError):
            errors.append(
                checks.Error(
                    f"FIELD_ENCRYPTION_KEYS entry #{index + 1} is not a valid Fernet key.",
                    hint="A Fernet key is 32 url-safe base64-encoded bytes (Fernet.generate_key()).",
                    id="drake.E002",
                )
            )
    return errors


@checks.register(checks.Tags.caches, deploy=True)
def check_shared_cache(app_configs: object, **kwargs: object) -> list[CheckMessage]:
    if settings.CACHE_IS_LOCAL:
        return [
            checks.Warning(
                "CACHE_URL is local memory: rate limits hold only inside one process.",
                hint="Set CACHE_URL to a Redis URL when running more than one web process.",
                id="drake.W002",
            )
        ]
    return []


@checks.register(checks.Tags.database, deploy=True)
def check_production_services(app_configs: object, **kwargs: object) -> list[CheckMessage]:
    """What `make run`'s embedded defaults leave in place when production forgets to say
    otherwise: it runs, on one machine's files, and the console's mail goes out as localhost."""
    warnings: list[CheckMessage] = []
    if settings.DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
        warnings.append(
            checks.Warning(
                "DATABASE_URL is SQLite, the development default.",
                hint="Set DATABASE_URL to PostgreSQL (docs/deploy.md).",
                id="drake.W003",
            )
        )
    if settings.CELERY_BROKER_URL.startswith(("filesystem://", "memory://")):
        warnings.append(
            checks.Warning(
                "CELERY_BROKER_URL is the embedded filesystem broker, the development default.",
                hint="Set CELERY_BROKER_URL to Redis or RabbitMQ (docs/deploy.md).",
                id="drake.W004",
            )
        )
    if settings.DEFAULT_FROM_EMAIL.rstrip(">").lower().endswith("@localhost"):
        warnings.append(
            checks.Warning(
                f"DEFAULT_FROM_EMAIL is {settings.DEFAULT_FROM_EMAIL!r}: sign-up confirmations would come from localhost.",
                hint="Set DEFAULT_FROM_EMAIL (and EMAIL_URL) to your domain's address and mail server.",
                id="drake.W005",
            )
        )
    if not settings.ADMIN_REQUIRE_2FA:
        warnings.append(
            checks.Warning(
                "ADMIN_REQUIRE_2FA is off: staff sign in to the back office with a password alone.",
                hint="Leave ADMIN_REQUIRE_2FA unset (on when DEBUG is off) and give staff an authenticator first.",
                id="drake.W006",
            )
        )
    return warnings


@checks.register()
def check_timeout_order(app_configs: object, **kwargs: object) -> list[CheckMessage]:
    """SMTP timeouts < task time limit < lease < broker visibility: else a slow delivery could be
    handed to a second worker while the first is still talking to the provider."""
    from senders.smtp import REPLY_WAITS

    visibility = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("visibility_timeout", 3600)
    # A delivery's sessions end by the time limit up to DATA's 354; the body is written by then
    # too, or within one SMTP_TIMEOUT of its start if later (relay.body); its reply (REPLY_WAITS
    # waits) is never cut short. All must end before the lease does.
    body = (REPLY_WAITS + 1) * settings.SMTP_TIMEOUT
    smtp, limit = ("SMTP_TIMEOUT", settings.SMTP_TIMEOUT), ("RELAY_TASK_TIME_LIMIT", settings.RELAY_TASK_TIME_LIMIT)
    lease = ("RELAY_LEASE_SECONDS", settings.RELAY_LEASE_SECONDS)
    pairs = [
        (smtp, limit),
        (limit, (f"RELAY_LEASE_SECONDS - {REPLY_WAITS + 1} * SMTP_TIMEOUT", lease[1] - body)),
        (lease, ("broker visibility_timeout", visibility)),
    ]
    for (low_name, low), (high_name, high) in pairs:
        if not low < high:
            return [
                checks.Error(
                    f"{low_name} ({low}) must be less than {high_name} ({high}).",
                    hint=(
                        "Keep SMTP_TIMEOUT < RELAY_TASK_TIME_LIMIT < RELAY_LEASE_SECONDS - 3 * SMTP_TIMEOUT "
                        "and RELAY_LEASE_SECONDS < visibility timeout."
                    ),
                    id="drake.E003",
                )
            ]
    return []


@checks.register()
def check_smtp_settings(app_configs: object, **kwargs: object) -> list[CheckMessage]:
    """SMTP_ALLOWED_PORTS, SMTP_ALLOWED_NETWORKS and SMTP_CA_FILE are read only when a sender is saved or connects:
    at start-up, not as a 500 for every custom SMTP sender or a "could not connect" for every
    TLS connection."""
    errors: list[CheckMessage] = []
    raw = str(settings.SMTP_ALLOWED_PORTS).strip()
    if raw != "*":
        entries = [entry.strip() for entry in raw.split(",") if entry.strip()]
        if not all(entry.isdigit() and 0 < int(entry) < 65536 for entry in entries):
            errors.append(
                checks.Error(
                    f"SMTP_ALLOWED_PORTS ({raw!r}) is not a comma-separated list of ports.",
                    hint="Ports from 1 to 65535, e.g. 25,465,587,2525; or * for any.",
                    id="drake.E004",
                )
            )
    for entry in [n.strip() for n in settings.SMTP_ALLOWED_NETWORKS if n.strip()]:  # As senders.guard reads them.
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            errors.append(
                checks.Error(
                    f"SMTP_ALLOWED_NETWORKS entry {entry!r} is not a network.",
                    hint="Comma-separated CIDRs or addresses, e.g. 10.0.0.0/8,2001:db8::/32; or unset.",
                    id="drake.E006",
                )
            )
    if settings.SMTP_CA_FILE:
        try:
            ssl.create_default_context().load_verify_locations(cafile=settings.SMTP_CA_FILE)
        except (OSError, ssl.SSLError) as exc:
            errors.append(
                checks.Error(
                    f"SMTP_CA_FILE ({settings.SMTP_CA_FILE}) cannot be loaded: {exc}.",
                    hint="A readable PEM file of CA certificates, or unset.",
                    id="drake.E005",
                )
            )
    return errors


@checks.register()
def check_stripe_settings(app_configs: object, **kwargs: object) -> list[CheckMessage]:
    """With a secret key the billing page offers Checkout; without the webhook secret every
    event Stripe sends is refused, so customers pay and their plan never changes."""
    if settings.STRIPE_SECRET_KEY.strip() and not settings.STRIPE_WEBHOOK_SECRET.strip():
        return [
            checks.Warning(
                "STRIPE_SECRET_KEY is set but STRIPE_WEBHOOK_SECRET is not: every Stripe event would be refused.",
                hint="Set STRIPE_WEBHOOK_SECRET to the signing secret (whsec_...) of the endpoint in Stripe's dashboard.",
                id="drake.W007",
            )
        ]
    return []
