"""Opening an authenticated SMTP connection to a customer's provider, safely.

Used by sender verification and by the relay's delivery transport. The rules:
- the host passes the guard (senders.guard) and we dial the checked address, not the name;
- TLS always verifies the certificate against the *host name* (smtplib would otherwise check
  it against the address it dialled, or not at all without a context);
- STARTTLS that is not offered, or fails, is an error: never a fallback to plaintext;
- a password is never sent over an unencrypted connection to a public address;
- every network wait is bounded by `timeout` (the name lookup: by the session's deadline).
Failures become SmtpFailure with a category, the SMTP code and the server's (sanitised) text.
"""

from __future__ import annotations

import base64
import binascii
import re
import smtplib
import socket
import ssl
import time
from dataclasses import dataclass, replace
from functools import cache
from typing import Any

from django.conf import settings

from senders import guard
from senders.presets import Security

REPLY_TEXT_LIMIT = 300
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f]+")


def clean_reply(text: bytes | str | None, *, limit: int | None = REPLY_TEXT_LIMIT) -> str:
    """Server reply text is hostile input: decode leniently, drop control bytes, truncate to
    `limit` characters (None: not yet, for a caller that takes something out of it first)."""
    if text is None:
        return ""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    text = _UNPRINTABLE.sub(" ", text).strip()
    if limit is None:
        return text
    return text[:limit] + ("…" if len(text) > limit else "")


@dataclass
class SmtpFailure(Exception):
    """Why talking to the provider failed. `transient` failures are worth retrying."""

    category: str
    message: str
    smtp_code: int | None = None
    transient: bool = False

    def __str__(self) -> str:
        code = f"{self.smtp_code} " if self.smtp_code else ""
        return f"{self.category}: {code}{self.message}"

    def as_dict(self) -> dict[str, object]:
        return {"category": self.category, "smtp_code": self.smtp_code, "message": self.message}


