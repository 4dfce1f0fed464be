"""A TCP forwarder on loopback that stands for the network between two peers: it counts what
each side writes (one count per chunk that arrives) and can hold every chunk for a one-way
delay before passing it on, in order, as a link with that latency does. A test can see how
many times a client wrote per message; a benchmark can put a real round trip between a
worker and its SMTP server (each command and each reply crosses it), which a delay in the
server's own replies does not model: commands written together cross it together.
"""

from __future__ import annotations

import contextlib
import queue
import socket
import threading
import time

from drake.testing.smtp import HOST, free_port


class Link:
    def __init__(self, target_port: int, *, delay: float = 0.0) -> None:
        self.target_port = target_port
        self.delay = delay
        self.port = free_port()
        self.client_writes = 0  # Chunks that arrived from clients, all connections together.
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._sockets: list[socket.socket] = []

    def start(self) -> Link:
        listener = socket.create_server((HOST, self.port))
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop accepting, and end the connections still open (each side sees them close)."""
        listener, self._listener = self._listener, None
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in ([listener] if listener else []) + sockets:
            _close(sock)

    def __enter__(self) -> Link:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:  # stop() shut the listener down.
                return
            try:
                server = socket.create_connection((HOST, self.target_port))
            except OSError:  # The far side is down: so is the link, for this connection.
                client.close()
                continue
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._sockets += [client, server]
            ended = threading.Semaphore(0)
            self._pipe(client, server, ended, count=True)
            self._pipe(server, client, ended, count=False)
            threading.Thread(target=self._close_when_ended, args=(client, server, ended), daemon=True).start()

    def _close_when_ended(self, client: socket.socket, server: socket.socket, ended: threading.Semaphore) -> None:
        for _ in range(2):  # Both directions.
            ended.acquire()
        with self._lock:
            self._sockets = [s for s in self._sockets if s is not client and s is not server]
        client.close()
        server.close()

    def _pipe(self, source: socket.socket, sink: socket.socket, ended: threading.Semaphore, *, count: bool) -> None:
        chunks: queue.Queue[tuple[float, bytes]] = queue.Queue()

        def read() -> None:
            while True:
                try:
                    data = source.recv(65536)
                except OSError:
                    data = b""
                if count and data:
                    with self._lock:
                        self.client_writes += 1
                chunks.put((time.monotonic() + self.delay, data))
                if not data:
                    return

        def write() -> None:
            try:
                while True:
                    due, data = chunks.get()
                    wait = due - time.monotonic()
                    if wait > 0:
                        time.sleep(wait)
                    if not data:
                        sink.shutdown(socket.SHUT_WR)
                        return
                    sink.sendall(data)
            except OSError:
                return
            finally:
                ended.release()

        threading.Thread(target=read, daemon=True).start()
        threading.Thread(target=write, daemon=True).start()


def _close(sock: socket.socket) -> None:
    # shutdown() first: close() alone wakes neither an accept() nor a recv() blocked on it.
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
