"""A TCP proxy for fault injection: drops connections, delays them, cuts them mid-upload, or
answers HTTP 503, between a backend and a real server."""

from __future__ import annotations

import socket
import threading
import time


class FaultProxy:
    """Forwards 127.0.0.1:``port`` to ``upstream``; faults apply to the next connections.

    ``drop``: close the next N connections at once. ``delay``: hold the next N connections
    for ``delay_seconds`` before forwarding. ``cut``: on the next N connections (-1: all),
    cut both sides after ``cut_after`` bytes from the client. ``unavailable``: answer the
    next N connections ``503 Service Unavailable`` after reading the request head.
    """

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.lock = threading.Lock()
        self.drop = 0
        self.delay = 0
        self.delay_seconds = 0.0
        self.cut = 0
        self.cut_after = 0
        self.unavailable = 0
        self.faults_injected = 0
        self.connections = 0
        self._closed = False
        self._active: set[socket.socket] = set()
        threading.Thread(target=self._accept, daemon=True).start()

    def arm(self, **faults: int | float) -> None:
        """Set fault budgets and close every open connection, so the faults meet the next requests
        (clients keep idle connections in pools)."""
        with self.lock:
            for name, value in faults.items():
                setattr(self, name, value)
            active = list(self._active)
        for side in active:
            try:
                side.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _take(self, name: str) -> bool:
        with self.lock:
            budget = getattr(self, name)
            if budget == 0:
                return False
            if budget > 0:
                setattr(self, name, budget - 1)
            self.faults_injected += 1
            return True

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            with self.lock:
                self._active.add(client)
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        if self._take("drop"):
            client.close()
            return
        if self._take("unavailable"):
            received = b""
            while b"\r\n\r\n" not in received:
                part = client.recv(65536)
                if not part:
                    break
                received += part
            body = b"<Error><Code>ServiceUnavailable</Code><Message>injected</Message></Error>"
            client.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/xml\r\n"
                           b"Connection: close\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
            client.close()
            return
        if self._take("delay"):
            time.sleep(self.delay_seconds)
        limit = self.cut_after if self._take("cut") else None
        try:
            server = socket.create_connection(self.upstream)
        except OSError:
            client.close()
            return
        with self.lock:
            self._active.add(server)
        threading.Thread(target=self._pump, args=(server, client, None), daemon=True).start()
        self._pump(client, server, limit)

    @staticmethod
    def _pump(source: socket.socket, target: socket.socket, limit: int | None) -> None:
        forwarded = 0
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if limit is not None and forwarded + len(data) > limit:
                    target.sendall(data[: max(0, limit - forwarded)])
                    break
                target.sendall(data)
                forwarded += len(data)
        except OSError:
            pass
        for side in (source, target):
            try:
                side.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            side.close()

    def close(self) -> None:
        self._closed = True
        self.listener.close()
