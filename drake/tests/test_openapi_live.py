"""The live API keeps to its OpenAPI schema: schemathesis over HTTP against a real gunicorn process.

test_openapi.py fuzzes the API in-process through WSGI; this one runs the schemathesis CLI against
a real server (gunicorn, two sync workers, its own process group) with the same checks, so what
only a real server shows (its HTTP framing and headers, each worker's own database connections
and local cache) is fuzzed too. The test is transactional: alice, her key, her senders and
messages are committed, so the server, which is pointed at the test database, sees them.

(The CLI and not `schemathesis.pytest.from_fixture`: the lazy loader of schemathesis 4.32 reads
`request.node._nodeid`, which pytest 9.2 no longer has.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from drake.testing.processes import gunicorn
from drake.testing.smtp import SmtpTestServer
from drake.testing.worker import database_url
from relay import actions as relay_actions
from relay import delivery, transport
from relay.validation import SendRequest
from senders import actions as sender_actions

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.services]

ROOT = Path(__file__).resolve().parents[2]
RATE = 100000  # Requests per minute: the fuzzer must not run into the rate limit it is not testing.
SERVER_ENV = {
    "API_ACCOUNT_RATE_PER_MINUTE": str(RATE),
    # As conftest's _loopback_only does for this process: the server may never reach a real provider.
    "SMTP_ALLOWED_NETWORKS": "127.0.0.0/8,::1/128",
}
# Left out as in test_openapi.py, for its reasons: ignored_auth would replay with our explicit header
# still set (every 401 case has its own tests), "schema-valid data is accepted" does not hold
# by design (a well-formed but unknown sender id is a 404), and neither does "schema-invalid data
# is refused" (an empty starting_after, which means no cursor, is taken).
EXCLUDED_CHECKS = [
    "negative_data_rejection",
    "positive_data_acceptance",
    "ignored_auth",
]
# Loaded by the schemathesis process (SCHEMATHESIS_HOOKS). Half of the generated ids name a row that
# exists (each of the known rows of that kind), and half of the sends go through the real sender to a
# real address, so the fuzzer reaches the 200 and 202 answers and their bodies, not only 404s and
# 400s. DELETE keeps random ids: the senders must last the whole run.
HOOKS = """
import json
import os

import schemathesis
from hypothesis import strategies as st

KNOWN = json.loads(os.environ["DRAKE_KNOWN_IDS"])


@schemathesis.hook
def flatmap_path_parameters(context, path_parameters):
    names = [name for name in path_parameters or {} if name in KNOWN]
    if not names or context.operation.method.upper() == "DELETE":
        return st.just(path_parameters)
    known = st.fixed_dictionaries({name: st.sampled_from(KNOWN[name]) for name in names})
    return st.one_of(st.just(path_parameters), known.map(lambda ids: {**path_parameters, **ids}))


@schemathesis.hook
def flatmap_body(context, body):
    if context.operation.path != "/v1/send" or not isinstance(body, dict):
        return st.just(body)
    return st.sampled_from([body, {**body, "sender": KNOWN["sender_id"][0], "to": "bob@example.com"}])
