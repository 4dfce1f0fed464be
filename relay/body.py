"""Writing a message's body to the server after its 354: bounded by progress, not by size.

A socket's timeout bounds a whole sendall, not each step of it (TLS alike: one SSL_write), so a
body written at once had to be taken within one SMTP_TIMEOUT: a 7 MB attachment (about 9.6 MB
on the wire) needed ~1 MB/s to the provider, or timed out on every attempt and expired. Here
each BODY_CHUNK must go within the timeout, the whole by the delivery's deadline.

Written is not received: the kernel takes up to its send buffer (autotuned to 4 MB on Linux)
at once, and the server may need many timeouts to read that much. The reply to the body is
waited for only once the server has acknowledged every byte (while it keeps taking more), so
that wait measures the server, not the link. That needs Linux's SIOCOUTQ; elsewhere the wait
starts once the kernel has taken the body, as before.
"""

from __future__ import annotations

import contextlib
import select
import smtplib
import socket
import ssl
import struct
import time

from django.conf import settings

try:  # Linux: bytes written to a TCP socket that its peer has not acknowledged yet.
    import fcntl
    import termios

    _SIOCOUTQ: int | None = termios.TIOCOUTQ
except (ImportError, AttributeError):  # pragma: no cover (not Linux)
    _SIOCOUTQ = None

# One write each: the cost of a large body is a write per 64 KiB, and most messages are one.
BODY_CHUNK = 64 * 1024
# How often the acknowledged bytes are looked at while the server reads the rest.
_DRAIN_POLL = 0.05


def write(client: smtplib.SMTP, framed: bytes, deadline: float | None) -> bool:
    """Write the framed body (its final dot included) to `client`'s server.

    Each BODY_CHUNK, and the server's taking of what the kernel holds, must progress within
    the client's timeout; the whole ends by `deadline` (time.monotonic(); without one,
    RELAY_TASK_TIME_LIMIT from now) or one timeout from now if that is later: no body had less
    time before. Past either, TimeoutError (or smtplib's SMTPServerDisconnected, for a failed
    write): the final dot has not reached the server, nothing was delivered.

    Returns False when the server stopped taking it and answered instead (it cannot have the
    final dot: a failure to read that answer is no possible delivery), else True.
    """
    if len(framed) <= BODY_CHUNK:
        client.send(framed)
        return True
    sock, timeout = client.sock, client.timeout
    now = time.monotonic()
    until = max(now + settings.RELAY_TASK_TIME_LIMIT if deadline is None else deadline, now + timeout)
    view = memoryview(framed)
    try:
        for start in range(0, len(view), BODY_CHUNK):
            left = until - time.monotonic()
            if left < timeout:
                if left <= 0:
                    raise TimeoutError("timed out")
                sock.settimeout(left)
            client.send(view[start : start + BODY_CHUNK])
    finally:
        if client.sock is sock:  # smtplib closes it (None) when a write fails.
            sock.settimeout(timeout)
    return _drained(sock, timeout, until)


def _drained(sock: socket.socket, timeout: float, until: float) -> bool:
    """Wait while the server takes what the kernel still holds of the body: True once it has
    all (or if this system cannot tell); TimeoutError past `until`, or once it has taken
    nothing for `timeout`, unless it sent something meanwhile: then False (an early refusal
    is read as the reply; it cannot have had the final dot).

    Something to read does not end the wait by itself: over TLS it may be no reply (a session
    ticket the server sent after the handshake)."""
    held = _unacknowledged(sock)
    progressed = time.monotonic()
    readable = False
    while held:
        now = time.monotonic()
        if now >= until:
            _abort(sock)
            raise TimeoutError("timed out")
        if now - progressed >= timeout:
            if readable or _readable(sock, 0):
                return False
            _abort(sock)
            raise TimeoutError("timed out")
        wait = min(_DRAIN_POLL, until - now, progressed + timeout - now)
        if readable:
            time.sleep(wait)
        else:  # Wakes at once when the reply comes: no added latency for a fast server.
            readable = _readable(sock, wait)
        left = _unacknowledged(sock)
        if left is None or left < held:
            progressed = time.monotonic()
        held = left
    return True


def _abort(sock: socket.socket) -> None:
    """Make the coming close a reset that drops what the kernel still holds of the body. The
    whole body, its final dot included, is in the send queue by now: a plain close goes on
    sending it, so a server that stalled and then caught up would queue a message recorded as
    not delivered (a timeout), and it would go out twice. Reset, the server never reads the dot."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def _readable(sock: socket.socket, wait: float) -> bool:
    if isinstance(sock, ssl.SSLSocket) and sock.pending():
        return True
    return bool(select.select([sock], [], [], wait)[0])


def _unacknowledged(sock: socket.socket) -> int | None:
    if _SIOCOUTQ is None:
        return None
    try:
        (count,) = struct.unpack("i", fcntl.ioctl(sock.fileno(), _SIOCOUTQ, b"\0\0\0\0"))
    except OSError:  # Not a TCP socket on this system (or closed): cannot tell.
        return None
    return count
