import pytest

from drake.celery import app as celery_app


def test_it_is_ok_when_database_and_broker_answer(client, db):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "broker": "ok"}
    assert client.head("/healthz").status_code == 200  # As load balancers probe (405 before)


@pytest.fixture
def broken_broker(monkeypatch):
    # Nothing listens on port 1 of loopback. Celery reads CELERY_BROKER_URL from the environment
    # before its own configuration, so both are pointed there.
    bad = "redis://127.0.0.1:1/0"
    original = celery_app.conf.broker_url
    monkeypatch.setenv("CELERY_BROKER_URL", bad)
    celery_app.conf.broker_url = bad
    yield
    celery_app.conf.broker_url = original


def test_it_is_503_when_the_broker_is_down(client, db, broken_broker):
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["broker"] == "down"
    assert response.json()["status"] == "unavailable"
