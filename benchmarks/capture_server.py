"""A loopback stand-in for a Pyroscope server: accepts pyroscope-io's uploads and keeps them.

It runs in the harness process, so decoding costs nothing to the profiled process, and it binds
127.0.0.1 on a free port, so the in-process agent under test never reaches the network.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict, List
from urllib.parse import parse_qs, urlparse

from benchmarks.profiles import Samples, read_collapsed_text, read_pprof, read_pyroscope_push


class CaptureServer:
    """Stores decoded samples by application name until :meth:`take` hands them over."""

    def __init__(self) -> None:
        self._samples: Dict[str, Samples] = defaultdict(list)
        self.errors: List[str] = []
        self._lock = threading.Lock()
        capture = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                try:
                    capture._accept(self.path, body)
                except Exception as exc:  # a bad upload is recorded, never fatal to the run
                    capture.errors.append(f"{self.path}: {exc!r}")
                self.send_response(200)
                self.send_header("Content-Type", "application/proto")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="capture-server", daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def __enter__(self) -> CaptureServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _accept(self, path: str, body: bytes) -> None:
        url = urlparse(path)
        if url.path.endswith("/push.v1.PusherService/Push"):
            for labels, samples in read_pyroscope_push(body):
                self._add(labels.get("service_name", ""), samples)
        elif url.path == "/ingest":  # the pre-1.0 API: folded text or pprof
            query = parse_qs(url.query)
            name = query.get("name", [""])[0].split("{", 1)[0]
            fmt = query.get("format", ["folded"])[0]
            self._add(name, read_pprof(body) if fmt == "pprof" else read_collapsed_text(body))
        else:
            raise ValueError("unexpected path")

    def _add(self, app: str, samples: Samples) -> None:
        with self._lock:
            self._samples[app].extend(samples)

    def take(self, app: str) -> Samples:
        """Every sample uploaded for ``app`` so far; forgets them."""
        with self._lock:
            return self._samples.pop(app, [])
