"""Loopback OTLP profiles backends (gRPC and HTTP) that record every request they receive."""

from __future__ import annotations

import gzip
import threading
import time
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, List, Optional, Tuple

import grpc
from opentelemetry.proto.collector.profiles.v1development import profiles_service_pb2_grpc
from opentelemetry.proto.collector.profiles.v1development.profiles_service_pb2 import (
    ExportProfilesServiceRequest,
    ExportProfilesServiceResponse,
)

HTTP_PATH = "/v1development/profiles"


class Recorder:
    """Thread-safe list of received requests that tests wait on with a deadline."""

    def __init__(self) -> None:
        self._requests: List[ExportProfilesServiceRequest] = []
        self.metadata: List[Tuple[Tuple[str, str], ...]] = []
        self._changed = threading.Condition()

    def record(self, request: ExportProfilesServiceRequest, metadata: Any = ()) -> None:
        with self._changed:
            self._requests.append(request)
            self.metadata.append(tuple(metadata))
            self._changed.notify_all()

    @property
    def requests(self) -> List[ExportProfilesServiceRequest]:
        with self._changed:
            return list(self._requests)

    def wait_for(
        self,
        done: Callable[[List[ExportProfilesServiceRequest]], bool],
        timeout_seconds: float = 30.0,
    ) -> List[ExportProfilesServiceRequest]:
        """Block until `done(requests)` holds; fail with what arrived when the deadline passes."""
        deadline = time.monotonic() + timeout_seconds
        with self._changed:
            while not done(list(self._requests)):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"backend got {len(self._requests)} request(s) in {timeout_seconds}s, "
                        "not what the test waited for"
                    )
                self._changed.wait(remaining)
            return list(self._requests)

    def wait_for_samples(self, count: int, timeout_seconds: float = 30.0) -> List[Any]:
        """Wait until the requests hold at least `count` samples in all."""

        def enough(requests: List[ExportProfilesServiceRequest]) -> bool:
            return sum(_sample_count(request) for request in requests) >= count

        return self.wait_for(enough, timeout_seconds)


def _sample_count(request: ExportProfilesServiceRequest) -> int:
    return sum(
        len(profile.samples)
        for resource_profiles in request.resource_profiles
        for scope_profiles in resource_profiles.scope_profiles
        for profile in scope_profiles.profiles
    )


class _Servicer(profiles_service_pb2_grpc.ProfilesServiceServicer):
    def __init__(self, recorder: Recorder) -> None:
        self._recorder = recorder

    def Export(
        self, request: ExportProfilesServiceRequest, context: grpc.ServicerContext
    ) -> ExportProfilesServiceResponse:
        self._recorder.record(request, context.invocation_metadata())
        return ExportProfilesServiceResponse()


class GrpcSink(Recorder):
    """An OTLP/gRPC ProfilesService on 127.0.0.1 (port chosen by the kernel)."""

    def __init__(self) -> None:
        super().__init__()
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        profiles_service_pb2_grpc.add_ProfilesServiceServicer_to_server(
            _Servicer(self), self._server
        )
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        self._server.start()

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        self._server.stop(grace=None)


class HttpSink(Recorder):
    """An OTLP/HTTP profiles endpoint (protobuf, optionally gzip) on 127.0.0.1."""

    def __init__(self) -> None:
        super().__init__()
        self.paths: List[str] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                recorder.paths.append(self.path)
                content_type = self.headers.get("Content-Type", "")
                if self.path != HTTP_PATH or content_type != "application/x-protobuf":
                    self.send_error(404 if self.path != HTTP_PATH else 415)
                    return
                recorder.record(ExportProfilesServiceRequest.FromString(body), self.headers.items())
                payload = ExportProfilesServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                """Keep test output quiet."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread: Optional[threading.Thread] = threading.Thread(
            target=self._server.serve_forever, name="interop-http-sink", daemon=True
        )
        self._thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
