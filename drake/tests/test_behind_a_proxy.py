"""Production behind a TLS proxy, against a real gunicorn with DEBUG=false: `X-Forwarded-Proto`
is believed only from FORWARDED_ALLOW_IPS (the proxy), as README and docs/deploy.md say.

Django read the header itself (SECURE_PROXY_SSL_HEADER), from anyone: gunicorn ignored it for
an untrusted peer but passed it on, so a client talking plain HTTP to the server past the proxy
could pass as HTTPS (no redirect; secure cookies sent over plain HTTP). Found by an operator
review. gunicorn alone decides now (wsgi.url_scheme, from its forwarded_allow_ips)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import requests
from cryptography.fernet import Fernet

from drake.testing.processes import gunicorn
from drake.testing.worker import database_url

pytestmark = pytest.mark.django_db


def _production(trusted: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "FIELD_ENCRYPTION_KEYS"}}
    env.update(
        DEBUG="false",
        SECRET_KEY="x" * 60,
        FIELD_ENCRYPTION_KEYS=Fernet.generate_key().decode(),
        ALLOWED_HOSTS="127.0.0.1",
        DATABASE_URL=database_url(),
        FORWARDED_ALLOW_IPS=trusted,
    )
    return env


@pytest.fixture
def server(tmp_path) -> Iterator[callable]:
    started = []

    def start(trusted: str) -> str:
        context = gunicorn(_production(trusted), tmp_path / f"gunicorn-{len(started)}.log")
        started.append(context)
        return f"http://127.0.0.1:{context.__enter__()}"

    yield start
    for context in started:
        context.__exit__(None, None, None)


def _get(base: str, **headers: str) -> requests.Response:
    # Not /healthz: probes reach it over plain HTTP (SECURE_REDIRECT_EXEMPT). A GET of the
    # webhook is a bare 405: no page to render (no collectstatic here), no usage row written
    # into the tests' database by this other process, as /v1/ would.
    return requests.get(f"{base}/billing/stripe/webhook", headers=headers, allow_redirects=False, timeout=10)


def test_x_forwarded_proto_is_believed_from_the_proxy_only(server):
    behind_proxy = server("127.0.0.1")  # The test is the proxy.
    assert _get(behind_proxy).status_code == 301  # Plain HTTP: to HTTPS.
    assert _get(behind_proxy, **{"X-Forwarded-Proto": "https"}).status_code != 301

    past_proxy = server("10.9.9.9")  # The proxy is elsewhere: the test is any client.
    refused = _get(past_proxy, **{"X-Forwarded-Proto": "https"})
    assert refused.status_code == 301, "a client's own X-Forwarded-Proto was believed"
    assert refused.headers["Location"].startswith("https://")
