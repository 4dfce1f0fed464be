"""Celery tasks. Each carries only a message id; everything else is read from the database."""

from __future__ import annotations

from celery import shared_task
from celery.signals import worker_process_shutdown, worker_shutdown
from django.conf import settings

from relay import delivery, outbox, transport


@shared_task(
    name="relay.deliver",
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    # Below the lease, so a stuck attempt is killed before anyone else may take the message over.
    time_limit=settings.RELAY_TASK_TIME_LIMIT,
    soft_time_limit=max(1, int(settings.RELAY_TASK_TIME_LIMIT * 0.9)),
)
def deliver(public_id: str) -> str | None:
    return delivery.deliver(public_id, batch=settings.RELAY_BATCH_SIZE)


@shared_task(name="relay.sweep", ignore_result=True, time_limit=300)
def sweep() -> dict[str, int]:
    return outbox.sweep()


@worker_process_shutdown.connect  # prefork: each child process
@worker_shutdown.connect  # threads and solo pools: the worker process itself
def _close_pool(**kwargs: object) -> None:
    # Closing returns the connections' slots, so a restarted worker finds them free at once
    # instead of after their lease (relay.pacing.SLOT_LEASE_SECONDS).
    transport.pool.close_all()


@shared_task(name="relay.rotate_logs", ignore_result=True, time_limit=3600)
def rotate_logs() -> str:
    from relay import retention

    return retention.rotate().line()
