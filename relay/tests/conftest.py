import pytest

from senders import actions as sender_actions

SMTP_USER = "alice@example.org"
SMTP_PASSWORD = "app-password-for-tests"


@pytest.fixture
def alice_sender(alice):
    return sender_actions.create_sender(
        alice, {"provider": "gmail", "from_email": "alice@example.org", "from_name": "Alice", "password": "app-pw"}
    )


@pytest.fixture
def charlie_sender(charlie):
    """Another account's sender: alice's keys must find nothing there (404, never 403)."""
    from senders.models import Sender

    return Sender.objects.create(
        user=charlie,
        provider="gmail",
        from_email="charlie@example.net",
        host="smtp.gmail.com",
        port=587,
        security="starttls",
    )


@pytest.fixture
def send(alice_api, alice_sender):
    """POST /v1/send as alice with a valid body, overridable field by field (... removes one)."""

    def post(client=None, via=None, **overrides):
        body = {
            "sender": (via or alice_sender).public_id,
            "to": "bob@example.com",
            "subject": "Hello there",
            "text": "Hi Bob",
        }
        body.update(overrides)
        body = {k: v for k, v in body.items() if v is not ...}
        return (client or alice_api).post("/v1/send", body, format="json")

    return post


# --- Real delivery: an SMTP server in this process, a Celery worker in another ---------------


@pytest.fixture(scope="session")
def smtp_ca():
    import trustme

    return trustme.CA()


@pytest.fixture(scope="session")
def ca_file(smtp_ca, tmp_path_factory):
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    smtp_ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture
def smtp_server(smtp_ca):
    from drake.testing.smtp import SmtpTestServer

    server = SmtpTestServer(security="starttls", username=SMTP_USER, password=SMTP_PASSWORD, ca=smtp_ca)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def relay_settings(settings, ca_file):
    """This process connects to loopback test servers too (sender creation, verify)."""
    settings.SMTP_ALLOW_PRIVATE_HOSTS = True
    settings.SMTP_ALLOWED_PORTS = "*"
    settings.SMTP_CA_FILE = str(ca_file)
    return settings


WORKER_ENV = {
    # Whatever a test leaves queued, this worker can only ever connect to loopback.
    "SMTP_ALLOWED_NETWORKS": "127.0.0.0/8,::1/128",
    "SMTP_ALLOW_PRIVATE_HOSTS": "true",
    "SMTP_ALLOWED_PORTS": "*",
    "SMTP_TIMEOUT": "3",
    "RELAY_TASK_TIME_LIMIT": "6",
    # Past the time limit by more than the body and its reply take (3 * SMTP_TIMEOUT; drake.checks).
    "RELAY_LEASE_SECONDS": "16",
    "RELAY_RETRY_MIN_SECONDS": "0.5",
    "RELAY_RETRY_BASE_SECONDS": "1",
    "RELAY_RETRY_MAX_SECONDS": "2",
    "RELAY_PAUSED_RECHECK_SECONDS": "1",
    "RELAY_SWEEP_INTERVAL_SECONDS": "1",
    "RELAY_REQUEUE_AFTER_SECONDS": "2",
    "RELAY_POOL_IDLE_SECONDS": "5",
    "PROVIDER_THROTTLE_PAUSE_SECONDS": "2",
}


@pytest.fixture(scope="session")
def worker(django_db_setup, django_db_blocker, ca_file, tmp_path_factory):
    """One real worker (threads pool, with the beat scheduler) for the session."""
    from drake.testing.worker import WorkerProcess

    log = tmp_path_factory.mktemp("worker") / "worker.log"
    with django_db_blocker.unblock():
        proc = WorkerProcess(log, env={**WORKER_ENV, "SMTP_CA_FILE": str(ca_file)})
    proc.start()
    yield proc
    proc.stop()


def smtp_sender_fields(smtp_server, **fields) -> dict:
    """What connects alice's sender to the test server (POST /v1/senders' body), with `fields` changed."""
    return {
        "provider": "smtp",
        "from_email": "alice@example.org",
        "from_name": "Alice",
        "host": "127.0.0.1",
        "port": smtp_server.port,
        "security": "starttls",
        "username": SMTP_USER,
        "password": SMTP_PASSWORD,
    } | fields


def plain_sender(user, port: int):
    """`user`'s sender on a scripted loopback server (no TLS, a password): for servers a test
    writes reply by reply (drake.testing.loopback.one_connection)."""
    fields = {"provider": "smtp", "from_email": "alice@example.org", "host": "127.0.0.1", "port": port}
    return sender_actions.create_sender(
        user, {**fields, "security": "none", "username": "alice@example.org", "password": "app-password"}
    )


@pytest.fixture
def smtp_sender(alice, smtp_server, relay_settings):
    return sender_actions.create_sender(alice, smtp_sender_fields(smtp_server))


@pytest.fixture
def delivering_here(monkeypatch):
    """Deliveries run in this process: no task is published (a session worker must not take
    the messages), but what would be published is noted in the list this yields; a pool of
    SMTP connections of the test's own."""
    from relay import outbox, transport

    published = []
    monkeypatch.setattr(outbox, "enqueue", lambda public_id: published.append(public_id) or True)
    pool = transport.SmtpPool()
    monkeypatch.setattr(transport, "pool", pool)
    yield published
    pool.close_all()
