"""The SMTP transport of the delivery worker: pooled connections per sender, one transaction per message.

Opening a connection costs a TCP handshake, EHLO, TLS and AUTH (several round trips and a login
the provider counts), so each worker process keeps a few idle connections per sender and reuses
them. A pooled connection the server has meanwhile dropped is noticed on the first command and
replaced once; connections idle longer than RELAY_POOL_IDLE_SECONDS are closed rather than
reused. The pool is thread-safe, so a thread pool of workers shares it. Where the server offers
PIPELINING (RFC 2920), a message's commands go out together (`_transact_pipelined`).
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import smtplib
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from relay import body, pacing
from senders import smtp
from senders.models import Sender

logger = logging.getLogger(__name__)


def _said(reply: bytes) -> str:
    """A reply's text, cleaned but not cut to its length yet: the caller takes the message's
    content (subject, filenames, Cc and Bcc addresses) out of it first, which a cut through
    one would leave partly in (relay.delivery)."""
    return smtp.clean_reply(reply, limit=None)


@dataclass
class SendResult:
    code: int
    reply: str  # Replies here are not cut to length (`_said`).
    refused: dict[str, tuple[int, str]] = field(default_factory=dict)


class RecipientsAllRefused(Exception):
    def __init__(self, refused: dict[str, tuple[int, str]]) -> None:
        super().__init__("every recipient was refused")
        self.refused = refused


class StageRefused(Exception):
    """The server answered MAIL or DATA with an error code."""

    def __init__(self, stage: str, code: int, reply: str) -> None:
        super().__init__(f"{stage}: {code} {reply}")
        self.stage, self.code, self.reply = stage, code, reply


@dataclass
class _Idle:
    client: smtplib.SMTP
    since: float


@dataclass
class _Slot:
    key: pacing.Slot  # The connection slot (relay.pacing) this connection holds.
    renewed: float
    until: float  # When its lease runs out (time.monotonic()).


def _in_use_until(deadline: float | None) -> float:
    """When a connection handed out now is back at the latest: by its session's deadline
    (RELAY_TASK_TIME_LIMIT from now without one), and the body's last step and its reply,
    which may go past it (`_body`). Its slot's lease must last that long: nothing renews it
    while the connection is in use, and another worker takes a slot whose lease ran out."""
    end = time.monotonic() + settings.RELAY_TASK_TIME_LIMIT if deadline is None else deadline
    return end + (smtp.REPLY_WAITS + 1) * settings.SMTP_TIMEOUT


def _lease_seconds(until: float) -> int:
    return max(math.ceil(pacing.SLOT_LEASE_SECONDS), math.ceil(until - time.monotonic()) + 1)


def _key(sender: Sender) -> tuple[int, float]:
    # A changed sender (new password, host...) gets new connections.
    return (sender.pk, sender.updated_at.timestamp())


def _close(client: smtplib.SMTP) -> None:
    try:
        client.quit()
    except (smtplib.SMTPException, OSError):
        client.close()


class SmtpPool:
    """Idle connections per sender, in this process. Each open connection holds one of the
    sender's connection slots (relay.pacing), shared by all workers, until it is closed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # Signalled whenever a connection comes back to the pool (see _open_or_wait).
        self._returned = threading.Condition(self._lock)
        self._idle: dict[tuple[int, float], list[_Idle]] = defaultdict(list)
        # Each open connection's slot, and when its lease was last renewed: renewing it for every
        # message was a cache round trip per message; a quarter of the lease is plenty of margin.
        self._slot_of: dict[int, _Slot] = {}
        self._reaper: threading.Thread | None = None
        self.opened = 0  # For benchmarks and tests: how many logins this pool made.

    def _discard(self, client: smtplib.SMTP, *, polite: bool = True) -> None:
        if polite:
            _close(client)
        else:
            client.close()
        with self._lock:
            slot = self._slot_of.pop(id(client), None)
        if slot:
            pacing.release_connection_slot(slot.key)

    def _take_idle(self, key: tuple[int, float], deadline: float | None = None) -> smtplib.SMTP | None:
        now = time.monotonic()
        in_use_until = _in_use_until(deadline)
        stale: list[smtplib.SMTP] = []
        found = None
        with self._lock:
            idle = self._idle.get(key, [])
            while idle:
                entry = idle.pop()
                if now - entry.since <= settings.RELAY_POOL_IDLE_SECONDS:
                    found = entry.client
                    break
                stale.append(entry.client)
            slot = self._slot_of.get(id(found)) if found is not None else None
            renew = slot is not None and (
                now - slot.renewed > pacing.SLOT_LEASE_SECONDS / 4 or slot.until < in_use_until
            )
            if renew:
                seconds = _lease_seconds(in_use_until)
                slot.renewed, slot.until = now, now + seconds
        if renew and not pacing.renew_connection_slot(slot.key, seconds):
            stale.append(found)  # Its lease ran out and another connection took the slot.
            found = None
        for client in stale:
            self._discard(client)
        return found

    def _give_back(self, key: tuple[int, float], client: smtplib.SMTP) -> None:
        with self._lock:
            self._idle[key].append(_Idle(client, time.monotonic()))
            self._returned.notify()
            start = self._reaper is None
            if start:
                self._reaper = threading.Thread(target=self._reap, name="smtp-pool-reaper", daemon=True)
                reaper = self._reaper
        if start:
            reaper.start()

    def _reap(self) -> None:
        """Close idle connections before their slot's lease runs out: nothing renews it while a
        connection sits here, and a connection still open after its lease would be one more than
        the sender's cap once another worker takes the freed slot. Runs while any are idle."""
        interval = min(settings.RELAY_POOL_IDLE_SECONDS, pacing.SLOT_LEASE_SECONDS / 4) / 2
        while True:
            time.sleep(interval)
            now = time.monotonic()
            stale: list[smtplib.SMTP] = []
            with self._lock:
                for idle in self._idle.values():
                    for entry in list(idle):
                        slot = self._slot_of.get(id(entry.client))
                        leased = slot is not None and now - slot.renewed < pacing.SLOT_LEASE_SECONDS / 2
                        if now - entry.since > settings.RELAY_POOL_IDLE_SECONDS or not leased:
                            idle.remove(entry)
                            stale.append(entry.client)
                if not stale and not any(self._idle.values()):
                    self._reaper = None
                    return
            for client in stale:
                self._discard(client)

    def _open_or_wait(
        self, sender: Sender, key: tuple[int, float], session_deadline: float | None = None
    ) -> tuple[smtplib.SMTP, bool]:
        """A new connection, or, while the sender's connection cap is reached, the first of its
        connections that comes back to this pool (or a slot another worker frees) within
        RELAY_CONNECTION_WAIT_SECONDS. Waiting briefly beats deferring the message: a busy
        sender's connections turn over every few milliseconds."""
        deadline = time.monotonic() + settings.RELAY_CONNECTION_WAIT_SECONDS
        while True:
            try:
                return self._open(sender, session_deadline), False
            except pacing.PaceLimited:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise
            with self._returned:
                # Slots held by other processes free themselves without a signal here: look again soon.
                self._returned.wait(timeout=min(remaining, 0.2))
            client = self._take_idle(key, session_deadline)
            if client is not None:
                return client, True

    def _open(self, sender: Sender, deadline: float | None = None) -> smtplib.SMTP:
        leased, seconds = time.monotonic(), _lease_seconds(_in_use_until(deadline))
        slot = pacing.acquire_connection_slot(sender, seconds)
        if slot is None:
            limit = sender.limits().connections
            raise pacing.PaceLimited(
                timezone.now() + timedelta(seconds=2), f"{limit} concurrent connections (all in use)"
            )
        try:
            client = smtp.open_connection(**sender.connection_params(), deadline=deadline)
        except BaseException:
            pacing.release_connection_slot(slot)
            raise
        with self._lock:
            self._slot_of[id(client)] = _Slot(slot, leased, leased + seconds)
            self.opened += 1
        return client

    @contextmanager
    def connection(
        self, sender: Sender, *, fresh: bool = False, deadline: float | None = None
    ) -> Iterator[tuple[smtplib.SMTP, bool]]:
        """A connection to the sender's server and whether it was reused from the pool.

        With `deadline` (time.monotonic()) a new connection is opened by then, and the block
        runs with it as the session's deadline (smtp._Bounded). Returned to the pool only if
        the block ends without an exception.
        """
        key = _key(sender)
        client = None if fresh else self._take_idle(key, deadline)
        reused = client is not None
        if client is None:
            client, reused = self._open_or_wait(sender, key, deadline)
        client.session_deadline = deadline
        try:
            yield client, reused
        except BaseException:
            self._discard(client, polite=False)
            raise
        else:
            client.session_deadline = None
            self._give_back(key, client)

    def close_all(self) -> None:
        with self._lock:
            entries = [e for idle in self._idle.values() for e in idle]
            self._idle.clear()
        for entry in entries:
            self._discard(entry.client)


