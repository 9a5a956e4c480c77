"""A loopback TCP relay that counts what clients send: proves compression on the wire."""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Any, List


class ByteCountingProxy:
    """A TCP relay that counts the bytes clients send: proves compression on the wire."""

    def __init__(self, target_port: int) -> None:
        self._target_port = target_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._sent_upstream = 0
        self._sockets: List[socket.socket] = []
        self._threads: List[threading.Thread] = []
        self._closing = False

    @property
    def bytes_from_clients(self) -> int:
        with self._lock:
            return self._sent_upstream

    def __enter__(self) -> ByteCountingProxy:
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
            thread.join()

    def _spawn(self, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True, name="test-proxy")
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self._target_port))
            with self._lock:
                if self._closing:
                    client.close()
                    upstream.close()
                    return
                self._sockets += [client, upstream]
            self._spawn(self._pump, client, upstream, True)
            self._spawn(self._pump, upstream, client, False)

    def _pump(self, source: socket.socket, sink: socket.socket, count: bool) -> None:
        while True:
            try:
                data = source.recv(65536)
                if not data:
                    break
                if count:
                    # Counted before forwarding: by the time the server has answered, every
                    # byte it read is in the count.
                    with self._lock:
                        self._sent_upstream += len(data)
                sink.sendall(data)
            except OSError:
                break
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)
