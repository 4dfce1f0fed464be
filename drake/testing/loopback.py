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
