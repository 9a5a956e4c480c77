"""Misbehaving loopback TCP endpoints: one that resets every connection, and a slow relay."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from typing import List


class _Listener:
    """Accepts on ``127.0.0.1:0`` in a thread and hands each connection to ``handle``."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._lock = threading.Lock()
        self._sockets: List[socket.socket] = []
        self._threads: List[threading.Thread] = []
        self._closing = False
        self.connections = 0

    def __enter__(self) -> _Listener:
        self._spawn(self._accept_loop)
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._closing = True
            sockets = [self._listener, *self._sockets]
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        for thread in list(self._threads):
            thread.join(10)

    def _spawn(self, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True, name="test-netfault")  # type: ignore[arg-type]
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                if self._closing:
                    client.close()
                    return
                self.connections += 1
                self._sockets.append(client)
            self.handle(client)

    def handle(self, client: socket.socket) -> None:
        raise NotImplementedError


class ResettingEndpoint(_Listener):
    """Reads what the client sends first, then closes with RST ("connection reset by peer")."""

    def handle(self, client: socket.socket) -> None:
        with contextlib.suppress(OSError):
            client.settimeout(2.0)
            client.recv(65536)
        # SO_LINGER with a zero timeout: close() sends RST instead of FIN.
        with contextlib.suppress(OSError):
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()


class SlowRelay(_Listener):
    """Relays to ``target_port``, holding every chunk ``delay_seconds`` each way (a slow link)."""

    def __init__(self, target_port: int, delay_seconds: float) -> None:
        super().__init__()
        self._target_port = target_port
        self._delay = delay_seconds

    def handle(self, client: socket.socket) -> None:
        upstream = socket.create_connection(("127.0.0.1", self._target_port))
        with self._lock:
            self._sockets.append(upstream)
        self._spawn(self._pump, client, upstream)
        self._spawn(self._pump, upstream, client)

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        while True:
            try:
                data = source.recv(65536)
                if not data:
                    break
                time.sleep(self._delay)  # the fault being simulated, not synchronisation
                sink.sendall(data)
            except OSError:
                break
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)
