"""Project-wide fixtures: the people of the tests, and the CI guard.

alice owns the data; charlie is another account with data of his own.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from urllib.parse import urlparse

import pytest
from rest_framework.test import APIClient

PASSWORD = "correct horse battery staple"


def _reachable(url: str, default_port: int) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or default_port), timeout=2):
            return True
    except OSError:
        return False


def pytest_sessionstart(session: pytest.Session) -> None:
    """In CI the real services are required: a missing one fails the run instead of skipping."""
    if os.environ.get("CI", "").lower() not in {"1", "true", "yes"}:
        return
    problems = []
    db = os.environ.get("DATABASE_URL", "")
    if not db.startswith(("postgres://", "postgresql://", "pgsql://")):
        problems.append("DATABASE_URL must point at PostgreSQL in CI")
    elif not _reachable(db, 5432):
        problems.append(f"PostgreSQL is not reachable at {db}")
    for name in ("CELERY_BROKER_URL", "CACHE_URL"):
        url = os.environ.get(name, "")
        if not url.startswith("redis://"):
            problems.append(f"{name} must point at Redis in CI")
        elif not _reachable(url, 6379):
            problems.append(f"Redis is not reachable at {url} ({name})")
    if problems:
        raise pytest.UsageError("CI needs its services: " + "; ".join(problems))


@pytest.fixture(autouse=True)
def _loopback_only(settings) -> None:  # noqa: ANN001
    # No test may reach a real provider: every SMTP connection must land on loopback.
    settings.SMTP_ALLOWED_NETWORKS = ["127.0.0.0/8", "::1/128"]


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings) -> None:  # noqa: ANN001
    # PBKDF2's deliberate slowness would dominate the suite's time; no test is about its cost.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _clear_cache() -> None:
    """Rate-limit counters must not leak from one test into the next (the cache may be Redis),
    nor the send path's snapshots of keys and senders (drake.snapshots)."""
    from django.core.cache import cache

    from drake import snapshots

    cache.clear()
    snapshots.clear_all()


@pytest.fixture
def hanging_dns(monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    """The name servers of smtp.alice.test (and of any name a test adds to `.names`) do not
    answer: socket.getaddrinfo hangs for them (drake.testing.dns), all else resolves for real."""
    from drake.testing.dns import HangingResolver

    resolver = HangingResolver("smtp.alice.test")
    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    yield resolver
    resolver.release()


@pytest.fixture(scope="module")
def browser():  # noqa: ANN201
    """Chromium (drake.testing.browser), launched once per test module that asks for it."""
    from drake.testing.browser import launched

    with launched() as browser:
        yield browser


@pytest.fixture
def alice(db: None):
    from accounts.actions import create_account

    return create_account("alice@example.org", PASSWORD, name="Alice", via="shell")


@pytest.fixture
def charlie(db: None):
    from accounts.actions import create_account

    return create_account("charlie@example.net", PASSWORD, name="Charlie", via="shell")


@pytest.fixture
def make_key(db: None) -> Callable:
    from accounts.actions import create_api_key

    def make(user, name: str = "test key") -> str:
        return create_api_key(user, name, via="shell")[1]

    return make


@pytest.fixture
def alice_key(alice, make_key) -> str:
    return make_key(alice)


@pytest.fixture
def api() -> APIClient:
    return APIClient()


@pytest.fixture
def alice_api(alice_key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {alice_key}")
    return client