"""


def _log(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def _wait_until_healthy(base_url: str, log_path: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            response = requests.get(f"{base_url}/healthz", timeout=2)
        except requests.RequestException as exc:
            last = repr(exc)
        else:
            if response.status_code == 200:
                return
            last = f"{response.status_code} {response.text}"
        time.sleep(0.2)
    pytest.fail(f"gunicorn did not answer /healthz with 200 within {timeout} s (last: {last}):\n{_log(log_path)}")


@pytest.fixture
def live_sender(alice, alice_key):
    alice.plan.rate_per_minute = RATE
    alice.plan.save()
    # A Gmail sender needs no server: it is never verified, and no worker delivers here.
    return sender_actions.create_sender(
        alice, {"provider": "gmail", "from_email": "alice@example.org", "from_name": "Alice", "password": "app-pw"}
    )


@pytest.fixture
def delivered(alice, live_sender, settings) -> dict[str, list[str]]:
    """Rows in the states a worker and a verification leave, made by them (not written by hand), so
    the fuzzer reads those bodies too: a verified sender and one whose verification failed, a sent
    message with a refused recipient and a failed one with its error. Delivered in this process;
    the server never delivers (no worker, and it may reach no loopback SMTP server)."""
    settings.SMTP_ALLOW_PRIVATE_HOSTS, settings.SMTP_ALLOWED_PORTS = True, "*"
    with SmtpTestServer(security="none", username="alice@example.org", password="smtp-pw") as server:
        server.reject_recipient("gone@example.com")
        server.reject_recipient("dead@example.com", 554, "5.7.1 Relay denied")
        smtp_sender = sender_actions.create_sender(
            alice,
            {
                "provider": "smtp",
                "from_email": "alice@example.org",
                "host": "127.0.0.1",
                "port": server.port,
                "security": "none",
                "password": "smtp-pw",
            },
        )
        assert sender_actions.verify_sender(smtp_sender, actor=alice) is None
        assert sender_actions.verify_sender(live_sender, actor=alice) is not None  # smtp.gmail.com: not loopback
        ids = []
        try:
            for to, status in ((["bob@example.com", "gone@example.com"], "sent"), (["dead@example.com"], "failed")):
                request = SendRequest(sender=smtp_sender.public_id, to=to, subject="Hello", text="Hi")
                message, _ = relay_actions.accept_message(alice, request, size=100)
                assert delivery.deliver(message.public_id) == status
                ids.append(message.public_id)
        finally:
            transport.pool.close_all()
    return {"sender_id": [smtp_sender.public_id], "message_id": ids}


@pytest.fixture
def gunicorn_server(live_sender, tmp_path) -> Iterator[str]:
    """gunicorn on a free loopback port, on the test database and this process's broker and cache."""
    env = {**os.environ, "DATABASE_URL": database_url(), **SERVER_ENV}
    log_path = tmp_path / "gunicorn.log"
    with gunicorn(env, log_path, workers=2) as port:
        base_url = f"http://127.0.0.1:{port}"
        _wait_until_healthy(base_url, log_path)
        yield base_url


def test_the_live_api_keeps_to_its_schema(gunicorn_server, live_sender, delivered, alice_key, tmp_path):
    auth = f"Bearer {alice_key}"
    # One message accepted by the live server itself, so /v1/messages/{message_id} has a real id too.
    accepted = requests.post(
        f"{gunicorn_server}/v1/send",
        json={"sender": live_sender.public_id, "to": "bob@example.com", "subject": "Hello", "text": "Hi Bob"},
        headers={"Authorization": auth},
        timeout=10,
    )
    assert accepted.status_code == 202, accepted.text
    known = {
        "sender_id": [live_sender.public_id, *delivered["sender_id"]],
        "message_id": [accepted.json()["id"], *delivered["message_id"]],
    }
    hooks = tmp_path / "live_hooks.py"
    hooks.write_text(HOOKS)

    started = time.monotonic()
    run = subprocess.run(
        [
            *(sys.executable, "-m", "schemathesis.cli", "run", f"{gunicorn_server}/v1/openapi.json"),
            *("--header", f"Authorization: {auth}"),
            # Every check but the ones left out above: no 5xx, every status, content type and body documented.
            *("--checks", "all", "--exclude-checks", ",".join(EXCLUDED_CHECKS)),
            *("--max-examples", "10", "--request-timeout", "10", "--no-color"),
        ],
        cwd=tmp_path,  # Its reports and example database stay out of the repository.
        env={**os.environ, "SCHEMATHESIS_HOOKS": str(hooks), "DRAKE_KNOWN_IDS": json.dumps(known)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = f"{run.stdout}\n{run.stderr}"
    assert run.returncode == 0, f"schemathesis exited with {run.returncode}:\n{output}"
    print(f"schemathesis took {time.monotonic() - started:.1f} s:\n{output}")  # Shown with -rA or -s.