pool = SmtpPool()


def _transact(client: smtplib.SMTP, mail_from: str, recipients: list[str], data: bytes, *, reused: bool) -> SendResult:
    # `docmd` with the addresses in angle brackets: what smtplib's mail() and rcpt() send for a
    # bare address, without their re-parsing each address with email.utils.parseaddr (a tenth
    # of a message's CPU). Both are bare and validated at accept: no display name, no CR or LF.
    if settings.SMTP_PIPELINING and client.has_extn("pipelining"):
        return _transact_pipelined(client, mail_from, recipients, data, reused=reused)
    code, reply = _first_reply(lambda: client.docmd("MAIL", f"FROM:<{mail_from}>"), reused=reused)
    if code != 250:
        _reset(client, code)
        raise StageRefused("mail", code, _said(reply))
    refused = _refused_recipients(recipients, lambda rcpt: client.docmd("RCPT", f"TO:<{rcpt}>"))
    if len(refused) == len(recipients):
        _reset(client, 0)
        raise RecipientsAllRefused(refused)
    code, reply = client.docmd("DATA")
    if code != 354:
        _reset(client, code)
        raise StageRefused("data_command", code, _said(reply))
    code, reply = _body(client, data)
    if code != 250:
        _reset(client, code)
        raise StageRefused("data", code, _said(reply))
    return SendResult(code=code, reply=_said(reply), refused=refused)


