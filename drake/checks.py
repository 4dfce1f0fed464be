"""System checks that prove a configuration: `manage.py check --deploy` runs them."""

from __future__ import annotations

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


@checks.register()
def check_timeout_order(app_configs: object, **kwargs: object) -> list[CheckMessage]:
    """SMTP timeouts < task time limit < lease < broker visibility: else a slow delivery could be
    handed to a second worker while the first is still talking to the provider."""
    visibility = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("visibility_timeout", 3600)
    chain = [
        ("SMTP_TIMEOUT", settings.SMTP_TIMEOUT),
        ("RELAY_TASK_TIME_LIMIT", settings.RELAY_TASK_TIME_LIMIT),
        ("RELAY_LEASE_SECONDS", settings.RELAY_LEASE_SECONDS),
        ("broker visibility_timeout", visibility),
    ]
    for (low_name, low), (high_name, high) in zip(chain, chain[1:], strict=False):
        if not low < high:
            return [
                checks.Error(
                    f"{low_name} ({low}) must be less than {high_name} ({high}).",
                    hint="Keep SMTP_TIMEOUT < RELAY_TASK_TIME_LIMIT < RELAY_LEASE_SECONDS < visibility timeout.",
                    id="drake.E003",
                )
            ]
    return []


@checks.register()
def check_send_fits_the_lease(app_configs: object, **kwargs: object) -> list[CheckMessage]:
    """A batch starts its last message before half the task's time limit, and one message's
    sending takes at most a connection's setup and its transaction, twice (a pooled connection
    found closed is replaced once), each bounded by SESSION_WAITS timeouts (senders.smtp). All
    of it must end before the lease does, or a second worker could take a message the first is
    still sending: the worker's thread pool does not enforce the task's time limit."""
    from senders.smtp import SESSION_WAITS

    longest_send = 2 * 2 * SESSION_WAITS * settings.SMTP_TIMEOUT
    last_start = settings.RELAY_TASK_TIME_LIMIT / 2
    if last_start + longest_send < settings.RELAY_LEASE_SECONDS:
        return []
    return [
        checks.Error(
            f"RELAY_TASK_TIME_LIMIT / 2 ({last_start:g}) + the longest send of one message "
            f"({longest_send:g}: {2 * 2 * SESSION_WAITS} x SMTP_TIMEOUT) must be less than RELAY_LEASE_SECONDS "
            f"({settings.RELAY_LEASE_SECONDS}).",
            hint="Lower SMTP_TIMEOUT or RELAY_TASK_TIME_LIMIT, or raise RELAY_LEASE_SECONDS.",
            id="drake.E004",
        )
    ]