@cache
def _tls_context(ca_file: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if ca_file:
        # In addition to the system's CAs, not instead of them.
        context.load_verify_locations(cafile=ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def tls_context() -> ssl.SSLContext:
    return _tls_context(settings.SMTP_CA_FILE)


# One reply, all its lines, may take this many times the timeout of one wait, however its
# server spaces them out (a working server sends a reply's lines together).
REPLY_WAITS = 2
# A verification (an HTTP request waits for it) takes at most this many timeouts in all,
# connect, TLS and every reply included: 15 s with the default 5 s, inside gunicorn's 30 s.
VERIFY_TIMEOUTS = 3


# How much of an over-long reply line is read past smtplib's limit (8192 bytes) and dropped.
# RFC 5321 allows 512; a longer line is a sloppy server's, still a reply (Postfix's client
# reads it up to its line_length_limit and goes on). Past this much it is no reply at all.
LONG_LINE_SKIP = 64 * 1024


class _ReplyReader:
    """The reply stream of a session: while `deadline` (time.monotonic()) is set, each line is
    read with at most the time left, then TimeoutError (smtplib reports it as a dropped
    connection that timed out).

    A line longer than smtplib reads (`size`) is cut there, its rest read and dropped:
    smtplib would close the connection and raise SMTPResponseException(500, "Line too long."),
    a code the server never sent, for a "250 ..." whose text ran on."""

    def __init__(self, file: Any, sock: socket.socket, timeout: float) -> None:
        self.file, self.sock, self.timeout = file, sock, timeout
        self.deadline: float | None = None

    def readline(self, size: int = -1) -> bytes:
        line = self._read(size)
        if size <= 4 or len(line) < size:
            return line
        end, skipped = line, 0
        while not end.endswith(b"\n"):
            if skipped >= LONG_LINE_SKIP:
                return line  # smtplib's "Line too long." (classify: not the server's code).
            end = self._read(size)
            if not end:
                return b""  # Closed mid-line: no reply.
            skipped += len(end)
        return line[: size - 3] + b"\r\n"

    def _read(self, size: int) -> bytes:
        if self.deadline is None:
            return self.file.readline(size)
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("timed out")
        self.sock.settimeout(min(left, self.timeout))
        try:
            return self.file.readline(size)
        finally:
            self.sock.settimeout(self.timeout)

    def close(self) -> None:
        self.file.close()


class _Bounded:
    """smtplib bounds each read by `timeout`, not a reply: a server that drips a continuation
    line ("220-...") now and then held the session as long as it liked. Here one reply takes
    at most REPLY_WAITS timeouts. A whole exchange is not bounded as one: it takes a reply per
    recipient, and the reply to the data must not be cut short (the server may have queued the
    message: giving up then would send it twice).

    A session with a `session_deadline` (time.monotonic(); verification, which answers an HTTP
    request) is bounded as a whole as well: connect, every reply and the TLS handshake end by it."""

    session_deadline: float | None = None
    target: guard.Target
    dialed = ""  # The target's address the connection went to.

    def wait_left(self, timeout: float) -> float:
        """`timeout`, or less so as to end by the session's deadline; TimeoutError past it."""
        if self.session_deadline is None:
            return timeout
        left = self.session_deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("timed out")
        return min(timeout, left)

    def dial(self, port: int, timeout: float) -> socket.socket:
        """A TCP connection to the first of the target's checked addresses that takes one, in
        the resolver's order, as socket.create_connection does for a name (which would look it
        up again: no pinning). Dialing only the first, a host whose first address does not
        answer from here (an IPv6 address without a route, one server of several down) was
        unreachable although the next would have answered. Each try ends by the session's
        deadline; the last error is raised if none answers."""
        error: OSError = OSError("The host has no address to connect to.")
        for address in (self.target.address, *self.target.others):
            try:
                sock = socket.create_connection((address, port), self.wait_left(timeout))
            except OSError as exc:  # Refused, unreachable, timed out (TimeoutError is an OSError).
                error = exc
                if self.session_deadline is not None and self.session_deadline <= time.monotonic():
                    break
                continue
            self.dialed = address
            return sock
        raise error

    def getreply(self) -> tuple[int, bytes]:
        # smtplib drops its reader at STARTTLS and on close; a new one reads the new socket.
        if not isinstance(self.file, _ReplyReader) and self.sock is not None:
            self.file = _ReplyReader(self.file or self.sock.makefile("rb"), self.sock, self.timeout)
        reader = self.file
        if reader is not None:
            reader.deadline = time.monotonic() + REPLY_WAITS * self.timeout
            if self.session_deadline is not None:
                reader.deadline = min(reader.deadline, self.session_deadline)
        try:
            return super().getreply()  # type: ignore[misc]
        finally:
            if reader is not None:
                reader.deadline = None


class PinnedSMTP(_Bounded, smtplib.SMTP):
    """smtplib.SMTP that dials a pre-checked address while speaking to (and verifying) the host name."""

    def __init__(
        self, target: guard.Target, *, timeout: float, local_hostname: str, deadline: float | None = None
    ) -> None:
        self.target = target
        self.session_deadline = deadline
        super().__init__(local_hostname=local_hostname, timeout=timeout)
        # starttls() verifies the certificate against _host, which smtplib sets only when the
        # constructor connects: it must be the name, never the address we dial.
        self._host = target.hostname

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        return self.dial(port, timeout)


class PinnedSMTP_SSL(_Bounded, smtplib.SMTP_SSL):  # noqa: N801  (mirrors smtplib's name)
    def __init__(
        self, target: guard.Target, *, timeout: float, local_hostname: str, deadline: float | None = None
    ) -> None:
        self.target = target
        self.session_deadline = deadline
        super().__init__(local_hostname=local_hostname, timeout=timeout, context=tls_context())
        self._host = target.hostname

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        raw = self.dial(port, timeout)
        try:
            raw.settimeout(self.wait_left(timeout))  # The handshake is bounded as a whole by it.
            sock = self.context.wrap_socket(raw, server_hostname=self.target.hostname)
            sock.settimeout(timeout)
            return sock
        except BaseException:
            raw.close()
            raise


def _classify(exc: BaseException) -> SmtpFailure:
    if isinstance(exc, SmtpFailure):
        return exc
    if isinstance(exc, guard.HostNotAllowed):
        # A lookup that did not answer in time may answer later; a refused host stays refused.
        return SmtpFailure("host_not_allowed", str(exc), transient=isinstance(exc, guard.LookupTimedOut))
    if isinstance(exc, UnicodeEncodeError):
        # smtplib writes commands in ASCII. Validation refuses such addresses now (a non-ASCII
        # local part, which Django's validate_email let through); one accepted before went
        # out of the task as this error, and its message was taken again every lease.
        return SmtpFailure(
            "message_rejected", "An address of the message is not ASCII, which 3drake cannot send (no SMTPUTF8)."
        )
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return SmtpFailure("auth_failed", clean_reply(exc.smtp_error), exc.smtp_code, transient=exc.smtp_code < 500)
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return SmtpFailure("tls_failed", f"The server does not support this: {clean_reply(str(exc))}")
    if isinstance(exc, smtplib.SMTPResponseException) and isinstance(exc.smtp_error, str):
        # smtplib's own, not the server's (whose replies are bytes): its 500 "Line too long."
        # when a reply line runs past what _ReplyReader reads. It closed the connection.
        return SmtpFailure(
            "connection_failed", f"The server's reply could not be read: {clean_reply(exc.smtp_error)}", transient=True
        )
    if isinstance(exc, smtplib.SMTPResponseException):
        code = exc.smtp_code
        category = "connection_failed" if code < 500 else "rejected"
        return SmtpFailure(category, clean_reply(exc.smtp_error), code, transient=400 <= code < 500)
    if isinstance(exc, ssl.SSLCertVerificationError | ssl.CertificateError):
        return SmtpFailure(
            "tls_failed", f"The certificate did not verify: {clean_reply(exc.args[-1] if exc.args else '')}"
        )
    if isinstance(exc, ssl.SSLError):
        return SmtpFailure("tls_failed", f"TLS failed: {clean_reply(str(exc))}", transient=True)
    if isinstance(exc, TimeoutError | socket.timeout):
        return SmtpFailure("timeout", "The server did not answer in time.", transient=True)
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        # smtplib turns a read timeout into "Connection unexpectedly closed: timed out".
        if isinstance(exc.__context__, TimeoutError) or "timed out" in str(exc):
            return SmtpFailure("timeout", "The server did not answer in time.", transient=True)
        return SmtpFailure("connection_failed", "The server closed the connection.", transient=True)
    if isinstance(exc, OSError):
        reason = exc.strerror or exc.__class__.__name__
        return SmtpFailure("connection_failed", f"Could not connect: {reason}.", transient=True)
    raise exc


def classify(exc: BaseException) -> SmtpFailure:
    """The SmtpFailure for an exception raised while talking SMTP (re-raises anything else)."""
    return _classify(exc)


def open_connection(
    *,
    host: str,
    port: int,
    security: str,
    username: str = "",
    password: str = "",
    timeout: float | None = None,
    deadline: float | None = None,
) -> smtplib.SMTP:
    """A connected, encrypted (per `security`) and authenticated SMTP session.

    With `deadline` (time.monotonic()) the session, the host's name lookup included, ends by then.
    Raises SmtpFailure. The caller owns the returned connection (quit/close it).
    """
    timeout = timeout or settings.SMTP_TIMEOUT
    local_hostname = settings.SMTP_EHLO_HOSTNAME
    client: smtplib.SMTP | None = None
    try:
        target = guard.check(host, port, deadline=deadline)
        if security == Security.TLS:
            client = PinnedSMTP_SSL(target, timeout=timeout, local_hostname=local_hostname, deadline=deadline)
        else:
            client = PinnedSMTP(target, timeout=timeout, local_hostname=local_hostname, deadline=deadline)
        code, banner = client.connect(target.hostname, target.port)
        if code != 220:
            raise smtplib.SMTPConnectError(code, banner)
        client.ehlo()
        if security == Security.STARTTLS:
            if not client.has_extn("starttls"):
                raise SmtpFailure("tls_failed", "The server does not offer STARTTLS; refusing to continue without TLS.")
            if deadline is not None:
                client.sock.settimeout(client.wait_left(timeout))  # Bounds the handshake as a whole.
            client.starttls(context=tls_context())
            client.sock.settimeout(timeout)
            client.ehlo()
        if password:
            encrypted = security in (Security.STARTTLS, Security.TLS)
            if not encrypted and guard.is_public(_ip(client.dialed)):
                raise SmtpFailure("tls_failed", "Refusing to send a password over an unencrypted connection.")
            if not client.has_extn("auth"):
                raise SmtpFailure(
                    "auth_failed",
                    "The server offers no login (AUTH) here: check the host, port and security, or"
                    " connect it without a password.",
                )
            try:
                client.login(username, password)
            except smtplib.SMTPAuthenticationError:
                raise
            except smtplib.SMTPException as exc:
                if type(exc) is not smtplib.SMTPException:  # Its subclasses: a reply, a disconnect.
                    raise
                # "No suitable authentication method found.": the server logs in only by NTLM,
                # GSSAPI or OAuth, none of which smtplib speaks. SMTPException is an OSError,
                # so this was "Could not connect", retried for a message's whole lifetime.
                raise SmtpFailure(
                    "auth_failed",
                    "The server offers no login method 3drake can use (it offers "
                    f"{clean_reply(client.esmtp_features.get('auth', '').strip()) or 'none'}; 3drake logs in"
                    " with PLAIN, LOGIN or CRAM-MD5).",
                ) from exc
            except UnicodeEncodeError as exc:  # smtplib's AUTH carries ASCII only
                raise SmtpFailure(
                    "auth_failed", "The username or password holds a character SMTP login cannot carry (ASCII only)."
                ) from exc
            except binascii.Error as exc:  # smtplib base64-decodes every 334 challenge, unchecked
                raise SmtpFailure(
                    "auth_failed", "The server sent a malformed authentication challenge (not base64)."
                ) from exc
        return client
    except BaseException as exc:
        if client is not None:
            client.close()
        if isinstance(exc, Exception):
            raise _without_password(_classify(exc), username, password) from exc
        raise


_BASE64_RUN = re.compile(r"[A-Za-z0-9+/]{12,}={0,2}")


def _without_password(failure: SmtpFailure, username: str, password: str) -> SmtpFailure:
    """`failure` with the password taken out of its text, in clear and as AUTH PLAIN and LOGIN
    send it (base64, which anyone decodes): a server that loses track of the exchange echoes
    what it read (`500 5.5.1 Command unrecognized: "..."`), and the text is kept (a verify's
    last error, a delivery's). A base64 run that is part of one (cut short by the reply's
    length limit) goes too."""
    if not password:
        return failure
    encoded = [
        base64.b64encode(value.encode("utf-8")).decode("ascii") for value in (password, f"\0{username}\0{password}")
    ]
    text = failure.message.replace(password, "[redacted]")
    for form in encoded:
        # Whole, however short: the runs below must be long to be told from other base64.
        text = text.replace(form.rstrip("="), "[redacted]")
    text = _BASE64_RUN.sub(lambda run: "[redacted]" if any(run[0] in form for form in encoded) else run[0], text)
    if text == failure.message:
        return failure
    return replace(failure, message=text)


def _ip(address: str) -> guard.IPAddress:
    import ipaddress

    return ipaddress.ip_address(address.split("%", 1)[0])


def probe(**connection: object) -> None:
    """Connect, authenticate and say QUIT: raises SmtpFailure if any step fails."""
    client = open_connection(**connection)  # type: ignore[arg-type]
    try:
        client.quit()
    except (smtplib.SMTPException, OSError):
        client.close()
