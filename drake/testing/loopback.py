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


@contextlib.contextmanager
def silent_server() -> Iterator[tuple[int, list[socket.socket]]]:
    """A hung peer on 127.0.0.1: it accepts every connection and never answers. Yields its port
    and the list of connections accepted so far (how many tries a client made)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.1)
    accepted: list[socket.socket] = []
    done = threading.Event()

    def accept() -> None:
        while not done.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], accepted
    finally:
        done.set()
        thread.join()
        listener.close()
        for conn in accepted:
            conn.close()