# The outcome of an attempt whose body, its final dot included, went out but whose reply never
# came: the server may have queued the message (an MTA commits on the dot, then replies). It is
# retried, as Postfix does ("lost connection ... after end of data"): losing the message would
# break the 202's promise. But the attempt says so, unlike a server never reached, since the
# recipient may get two copies.
UNCONFIRMED = "unconfirmed"


def _unconfirmed(exc: smtplib.SMTPException | OSError) -> smtp.SmtpFailure:
    if smtp.classify(exc).category == "timeout":
        because = "The server did not answer in time after the message was sent"
    elif isinstance(exc, smtplib.SMTPResponseException):  # smtplib's own (senders.smtp._ReplyReader)
        because = "The server's reply to the message could not be read"
    else:
        because = "The connection was lost after the message was sent, before the server confirmed it"
    return smtp.SmtpFailure(UNCONFIRMED, f"{because}: it may have been delivered.", transient=True)


def _body(client: smtplib.SMTP, data: bytes) -> tuple[int, bytes]:
    """Send the body after a 354 and read the server's reply to it.

    The body is written by the session's deadline, or one SMTP_TIMEOUT after it starts if that
    is later, each step of it within SMTP_TIMEOUT (relay.body). Giving up before the final dot
    is safe: no server takes a message without it. Its reply is not cut short by the deadline:
    the server may have queued the message by then. So the body and its reply end at most
    (REPLY_WAITS + 1) * SMTP_TIMEOUT after the deadline: what RELAY_LEASE_SECONDS leaves room
    for after RELAY_TASK_TIME_LIMIT (drake.checks).

    No reply once the final dot is written (the connection closed, or silent past the wait) is
    SmtpFailure `unconfirmed`, transient: tried again, and recorded as possibly delivered."""
    deadline, client.session_deadline = client.session_deadline, None
    whole = body.write(client, _framed(data), deadline)
    try:
        return client.getreply()
    except (smtplib.SMTPException, OSError) as exc:
        if not whole:  # The server stopped before taking the final dot: nothing was delivered.
            raise
        raise _unconfirmed(exc) from exc


def _transact_pipelined(
    client: smtplib.SMTP, mail_from: str, recipients: list[str], data: bytes, *, reused: bool
) -> SendResult:
    """The same transaction with PIPELINING (RFC 2920), which Gmail, Outlook and Postfix offer:
    MAIL, every RCPT and DATA go out in one write and their replies are read in order, so a
    message takes two round trips and two writes instead of three plus one per recipient (its
    round trips are most of its time on a real network).

    The outcomes are those of `_transact`, reply by reply. The body is sent only after a 354
    to DATA and with at least one recipient accepted; any refusal ends the session (the pool
    discards a connection whose transaction raised), so replies still unread do not matter.
    """
    commands = [f"MAIL FROM:<{mail_from}>", *(f"RCPT TO:<{rcpt}>" for rcpt in recipients), "DATA"]
    if any("\r" in command or "\n" in command for command in commands):
        # What smtplib's putcmd refuses for the one-by-one path (validation already does).
        raise ValueError("command and arguments contain prohibited newline characters")

    def write() -> tuple[int, bytes]:
        client.send("".join(f"{command}\r\n" for command in commands))
        return client.getreply()

    code, reply = _first_reply(write, reused=reused)  # No body can go out without a 354 yet.
    if code != 250:
        raise StageRefused("mail", code, _said(reply))
    refused = _refused_recipients(recipients, lambda _rcpt: client.getreply())
    if len(refused) == len(recipients):
        # The server refuses DATA then (RFC 2920, 3.1); one that said 354 regardless gets no
        # body. The outcome is the recipients' whatever that reply is, or if none comes, as
        # one by one, where DATA is never sent.
        with contextlib.suppress(smtplib.SMTPException, OSError):
            client.getreply()
        raise RecipientsAllRefused(refused)
    code, reply = client.getreply()
    if code != 354:
        raise StageRefused("data_command", code, _said(reply))
    code, reply = _body(client, data)
    if code != 250:
        raise StageRefused("data", code, _said(reply))
    return SendResult(code=code, reply=_said(reply), refused=refused)


