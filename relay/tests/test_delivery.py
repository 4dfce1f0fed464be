"""Real delivery: a real Celery worker process sends to a real SMTP server (STARTTLS + AUTH).

Each fault ends with the message delivered exactly once, or failed with the right category,
and none lost.
"""

from __future__ import annotations

import base64
import email
import time
from email import policy

import pytest

from relay.models import Message, OutboxContent, Status
from senders import actions as sender_actions
from senders.models import Sender

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.services]

ATTACHMENT = bytes(range(256)) * 40  # Every byte value, past one base64 line.


def parse(data: bytes) -> email.message.EmailMessage:
    """As a receiving server stores it: CRLF on the wire, LF on disk."""
    return email.message_from_bytes(data.replace(b"\r\n", b"\n"), policy=policy.default)


def wait_for_status(public_id: str, statuses: set[str], timeout: float = 30) -> Message:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = Message.objects.get(public_id=public_id)
        if message.status in statuses:
            return message
        time.sleep(0.1)
    raise AssertionError(f"{public_id} is {message.status}, not {statuses}; last error {message.last_error}")


def wait_until(predicate, timeout: float = 30, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_the_workers_commits_do_not_wait_for_the_disk_and_the_webs_do(worker):
    """RELAY_WORKER_SYNCHRONOUS_COMMIT (off by default): the worker's PostgreSQL sessions, as
    the server reports them to the worker itself. The web's, which answer 202, wait."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("synchronous_commit is PostgreSQL's")
    assert "Worker commits: synchronous_commit=off" in worker.log()
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        assert cursor.fetchone()[0] == "on"


def test_a_message_arrives_intact(worker, smtp_server, smtp_sender, send):
    response = send(
        via=smtp_sender,
        to=["Bob <bob@example.com>"],
        cc=["carol@example.com"],
        bcc=["dave@example.com"],
        reply_to="Support <support@example.org>",
        subject="Grüße, a subject",
        text="Plain body\nsecond line",
        html="<p>HTML body</p>",
        headers={"X-Campaign": "welcome", "In-Reply-To": "<thread@example.org>"},
        attachments=[
            {
                "filename": "data.bin",
                "content": base64.b64encode(ATTACHMENT).decode(),
                "content_type": "application/octet-stream",
            },
            {"filename": "notes.txt", "content": base64.b64encode(b"hello\r\n").decode()},
        ],
    )
    assert response.status_code == 202
    message = wait_for_status(response.json()["id"], {Status.SENT, Status.FAILED})
    assert message.status == Status.SENT, message.last_error

    [received] = smtp_server.messages
    assert received.mail_from == "alice@example.org"
    assert sorted(received.rcpt_tos) == ["bob@example.com", "carol@example.com", "dave@example.com"]
    parsed = parse(received.data)
    assert parsed["From"] == "Alice <alice@example.org>"
    assert parsed["To"] == "Bob <bob@example.com>"
    assert parsed["Cc"] == "carol@example.com"
    assert parsed["Bcc"] is None and b"dave@example.com" not in received.data
    assert parsed["Reply-To"] == "Support <support@example.org>"
    assert parsed["Subject"] == "Grüße, a subject"
    assert parsed["X-Campaign"] == "welcome"
    assert parsed["In-Reply-To"] == "<thread@example.org>"
    assert parsed["Message-ID"] == message.message_id_header
    assert parsed["Date"]
    assert parsed.get_body(("plain",)).get_content() == "Plain body\nsecond line\n"
    assert parsed.get_body(("html",)).get_content() == "<p>HTML body</p>\n"
    attachments = {part.get_filename(): part.get_content() for part in parsed.iter_attachments()}
    assert attachments["data.bin"] == ATTACHMENT
    assert attachments["notes.txt"] in ("hello\r\n", "hello\n")

    assert message.provider_message_id == received.queue_id
    assert message.attempts == 1
    assert message.sent_at is not None
    assert not OutboxContent.objects.filter(message=message).exists()


def test_the_body_cannot_smuggle_a_second_message(worker, smtp_ca, smtp_sender, send, relay_settings):
    from drake.testing.smtp import SmtpTestServer

    strict = SmtpTestServer(
        security="starttls", username="alice@example.org", password="app-password-for-tests", ca=smtp_ca, strict=True
    )
    strict.start()
    try:
        sender_actions.update_sender(smtp_sender, {"port": strict.port}, actor=None)
        hostile = "a\nb\rc\n.\nd\r\n.\r\ne\n.starts with a dot\r\n..two dots\rMAIL FROM:<evil@example.org>\r\n"
        response = send(via=smtp_sender, text=hostile, html=hostile)
        message = wait_for_status(response.json()["id"], {Status.SENT, Status.FAILED})
        assert message.status == Status.SENT, message.last_error
        [received] = strict.messages
        parsed = parse(received.data)
        body = parsed.get_body(("plain",)).get_content()
        # Every kind of line ending became one line break; lone dots and leading dots survive.
        assert body == "a\nb\nc\n.\nd\n.\ne\n.starts with a dot\n..two dots\nMAIL FROM:<evil@example.org>\n"
        assert len(strict.messages) == 1
    finally:
        strict.stop()


def test_server_down_then_up(worker, smtp_server, smtp_sender, send):
    smtp_server.stop()
    message_id = send(via=smtp_sender).json()["id"]
    waiting = wait_until(
        lambda: Message.objects.filter(public_id=message_id, attempts__gte=1, status=Status.QUEUED).first(),
        what="a failed first attempt",
    )
    assert waiting.last_error["category"] == "connection_failed"
    smtp_server.start()
    message = wait_for_status(message_id, {Status.SENT, Status.FAILED})
    assert message.status == Status.SENT
    assert len(smtp_server.messages) == 1


@pytest.mark.parametrize(
    ("stage", "code", "text"), [("data", 451, "4.3.0 Try again later"), ("rcpt", 421, "4.4.2 Closing")]
)
def test_transient_replies_are_retried(worker, smtp_server, smtp_sender, send, stage, code, text):
    smtp_server.fail_next(stage, code, text)
    message = wait_for_status(send(via=smtp_sender).json()["id"], {Status.SENT, Status.FAILED})
    assert message.status == Status.SENT
    assert message.attempts == 2
    assert len(smtp_server.messages) == 1
    assert list(message.attempt_log.values_list("outcome", "smtp_code")) == [("retry", code), ("sent", 250)], list(
        message.attempt_log.values_list("outcome", "category", "reply")
    )


def test_a_permanent_refusal_fails_at_once(worker, smtp_server, smtp_sender, send):
    smtp_server.fail_next("data", 554, "5.6.0 Message rejected")
    message = wait_for_status(send(via=smtp_sender).json()["id"], {Status.SENT, Status.FAILED})
    assert message.status == Status.FAILED
    assert message.last_error == {"category": "message_rejected", "smtp_code": 554, "message": "5.6.0 Message rejected"}
    assert message.attempts == 1
    assert not OutboxContent.objects.filter(message=message).exists()


def test_one_refused_recipient_of_two(worker, smtp_server, smtp_sender, send):
    smtp_server.reject_recipient("nobody@example.com", 550, "5.1.1 User unknown")
    message = wait_for_status(
        send(via=smtp_sender, to=["bob@example.com", "nobody@example.com"]).json()["id"], {Status.SENT, Status.FAILED}
    )
    assert message.status == Status.SENT
    assert message.refused_recipients == {"count": 1, "codes": {"550": 1}}
    assert smtp_server.messages[0].rcpt_tos == ["bob@example.com"]


def test_one_deferred_recipient_of_two_gets_it_on_a_retry(worker, smtp_server, smtp_sender, send):
    smtp_server.fail_next("rcpt", 450, "4.2.0 Greylisted, please try again later")  # carol's, the first RCPT.
    message = wait_for_status(
        send(via=smtp_sender, to=["carol@example.com", "bob@example.com"]).json()["id"], {Status.SENT, Status.FAILED}
    )
    assert message.status == Status.SENT
    assert [m.rcpt_tos for m in smtp_server.messages] == [["bob@example.com"], ["carol@example.com"]]
    assert message.refused_recipients == {} and message.last_error is None
    assert message.provider_message_id == smtp_server.messages[0].queue_id
    assert list(message.attempt_log.values_list("outcome", flat=True)) == ["partial", "sent"]
    assert not OutboxContent.objects.filter(message=message).exists()


def test_every_recipient_refused_fails(worker, smtp_server, smtp_sender, send):
    smtp_server.reject_recipient("nobody@example.com", 550, "5.1.1 User unknown")
    message = wait_for_status(send(via=smtp_sender, to="nobody@example.com").json()["id"], {Status.SENT, Status.FAILED})
    assert message.status == Status.FAILED
    assert message.last_error["category"] == "recipient_rejected"
    assert message.last_error["smtp_code"] == 550


def test_a_refused_login_pauses_the_sender_and_keeps_the_message(worker, smtp_server, smtp_sender, send):
    sender_actions.update_sender(smtp_sender, {"password": "wrong password"}, actor=None)
    message_id = send(via=smtp_sender).json()["id"]
    paused = wait_until(lambda: Sender.objects.filter(pk=smtp_sender.pk, paused_at__isnull=False).first(), what="pause")
    assert "535" in paused.paused_reason
    logins_while_paused = smtp_server.logins
    time.sleep(2.5)
    message = Message.objects.get(public_id=message_id)
    assert message.status in (Status.QUEUED, Status.SENDING)
    # The customer sees why it waits: the sender is paused because the login was refused.
    assert message.last_error["category"] in ("auth_failed", "sender_paused")
    assert "535" in message.last_error["message"] or message.last_error["smtp_code"] == 535
    # Paused means no more login attempts that could lock the mailbox.
    assert smtp_server.logins == logins_while_paused
    # The customer fixes the password: the waiting message goes out.
    sender_actions.update_sender(
        Sender.objects.get(pk=smtp_sender.pk), {"password": "app-password-for-tests"}, actor=None
    )
    message = wait_for_status(message_id, {Status.SENT, Status.FAILED})
    assert message.status == Status.SENT
    assert len(smtp_server.messages) == 1


def test_gmail_daily_quota_defers_to_tomorrow(worker, smtp_server, smtp_sender, send, settings):
    # Tomorrow 00:05 is up to 24 h 05 min away (just after midnight): the message must outlive that.
    settings.RELAY_MESSAGE_LIFETIME_HOURS = 48
    smtp_server.fail_next("data", 550, "5.4.5 Daily user sending limit exceeded")
    message_id = send(via=smtp_sender).json()["id"]
    sender = wait_until(
        lambda: Sender.objects.filter(pk=smtp_sender.pk, paused_until__isnull=False).first(), what="pause"
    )
    # The sender is paused first, then the message is deferred (two transactions).
    message = wait_until(lambda: Message.objects.exclude(status=Status.SENDING).filter(public_id=message_id).first())
    assert message.status == Status.QUEUED
    assert message.last_error["category"] == "provider_quota"
    assert message.next_attempt_at == sender.paused_until
    assert message.next_attempt_at.hour == 0


def test_a_worker_killed_while_sending_loses_nothing(worker, smtp_server, smtp_sender, send):
    # The server stalls at RCPT: nothing of the message was accepted when the worker dies.
    smtp_server.reply_delay = 4
    message_id = send(via=smtp_sender).json()["id"]
    wait_until(lambda: Message.objects.filter(public_id=message_id, status=Status.SENDING).exists(), what="sending")
    time.sleep(0.5)
    worker.kill()
    smtp_server.reply_delay = 0
    assert Message.objects.get(public_id=message_id).status == Status.SENDING
    worker.start()
    # The lease expires, the sweep re-queues, the new worker delivers.
    message = wait_for_status(message_id, {Status.SENT, Status.FAILED}, timeout=40)
    assert message.status == Status.SENT
    assert len(smtp_server.messages) == 1


def test_a_worker_stopped_while_sending_finishes_the_delivery_before_it_exits(worker, smtp_server, smtp_sender, send):
    # SIGTERM is how systemd, docker and Ctrl-C stop a worker: a warm shutdown.
    smtp_server.reply_delay = 0.4  # A delivery takes a few seconds: stopped mid-way.
    message_id = send(via=smtp_sender).json()["id"]
    wait_until(lambda: Message.objects.filter(public_id=message_id, status=Status.SENDING).exists(), what="sending")
    try:
        worker.stop()
        assert worker.proc.returncode == 0, worker.log()[-2000:]
        message = Message.objects.get(public_id=message_id)
        assert message.status == Status.SENT
        assert len(smtp_server.messages) == 1
        assert not OutboxContent.objects.filter(message=message).exists()
    finally:
        smtp_server.reply_delay = 0
        worker.start()


def test_the_broker_down_at_accept_time_loses_nothing(worker, smtp_server, smtp_sender, send, monkeypatch):
    from drake.celery import app

    good = app.conf.broker_url, app.conf.broker_transport
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://127.0.0.1:1/0")
    # A Redis nobody listens on, whatever the broker is (the embedded one's transport would take
    # the URL for its own).
    app.conf.broker_url, app.conf.broker_transport = "redis://127.0.0.1:1/0", "drake.broker:Transport"
    try:
        response = send(via=smtp_sender)
    finally:
        monkeypatch.undo()
        app.conf.broker_url, app.conf.broker_transport = good
    assert response.status_code == 202
    message = wait_for_status(response.json()["id"], {Status.SENT, Status.FAILED})
    assert message.status == Status.SENT
    assert len(smtp_server.messages) == 1


def test_a_broker_that_forgets_its_queue_loses_nothing(worker, smtp_server, smtp_sender, send):
    from drake.testing.broker import purge_queue

    worker.stop()
    try:
        message_id = send(via=smtp_sender).json()["id"]
        # A Redis without persistence restarting, or a lost filesystem queue: the task is gone.
        assert purge_queue() >= 1
    finally:
        worker.start()
    message = wait_for_status(message_id, {Status.SENT, Status.FAILED})
    assert message.status == Status.SENT
    assert len(smtp_server.messages) == 1


def test_two_workers_never_send_one_message_twice(worker, smtp_server, smtp_sender, send, tmp_path):
    from drake.testing.worker import WorkerProcess
    from relay.tests.conftest import WORKER_ENV

    second = WorkerProcess(tmp_path / "second.log", env={**WORKER_ENV, "SMTP_CA_FILE": worker.env["SMTP_CA_FILE"]})
    second.start()
    try:
        ids = [send(via=smtp_sender, to=f"r{i}@example.com").json()["id"] for i in range(20)]
        for message_id in ids:
            assert wait_for_status(message_id, {Status.SENT, Status.FAILED}).status == Status.SENT
    finally:
        second.stop()
    received = sorted(m.rcpt_tos[0] for m in smtp_server.messages)
    assert received == sorted(f"r{i}@example.com" for i in range(20))


def test_a_providers_slow_down_defers_then_delivers(worker, smtp_server, smtp_sender, send):
    smtp_server.fail_next("data", 421, "4.7.0 Try again later, closing connection")
    message_id = send(via=smtp_sender).json()["id"]
    paused = wait_until(
        lambda: Sender.objects.filter(pk=smtp_sender.pk, paused_until__isnull=False).first(), what="pause"
    )
    assert "slow down" in paused.paused_reason
    message = wait_for_status(message_id, {Status.SENT, Status.FAILED})
    assert message.status == Status.SENT
    assert list(message.attempt_log.values_list("outcome", "category")) == [
        ("deferred", "provider_throttled"),
        ("sent", ""),
    ]


def test_a_delivery_slower_than_its_lease_is_never_sent_twice(worker, smtp_server, smtp_sender, send):
    # Every reply comes within SMTP_TIMEOUT (3 s in WORKER_ENV), but the transaction as a whole
    # (a reply per recipient: 25 s) outlasts RELAY_TASK_TIME_LIMIT (6 s) and the lease (16 s). The
    # worker runs `--pool threads`, as deploy.md, the compose file and the systemd unit run it,
    # and Celery enforces no time limit on that pool: the delivery must stop by itself before
    # its lease runs out, or another worker thread takes the message over and sends it again.
    smtp_server.reply_delay = 2.5
    try:
        message_id = send(via=smtp_sender, to=[f"r{i}@example.com" for i in range(8)]).json()["id"]
        wait_until(lambda: Message.objects.filter(public_id=message_id, status=Status.SENDING).exists(), what="sending")
        time.sleep(28)  # Past the lease, and past the first transaction.
    finally:
        smtp_server.reply_delay = 0
    message = wait_for_status(message_id, {Status.SENT, Status.FAILED}, timeout=40)
    time.sleep(3)
    assert len(smtp_server.messages) <= 1, [m.queue_id for m in smtp_server.messages]
    assert message.status == Status.SENT
    assert len(smtp_server.messages) == 1
