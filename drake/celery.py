"""The Celery app. Tasks carry only ids; everything else is read from the database."""

from __future__ import annotations

import logging
import os

from celery import Celery
from celery.schedules import crontab
from celery.signals import task_prerun, worker_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "drake.settings")
logger = logging.getLogger(__name__)

app = Celery("drake")
# The CELERY_* settings, copied once when Celery first reads its configuration (after Django's
# settings are loaded): Celery looks up a dozen keys for every task it publishes, each trying
# several names, and every miss on Django's lazy settings object raised an AttributeError
# (a fifth of a publish's CPU: bench/README.md). A dict misses cheaply. Being a copy, it does not
# follow a setting changed later (override_settings in a test): change app.conf for that.
app.config_from_object("drake.celery:celery_settings", namespace="CELERY")
app.conf.update(
    # JSON only: a pickled payload from a compromised broker must never run.
    task_serializer="json",
    accept_content=["json"],
    result_serializer="json",
    task_ignore_result=True,
    # A task is acknowledged after it ran; a worker that dies mid-task gives it back.
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
    # Publishing on the send path must not hang when the broker is down: the sweep catches up.
    broker_connection_timeout=2,
    worker_hijack_root_logger=False,
    timezone="UTC",
)
# Celery's Django fixup closes every database connection before and after each task unless
# CELERY_DB_REUSE_MAX is set: a new PostgreSQL backend per task cost more than the delivery itself
# (bench/README.md). Connections are kept, and Django's own rules decide when one is replaced
# (CONN_MAX_AGE, CONN_HEALTH_CHECKS), as they do before each web request (_check_connections).
app.conf["CELERY_DB_REUSE_MAX"] = 1000
app.autodiscover_tasks()


def __getattr__(name: str) -> dict[str, object]:
    # Module attribute `celery_settings`, computed when Celery asks for it (PEP 562).
    if name == "celery_settings":
        from django.conf import settings

        return {key: getattr(settings, key) for key in dir(settings) if key.startswith("CELERY_")}
    raise AttributeError(name)


@worker_init.connect
def _worker_commits(**kwargs: object) -> None:
    """A worker's PostgreSQL sessions commit without waiting for the disk flush unless
    RELAY_WORKER_SYNCHRONOUS_COMMIT (settings.py says why). Set on the connection settings
    before the worker opens its connections (threads and forked children alike), and logged
    as the server reports it on a connection closed again at once."""
    from django.conf import settings
    from django.db import connection, connections

    if settings.RELAY_WORKER_SYNCHRONOUS_COMMIT or connection.vendor != "postgresql":
        return
    options = connections.settings["default"].setdefault("OPTIONS", {})
    options["options"] = f"{options.get('options', '')} -c synchronous_commit=off".strip()
    connections.close_all()  # One opened before now (at import, say) would keep the old setting.
    try:
        with connection.cursor() as cursor:
            cursor.execute("SHOW synchronous_commit")
            logger.info("Worker commits: synchronous_commit=%s (RELAY_WORKER_SYNCHRONOUS_COMMIT)", cursor.fetchone()[0])
    finally:
        # This thread runs no task (threads pool) or only forks the processes that do (prefork):
        # kept, the connection would sit idle for the worker's life, a backend nobody uses.
        connection.close()


@task_prerun.connect
def _check_connections(**kwargs: object) -> None:
    from django.db import close_old_connections

    close_old_connections()


@app.on_after_configure.connect
def _schedule(sender: Celery, **kwargs: object) -> None:
    from django.conf import settings

    # The outbox sweep: re-publishes what a lost task left behind, fails what outlived its lifetime.
    sender.add_periodic_task(
        settings.RELAY_SWEEP_INTERVAL_SECONDS, sender.signature("relay.sweep"), name="outbox sweep"
    )
    # Retention (the privacy policy's windows): raw logs past their plan's window are folded
    # into daily counts and deleted, IPs truncated, old security events removed.
    sender.add_periodic_task(crontab(hour=3, minute=17), sender.signature("relay.rotate_logs"), name="log retention")
    # Accounts whose payment failed more than BILLING_GRACE_DAYS ago fall back to the free plan.
    sender.add_periodic_task(crontab(minute=7), sender.signature("billing.enforce_grace"), name="billing grace periods")
