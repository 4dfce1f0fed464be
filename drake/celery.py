"""The Celery app. Tasks carry only ids; everything else is read from the database."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "drake.settings")

app = Celery("drake")
app.config_from_object("django.conf:settings", namespace="CELERY")
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
app.autodiscover_tasks()


@app.on_after_configure.connect
def _schedule(sender: Celery, **kwargs: object) -> None:
    from django.conf import settings

    # The outbox sweep: re-publishes what a lost task left behind, fails what outlived its lifetime.
    sender.add_periodic_task(
        settings.RELAY_SWEEP_INTERVAL_SECONDS, sender.signature("relay.sweep"), name="outbox sweep"
    )
