import logging

import pytest
from django.conf import settings

from drake.celery import _worker_commits, app


def test_celery_reads_every_celery_setting_of_django():
    # The CELERY_* settings are copied into a dict for Celery (drake.celery): each must come
    # through under Celery's own name, as `namespace="CELERY"` on Django's settings gave.
    names = [name for name in dir(settings) if name.startswith("CELERY_")]
    assert "CELERY_BROKER_URL" in names
    for name in names:
        assert app.conf[name.removeprefix("CELERY_").lower()] == getattr(settings, name), name


def test_the_apps_own_choices_stand_over_the_settings():
    assert app.conf.task_acks_late is True
    assert app.conf.task_reject_on_worker_lost is True
    assert app.conf.worker_prefetch_multiplier == 1
    assert app.conf.accept_content == ["json"]


def test_beat_runs_the_sweep_retention_and_the_grace_periods():
    app.loader.import_default_modules()  # The tasks' modules, as a worker imports them.
    scheduled = {entry["task"] for entry in app.conf.beat_schedule.values()}
    assert scheduled == {"relay.sweep", "relay.rotate_logs", "billing.enforce_grace"}
    assert scheduled <= set(app.tasks)  # Each name is a task the worker knows.


@pytest.mark.django_db(transaction=True)
def test_the_worker_sets_its_commits_asynchronous_and_keeps_no_connection_open_for_it(settings, caplog):
    """The worker's start asks the server what its sessions got, on the main thread, which
    runs no task (threads pool) or only forks the children that do (prefork): that connection
    sat idle for the worker's whole life, one PostgreSQL backend more per worker than
    docs/deploy.md counts."""
    from django.db import connection, connections

    if connection.vendor != "postgresql":
        pytest.skip("synchronous_commit is PostgreSQL's")
    settings.RELAY_WORKER_SYNCHRONOUS_COMMIT = False
    options = connections.settings["default"].setdefault("OPTIONS", {})
    before = dict(options)
    try:
        with caplog.at_level(logging.INFO, logger="drake.celery"):
            _worker_commits()
        assert "Worker commits: synchronous_commit=off" in caplog.text
        assert connection.connection is None
    finally:
        options.clear()
        options.update(before)
        connections.close_all()
