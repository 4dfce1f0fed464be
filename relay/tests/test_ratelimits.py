"""API rate limits: per key from the plan, per account overall, headers on every response."""

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest
import time_machine
from django.conf import settings as django_settings
from django.utils import timezone
from rest_framework.test import APIClient

from drake.testing.processes import stop, wait_for_http

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def slow_plan(alice):
    alice.plan.rate_per_minute = 3
    alice.plan.save()
    return alice.plan


def test_every_response_carries_the_limit_headers(alice_api, slow_plan):
    response = alice_api.get("/v1/account")
    assert response["X-RateLimit-Limit"] == "3"
    assert response["X-RateLimit-Remaining"] == "2"
    assert 0 <= int(response["X-RateLimit-Reset"]) <= 60


def test_over_the_plan_rate_is_429_with_retry_after_and_it_lifts(alice_api, slow_plan):
    start = timezone.now().replace(second=1) + timedelta(minutes=1)
    with time_machine.travel(start, tick=False):
        for _ in range(3):
            assert alice_api.get("/v1/account").status_code == 200
        response = alice_api.get("/v1/account")
        assert response.status_code == 429
        assert response.json()["error"]["type"] == "rate_limited"
        assert 0 < int(response["Retry-After"]) <= 60
        assert response["X-RateLimit-Remaining"] == "0"
    with time_machine.travel(start + timedelta(minutes=1), tick=False):
        assert alice_api.get("/v1/account").status_code == 200


def test_each_key_has_its_own_budget_but_the_account_has_a_ceiling(alice, slow_plan, make_key, settings):
    settings.API_ACCOUNT_RATE_PER_MINUTE = 4
    first, second = APIClient(), APIClient()
    first.credentials(HTTP_AUTHORIZATION=f"Bearer {make_key(alice)}")
    second.credentials(HTTP_AUTHORIZATION=f"Bearer {make_key(alice)}")
    with time_machine.travel(timezone.now().replace(second=1) + timedelta(minutes=1), tick=False):
        assert [first.get("/v1/account").status_code for _ in range(3)] == [200, 200, 200]
        assert second.get("/v1/account").status_code == 200
        ceiling = second.get("/v1/account")
        assert ceiling.status_code == 429
        assert "account limit" in ceiling.json()["error"]["message"]


def _shared_cache() -> bool:
    return not django_settings.CACHE_IS_LOCAL


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_the_limit_holds_across_two_server_processes(alice, alice_key, slow_plan):
    if not _shared_cache():
        # CI always has Redis (conftest fails the run without it); a laptop may not.
        pytest.skip("needs CACHE_URL on a shared cache (Redis)")
    from drake.testing.smtp import free_port
    from drake.testing.worker import database_url

    env = {**os.environ, "DATABASE_URL": database_url()}
    ports = [free_port(), free_port()]
    servers = [
        subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "drake.wsgi:application", "-b", f"127.0.0.1:{port}", "-w", "1"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        for port in ports
    ]
    try:
        for port in ports:
            wait_for_http(f"http://127.0.0.1:{port}/healthz")
        # Stay inside one rate-limit window (they turn over at each minute).
        while timezone.now().second >= 50:
            time.sleep(0.5)
        statuses = []
        # Alternate between the two processes: only a shared counter can stop the fourth request.
        for n in range(6):
            request = urllib.request.Request(  # noqa: S310
                f"http://127.0.0.1:{ports[n % 2]}/v1/account", headers={"Authorization": f"Bearer {alice_key}"}
            )
            try:
                with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
                    statuses.append(response.status)
            except urllib.error.HTTPError as error:
                statuses.append(error.code)
                assert int(error.headers["Retry-After"]) > 0
        assert statuses == [200, 200, 200, 429, 429, 429]
    finally:
        for server in servers:
            stop(server, timeout=20)
