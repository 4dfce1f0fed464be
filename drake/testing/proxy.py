"""A TCP forwarder on loopback that stands for the network between two peers: it counts what
each side writes (one count per chunk that arrives) and can hold every chunk for a one-way
delay before passing it on, in order, as a link with that latency does. A test can see how
many times a client wrote per message; a benchmark can put a real round trip between a
worker and its SMTP server (each command and each reply crosses it), which a delay in the
server's own replies does not model: commands written together cross it together.
"""

from __future__ import annotations

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
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            sock.close()

    def __enter__(self) -> Link:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
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
            self._pipe(client, server, count=True)
            self._pipe(server, client, count=False)

    def _pipe(self, source: socket.socket, sink: socket.socket, *, count: bool) -> None:
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
            while True:
                due, data = chunks.get()
                wait = due - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                try:
                    if not data:
                        sink.shutdown(socket.SHUT_WR)
                        return
                    sink.sendall(data)
                except OSError:
                    return

        threading.Thread(target=read, daemon=True).start()
        threading.Thread(target=write, daemon=True).start()
