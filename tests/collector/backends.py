"""Real loopback backends for the collector tests: an OTLP/gRPC and an OTLP/HTTP server that
record what they receive and can fail on purpose, each on its own event loop thread."""

from __future__ import annotations

import asyncio
import gzip
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Coroutine, Dict, List, Optional, Tuple, TypeVar

import grpc
from aiohttp import web
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.profiles.v1development.profiles_service_pb2 import (
    ExportProfilesServiceRequest,
)

from collector_processor import otlp_json

T = TypeVar("T")
SERVICE = "opentelemetry.proto.collector.profiles.v1development.ProfilesService"


def free_port() -> int:
    """A port nobody listens on right now (for a server that starts later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    predicate: Callable[[], bool], timeout: float = 20.0, what: str = "condition"
) -> None:
    """Poll ``predicate`` until true; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


class BackgroundLoop:
    """An asyncio loop on a daemon thread; ``run(coro)`` executes a coroutine there."""

    def __init__(self, name: str = "test-loop") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


@dataclass
class Failure:
    """How to fail one attempt: a gRPC code or an HTTP status, optionally asking for a delay."""

    grpc_code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE
    http_status: int = 503
    message: str = "backend failing on purpose"
    retry_after_seconds: Optional[int] = None


@dataclass
class Recorder:
    """What a backend saw. ``failures`` are consumed one per attempt, then it succeeds."""

    requests: List[ExportProfilesServiceRequest] = field(default_factory=list)
    headers: List[Dict[str, str]] = field(default_factory=list)
    attempts: int = 0
    failures: List[Failure] = field(default_factory=list)
    fail_always: Optional[Failure] = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_failure(self, headers: Dict[str, str]) -> Optional[Failure]:
        with self.lock:
            self.attempts += 1
            self.headers.append(headers)
            if self.fail_always is not None:
                return self.fail_always
            if self.failures:
                return self.failures.pop(0)
            return None

    def record(self, request: ExportProfilesServiceRequest) -> None:
        with self.lock:
            self.requests.append(request)

    def received(self) -> List[ExportProfilesServiceRequest]:
        with self.lock:
            return list(self.requests)

    def wait_for(self, count: int, timeout: float = 20.0) -> List[ExportProfilesServiceRequest]:
        wait_until(lambda: len(self.received()) >= count, timeout, f"{count} request(s)")
        return self.received()


class GrpcBackend:
    """``ProfilesService/Export`` on 127.0.0.1, recording decoded requests and metadata."""

    def __init__(self, loop: BackgroundLoop, port: int = 0) -> None:
        self.loop = loop
        self.recorder = Recorder()
        self.port = port
        self._server: Any = None

    async def _export(self, body: bytes, context: Any) -> bytes:
        metadata = {key: value for key, value in context.invocation_metadata() or ()}
        failure = self.recorder.next_failure(metadata)
        if failure is not None:
            trailing: Tuple[Tuple[str, bytes], ...] = ()
            if failure.retry_after_seconds is not None:
                status = status_pb2.Status(code=failure.grpc_code.value[0], message=failure.message)
                status.details.add().Pack(
                    error_details_pb2.RetryInfo(
                        retry_delay=duration_pb2.Duration(seconds=failure.retry_after_seconds)
                    )
                )
                trailing = (("grpc-status-details-bin", status.SerializeToString()),)
            await context.abort(failure.grpc_code, failure.message, trailing_metadata=trailing)
        self.recorder.record(ExportProfilesServiceRequest.FromString(body))
        return b""

    async def _start(self) -> None:
        self._server = grpc.aio.server()
        handler = grpc.method_handlers_generic_handler(
            SERVICE, {"Export": grpc.unary_unary_rpc_method_handler(self._export)}
        )
        self._server.add_generic_rpc_handlers((handler,))
        self.port = self._server.add_insecure_port(f"127.0.0.1:{self.port}")
        await self._server.start()

    def start(self) -> GrpcBackend:
        self.loop.run(self._start())
        return self

    def stop(self) -> None:
        if self._server is not None:
            self.loop.run(self._server.stop(None))
            self._server = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"


class HttpBackend:
    """``POST /v1development/profiles`` on 127.0.0.1 (protobuf or JSON, gzip), recording."""

    def __init__(self, loop: BackgroundLoop, port: int = 0) -> None:
        self.loop = loop
        self.recorder = Recorder()
        self.port = port
        self.content_types: List[str] = []
        self._runner: Optional[web.AppRunner] = None

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        failure = self.recorder.next_failure(dict(request.headers))
        if failure is not None:
            headers = {}
            if failure.retry_after_seconds is not None:
                headers["Retry-After"] = str(failure.retry_after_seconds)
            return web.Response(status=failure.http_status, text=failure.message, headers=headers)
        self.content_types.append(request.content_type)
        if request.content_type == "application/json":
            self.recorder.record(otlp_json.loads(body))
            return web.Response(body=b"{}", content_type="application/json")
        self.recorder.record(ExportProfilesServiceRequest.FromString(body))
        return web.Response(body=b"", content_type="application/x-protobuf")

    async def _start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1development/profiles", self._handle)
        # The exporter's gzip is undone in the handler, to see what was really sent.
        # A stop is an outage, not a graceful drain: requests still in flight are cut after
        # 1 s (aiohttp waits 60 s by default, past the 30 s the test waits for the stop).
        self._runner = web.AppRunner(
            app, auto_decompress=False, access_log=None, shutdown_timeout=1.0
        )
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        self.port = int(self._runner.addresses[0][1])

    def start(self) -> HttpBackend:
        self.loop.run(self._start())
        return self

    def stop(self) -> None:
        if self._runner is not None:
            self.loop.run(self._runner.cleanup())
            self._runner = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"