_LEADING_DOT = re.compile(rb"(?m)^\.")


def _framed(data: bytes) -> bytes:
    """The message as smtplib's data() sends it after the 354: lines starting with a dot get
    another (RFC 5321, 4.5.2), then CRLF if missing and the lone dot that ends it. `data` is
    CRLF-normalised already (mime.to_wire)."""
    framed = _LEADING_DOT.sub(b"..", data)
    if not framed.endswith(b"\r\n"):
        framed += b"\r\n"
    return framed + b".\r\n"


def _refused_recipients(
    recipients: list[str], reply_to: Callable[[str], tuple[int, bytes]]
) -> dict[str, tuple[int, str]]:
    """The reply to each recipient's RCPT in turn (`reply_to` sends it and reads the reply, or
    only reads it when pipelined): the refused ones, with code and cleaned text. A 421 ends
    the session: StageRefused at once."""
    refused: dict[str, tuple[int, str]] = {}
    for rcpt in recipients:
        code, reply = reply_to(rcpt)
        if code not in (250, 251):
            refused[rcpt] = (code, _said(reply))
            if code == 421:
                raise StageRefused("rcpt", code, refused[rcpt][1])
    return refused


def _first_reply(command: Callable[[], tuple[int, bytes]], *, reused: bool) -> tuple[int, bytes]:
    """The reply to a transaction's first command (`command` writes it and reads the reply).
    On a pooled connection a session the server ended shows here, and raises _Stale: nothing
    of this message was sent yet, so trying again on a new connection cannot duplicate it."""
    try:
        code, reply = command()
    except (smtplib.SMTPServerDisconnected, ConnectionError) as exc:
        if reused:
            raise _Stale() from exc
        raise
    if reused and code == 421:
        said = smtp.clean_reply(reply)
        if _closed_while_idle(said):
            raise _Stale(said)
    return code, reply


def _closed_while_idle(reply: str) -> bool:
    """A 421 as the first reply on a pooled connection: the server ended the session while it
    sat idle (Postfix, Exchange: 421 4.4.x) and nothing of this message went out. It is sent
    again on a new connection, as after a silent drop. A 421 with a 4.7 status is a provider
    asking to slow down (Gmail's 4.7.0): a new login would not help, and logging in again and
    again gets mailboxes locked. That is the message's outcome, as on a new connection."""
    return "4.7." not in reply


def _reset(client: smtplib.SMTP, code: int) -> None:
    """Make the session ready for the next message after a refusal (421 ends the session:
    the exception that follows closes the connection instead of pooling it)."""
    if code == 421:
        return
    try:
        client.rset()
    except (smtplib.SMTPException, OSError):
        client.close()


def send(
    sender: Sender, mail_from: str, recipients: list[str], data: bytes, *, deadline: float | None = None
) -> SendResult:
    """Send one message through the sender's server. Raises SmtpFailure, StageRefused or
    RecipientsAllRefused. A pooled connection found dead on its first command is replaced once.

    With `deadline` (time.monotonic()) everything up to the server's 354 to DATA ends by then
    (a timeout: nothing of the message was accepted, it is tried again); the body is written
    by then or within one SMTP_TIMEOUT of its start, and its reply is not cut short (`_body`)."""
    for attempt in (1, 2):
        try:
            with pool.connection(sender, fresh=attempt == 2, deadline=deadline) as (client, reused):
                return _transact(client, mail_from, recipients, data, reused=reused and attempt == 1)
        except _Stale as stale:
            said = f" ({stale.reply})" if stale.reply else ""
            logger.info(
                "Pooled connection to sender %s was closed by the server%s; reconnecting.", sender.public_id, said
            )
            continue
        except (smtplib.SMTPException, OSError, UnicodeEncodeError) as exc:
            raise smtp.classify(exc) from exc
    raise AssertionError("unreachable")


class _Stale(Exception):
    def __init__(self, reply: str = "") -> None:
        super().__init__(reply)
        self.reply = reply  # Cleaned (smtp.clean_reply); empty for a silent drop.
