"""The worker's SMTP pool: one login for many messages, and a transparent reconnect."""

import pytest

from relay import transport
from senders import smtp


@pytest.fixture
def pool(monkeypatch):
    fresh = transport.SmtpPool()
    monkeypatch.setattr(transport, "pool", fresh)
    yield fresh
    fresh.close_all()


DATA = b"From: a@example.org\r\nTo: b@example.com\r\nSubject: x\r\n\r\nhello\r\n"


def test_connections_are_reused(pool, smtp_server, smtp_sender):
    for _ in range(5):
        result = transport.send(smtp_sender, "alice@example.org", ["b@example.com"], DATA)
        assert result.code == 250
    assert len(smtp_server.messages) == 5
    assert smtp_server.logins == 1
    assert pool.opened == 1


def test_a_connection_dropped_by_the_server_is_replaced(pool, smtp_server, smtp_sender):
    transport.send(smtp_sender, "alice@example.org", ["b@example.com"], DATA)
    # The server restarts: the pooled connection is dead, which shows on its first command.
    smtp_server.stop()
    smtp_server.start()
    result = transport.send(smtp_sender, "alice@example.org", ["b@example.com"], DATA)
    assert result.code == 250
    assert pool.opened == 2
    assert len(smtp_server.messages) == 2


def test_idle_connections_are_not_reused(pool, smtp_server, smtp_sender, settings):
    settings.RELAY_POOL_IDLE_SECONDS = 0
    transport.send(smtp_sender, "alice@example.org", ["b@example.com"], DATA)
    transport.send(smtp_sender, "alice@example.org", ["b@example.com"], DATA)
    assert pool.opened == 2


def test_a_down_server_is_a_transient_failure(pool, smtp_server, smtp_sender):
    smtp_server.stop()
    with pytest.raises(smtp.SmtpFailure) as failure:
        transport.send(smtp_sender, "alice@example.org", ["b@example.com"], DATA)
    assert failure.value.category == "connection_failed"
    assert failure.value.transient


# --- One transaction, with PIPELINING (what Gmail, Outlook and Postfix offer) and without ----


@pytest.fixture(params=[True, False], ids=["pipelining", "one-by-one"])
def any_server(request, smtp_server):
    smtp_server.pipelining = request.param
    return smtp_server


def _send(sender, recipients=("b@example.com",), data=DATA):
    return transport.send(sender, "alice@example.org", list(recipients), data)


def test_the_message_and_its_envelope_arrive_byte_for_byte(pool, any_server, smtp_sender):
    data = b"Subject: dots\r\n\r\n.starts with a dot\r\n..two\r\n.\r\nmiddle\r\nno newline at the end"
    result = _send(smtp_sender, ["b@example.com", "c@example.com"], data)
    assert result.code == 250 and "queued as Q" in result.reply and result.refused == {}
    (received,) = any_server.messages
    assert received.mail_from == "alice@example.org"
    assert received.rcpt_tos == ["b@example.com", "c@example.com"]
    # What the server stored, un-stuffed: exactly what was sent, with the CRLF the end needs.
    assert received.data == data + b"\r\n"


def test_one_refused_recipient_of_two_is_recorded(pool, any_server, smtp_sender):
    any_server.reject_recipient("gone@example.com", 550, "5.1.1 No such user")
    result = _send(smtp_sender, ["gone@example.com", "b@example.com"])
    assert result.refused == {"gone@example.com": (550, "5.1.1 No such user")}
    assert [m.rcpt_tos for m in any_server.messages] == [["b@example.com"]]


def test_every_recipient_refused_sends_no_body(pool, any_server, smtp_sender):
    any_server.reject_recipient("b@example.com", 550, "5.1.1 No such user")
    with pytest.raises(transport.RecipientsAllRefused) as refused:
        _send(smtp_sender)
    assert refused.value.refused == {"b@example.com": (550, "5.1.1 No such user")}
    assert any_server.messages == []
    # The session ended with the refusal; the next message opens a new one and goes out.
    assert _send(smtp_sender, ["c@example.com"]).code == 250
    assert pool.opened == 2


def test_every_recipient_refused_then_a_hang_up_is_still_the_recipients_refusal(pool, any_server, smtp_sender):
    # With PIPELINING the DATA already sent gets no reply; one by one, DATA is never sent.
    any_server.reject_recipient("b@example.com", 550, "5.1.1 No such user", hang_up=True)
    with pytest.raises(transport.RecipientsAllRefused) as refused:
        _send(smtp_sender)
    assert refused.value.refused == {"b@example.com": (550, "5.1.1 No such user")}
    assert any_server.messages == []


