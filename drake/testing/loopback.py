"""A loopback TCP server for one connection, scripted by the test: servers that misbehave in
ways a real one (aiosmtpd, drake.testing.smtp) will not be made to."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from typing import BinaryIO


@contextlib.contextmanager
def one_connection(serve: Callable[[socket.socket, BinaryIO], None]) -> Iterator[int]:
    """Accept one connection on 127.0.0.1 and run `serve(conn, reader)` on it in a thread; yields
    the port. A connection the serving side drops (OSError) ends it quietly."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def accept() -> None:
        try:
            conn, _ = listener.accept()
        except OSError:  # Closed before anyone connected.
            return
        with conn, contextlib.suppress(OSError):
            serve(conn, conn.makefile("rb"))

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()


def smtp_dialogue(
    conn: socket.socket,
    reader: BinaryIO,
    answer: Callable[[bytes], bytes | None] = lambda command: None,
    *,
    ehlo: bytes = b"250-hi\r\n250 AUTH PLAIN\r\n",
) -> None:
    """Speak SMTP on `conn` as a scripted server (for `one_connection`): a 220, then to each
    command what `answer(command)` returns (its first four letters, upper case), or by default
    `ehlo` to EHLO, 235 to AUTH, 221 to QUIT (which ends it) and 250 to the rest. An `answer` for
    DATA writes its 354 and reads the body from `reader` itself, and returns the reply to it."""
    conn.sendall(b"220 ready\r\n")
    while line := reader.readline():
        command = line[:4].upper()
        reply = answer(command)
        if reply is None:
            defaults = {b"EHLO": ehlo, b"AUTH": b"235 2.7.0 ok\r\n", b"QUIT": b"221 bye\r\n"}
            reply = defaults.get(command, b"250 ok\r\n")
        conn.sendall(reply)
        if command == b"QUIT":
            return