@pytest.mark.parametrize(
    ("code", "category", "transient"), [(554, "rejected", False), (451, "connection_failed", True)]
)
def test_a_refused_data_command_sends_no_body(pool, any_server, smtp_sender, code, category, transient):
    any_server.fail_next("data_command", code, "5.0.0 No data today")
    with pytest.raises(smtp.SmtpFailure) as failure:
        _send(smtp_sender)
    assert (failure.value.category, failure.value.smtp_code, failure.value.transient) == (category, code, transient)
    assert any_server.messages == []
    assert _send(smtp_sender).code == 250


def test_a_421_on_a_reused_connection_is_a_closed_session_not_a_refusal(pool, any_server, smtp_sender):
    # A server that ends an idle session says 421 to its next command: nothing of the message
    # went out, so it goes on a new connection at once, as after a silent drop.
    _send(smtp_sender)
    any_server.fail_next("mail", 421, "4.4.2 Idle too long, closing")
    assert _send(smtp_sender).code == 250
    assert pool.opened == 2
    assert len(any_server.messages) == 2


def test_a_throttling_421_on_a_reused_connection_is_the_messages_outcome(pool, any_server, smtp_sender):
    # Gmail's "slow down": another login would not help (and too many get mailboxes locked).
    _send(smtp_sender)
    any_server.fail_next("mail", 421, "4.7.0 Try again later, closing connection")
    with pytest.raises(transport.StageRefused) as refused:
        _send(smtp_sender)
    assert (refused.value.stage, refused.value.code) == ("mail", 421)
    assert pool.opened == 1
    assert any_server.logins == 1


@pytest.mark.parametrize(
    ("stage", "code"),
    [("mail", 550), ("mail", 451), ("mail", 421), ("rcpt", 421), ("data", 554), ("data", 451)],
)
def test_a_refusal_at_each_stage_names_its_stage_and_code(pool, any_server, smtp_sender, stage, code):
    any_server.fail_next(stage, code, "4.0.0 Said no")
    with pytest.raises(transport.StageRefused) as refused:
        _send(smtp_sender)
    assert (refused.value.stage, refused.value.code, refused.value.reply) == (stage, code, "4.0.0 Said no")
    assert any_server.messages == []
    assert _send(smtp_sender).code == 250
    assert len(any_server.messages) == 1


def test_a_reused_connection_the_server_dropped_is_replaced_once(pool, any_server, smtp_sender):
    _send(smtp_sender)
    any_server.stop()
    any_server.start()
    assert _send(smtp_sender).code == 250
    assert pool.opened == 2
    assert len(any_server.messages) == 2


@pytest.fixture
def linked(smtp_server, alice, relay_settings):
    """(link, sender): a sender whose server is the test server behind a drake.testing.proxy.Link,
    which counts the client's writes."""
    from drake.testing.proxy import Link
    from senders import actions as sender_actions

    from .conftest import SMTP_PASSWORD, SMTP_USER

    with Link(smtp_server.port) as link:
        sender = sender_actions.create_sender(
            alice,
            {
                "provider": "smtp",
                "from_email": "alice@example.org",
                "host": "127.0.0.1",
                "port": link.port,
                "security": "starttls",
                "username": SMTP_USER,
                "password": SMTP_PASSWORD,
            },
        )
        yield link, sender


def _writes_per_message(pool, link, sender) -> float:
    pool.close_all()
    _send(sender)  # Opens the connection: connect, EHLO, STARTTLS, EHLO, AUTH.
    before = link.client_writes
    for _ in range(3):
        _send(sender, ["b@example.com", "c@example.com"])
    return (link.client_writes - before) / 3


def test_with_pipelining_a_message_is_two_writes_instead_of_one_per_command(pool, smtp_server, linked):
    link, sender = linked
    writes = {}
    for pipelining in (True, False):
        smtp_server.pipelining = pipelining
        writes[pipelining] = _writes_per_message(pool, link, sender)
    # MAIL + RCPT + RCPT + DATA in one write, then the body; one by one: a write for each.
    assert writes == {True: 2, False: 5}
    assert len(smtp_server.messages) == 8


def test_smtp_pipelining_off_sends_one_command_at_a_time_to_a_server_that_offers_it(
    pool, smtp_server, linked, settings
):
    settings.SMTP_PIPELINING = False
    assert smtp_server.pipelining
    assert _writes_per_message(pool, *linked) == 5
