"""Loopback OTLP profile servers for tests: record what arrives, fail or hang on request."""

from __future__ import annotations

import contextlib
import gzip
import http.server
import socket
import ssl
import struct
import threading
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Union

import grpc
from google.protobuf.duration_pb2 import Duration
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.profiles.v1development import (
    profiles_service_pb2,
    profiles_service_pb2_grpc,
)

ExportRequest = profiles_service_pb2.ExportProfilesServiceRequest
ExportResponse = profiles_service_pb2.ExportProfilesServiceResponse
HTTP_PATH = "/v1development/profiles"
_MAX_MESSAGE_BYTES = 64 * 1024 * 1024


def make_request(service_name: str = "checkout", padding_bytes: int = 0) -> ExportRequest:
    """A small valid request; ``padding_bytes`` adds one very compressible string."""
    request = ExportRequest()
    request.dictionary.string_table.extend(["", "main", "x" * padding_bytes])
    resource_profiles = request.resource_profiles.add()
    attribute = resource_profiles.resource.attributes.add()
    attribute.key = "service.name"
    attribute.value.string_value = service_name
    return request


@dataclass(frozen=True)
class ServerTLS:
    """PEM files for a TLS server; ``client_ca_file`` set = client certificates required."""

    cert_file: str
    key_file: str
    client_ca_file: Optional[str] = None


@dataclass(frozen=True)
class GrpcFailure:
    """One scripted failed call; ``retry_delay_seconds`` adds a RetryInfo the way Go servers do."""

    code: grpc.StatusCode
    message: str = "injected failure"
    retry_delay_seconds: Optional[float] = None


@dataclass(frozen=True)
class HttpFailure:
    """One scripted failed POST: a status (with ``Retry-After``), or ``reset`` the connection."""

    status: int = 503
    retry_after: Optional[str] = None
    body: bytes = b"injected failure"
    content_type: str = "text/plain"
    reset: bool = False


@dataclass
class PartialSuccess:
    rejected_profiles: int
    error_message: str


@dataclass
class _Recorder:
    """State both servers share: what arrived, what to do next, and a condition to wait on."""

    requests: List[ExportRequest] = field(default_factory=list)
    headers: List[Dict[str, str]] = field(default_factory=list)
    attempts: int = 0
    failures: List[Any] = field(default_factory=list)
    partial_success: Optional[PartialSuccess] = None
    hanging: bool = False
    condition: threading.Condition = field(default_factory=threading.Condition)
    release: threading.Event = field(default_factory=threading.Event)

    def begin(self, headers: Dict[str, str]) -> tuple[Any, bool]:
        with self.condition:
            self.attempts += 1
            self.headers.append(headers)
            failure = self.failures.pop(0) if self.failures else None
            self.condition.notify_all()
            return failure, self.hanging

    def accept(self, request: ExportRequest) -> ExportResponse:
        with self.condition:
            self.requests.append(request)
            self.condition.notify_all()
            response = ExportResponse()
            if self.partial_success is not None:
                response.partial_success.rejected_profiles = self.partial_success.rejected_profiles
                response.partial_success.error_message = self.partial_success.error_message
            return response


class _ServerBase:
    """The API both servers offer tests: script failures, hang, wait for arrivals."""

    scheme = "http"

    def __init__(self) -> None:
        self._recorder = _Recorder()
        self.port = 0

    @property
    def requests(self) -> List[ExportRequest]:
        """Requests that were accepted (answered with success), oldest first."""
        with self._recorder.condition:
            return list(self._recorder.requests)

    @property
    def headers(self) -> List[Dict[str, str]]:
        """Headers (gRPC metadata) of every call, failed ones included, lowercased keys."""
        with self._recorder.condition:
            return list(self._recorder.headers)

    @property
    def attempts(self) -> int:
        """Calls that reached the handler, failed and hanging ones included."""
        with self._recorder.condition:
            return self._recorder.attempts

    def set_failures(self, failures: Iterable[Any]) -> None:
        """The next calls fail like this, in order; later calls succeed."""
        with self._recorder.condition:
            self._recorder.failures = list(failures)

    def set_partial_success(self, rejected_profiles: int, error_message: str) -> None:
        with self._recorder.condition:
            self._recorder.partial_success = PartialSuccess(rejected_profiles, error_message)

    def hang(self) -> None:
        """Calls from now on block until :meth:`release` (or stop) instead of answering."""
        with self._recorder.condition:
            self._recorder.hanging = True
            self._recorder.release.clear()

    def release(self) -> None:
        """Let hanging calls go on, and stop hanging."""
        with self._recorder.condition:
            self._recorder.hanging = False
        self._recorder.release.set()

    def wait_for_attempts(self, count: int, timeout_seconds: float = 10.0) -> bool:
        with self._recorder.condition:
            return self._recorder.condition.wait_for(
                lambda: self._recorder.attempts >= count, timeout_seconds
            )

    def wait_for_requests(self, count: int, timeout_seconds: float = 10.0) -> bool:
        with self._recorder.condition:
            return self._recorder.condition.wait_for(
                lambda: len(self._recorder.requests) >= count, timeout_seconds
            )


class RecordingGrpcServer(_ServerBase):
    """An in-process ``ProfilesService`` on ``127.0.0.1:0``; use as a context manager."""

    def __init__(self, tls: Optional[ServerTLS] = None, max_workers: int = 4) -> None:
        super().__init__()
        self._tls = tls
        self.scheme = "https" if tls else "http"
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="test-grpc"),
            options=[("grpc.max_receive_message_length", _MAX_MESSAGE_BYTES)],
        )
        profiles_service_pb2_grpc.add_ProfilesServiceServicer_to_server(
            _Servicer(self._recorder), self._server
        )

    @property
    def endpoint(self) -> str:
        """``http(s)://127.0.0.1:PORT``, as ``ExporterConfig.endpoint`` takes it."""
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def start(self) -> RecordingGrpcServer:
        if self._tls is None:
            self.port = self._server.add_insecure_port("127.0.0.1:0")
        else:
            credentials = grpc.ssl_server_credentials(
                [(_read(self._tls.key_file), _read(self._tls.cert_file))],
                root_certificates=_read(self._tls.client_ca_file)
                if self._tls.client_ca_file
                else None,
                require_client_auth=self._tls.client_ca_file is not None,
            )
            self.port = self._server.add_secure_port("127.0.0.1:0", credentials)
        self._server.start()
        return self

    def stop(self) -> None:
        self.release()
        self._server.stop(grace=None).wait()

    def __enter__(self) -> RecordingGrpcServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Servicer(profiles_service_pb2_grpc.ProfilesServiceServicer):
    def __init__(self, recorder: _Recorder) -> None:
        self._recorder = recorder

    def Export(self, request: ExportRequest, context: grpc.ServicerContext) -> ExportResponse:
        metadata = {key: value for key, value in context.invocation_metadata()}
        failure, hanging = self._recorder.begin(metadata)
        if hanging:
            self._recorder.release.wait()
        if failure is not None:
            _abort(context, failure)
        return self._recorder.accept(request)


def _abort(context: grpc.ServicerContext, failure: GrpcFailure) -> None:
    if failure.retry_delay_seconds is not None:
        # What grpc-go's status.WithDetails sends: a google.rpc.Status in the trailers.
        status = status_pb2.Status(code=failure.code.value[0], message=failure.message)
        delay = Duration()
        delay.FromNanoseconds(int(failure.retry_delay_seconds * 1e9))
        status.details.add().Pack(error_details_pb2.RetryInfo(retry_delay=delay))
        context.set_trailing_metadata((("grpc-status-details-bin", status.SerializeToString()),))
    context.abort(failure.code, failure.message)


class RecordingHttpServer(_ServerBase):
    """An OTLP/HTTP profiles endpoint on ``127.0.0.1:0`` (``http.server`` in a thread)."""

    def __init__(self, tls: Optional[ServerTLS] = None) -> None:
        super().__init__()
        self.scheme = "https" if tls else "http"
        self.raw_bodies: List[bytes] = []  # as received, before any gunzip
        self.errors: List[BaseException] = []  # e.g. failed TLS handshakes
        self._httpd = _HttpServer(self, tls)
        self.port = self._httpd.server_address[1]
        self._thread: Optional[threading.Thread] = None

    @property
    def endpoint(self) -> str:
        """The full profiles URL, as ``ExporterConfig.endpoint`` holds it for HTTP."""
        return f"{self.scheme}://127.0.0.1:{self.port}{HTTP_PATH}"

    def start(self) -> RecordingHttpServer:
        # A short poll interval only makes stop() quick; requests are served as they come.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.02,), name="test-http", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.release()
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
        self._httpd.server_close()

    def __enter__(self) -> RecordingHttpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _HttpServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, owner: RecordingHttpServer, tls: Optional[ServerTLS]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.owner = owner
        self.recorder = owner._recorder
        self.ssl_context: Optional[ssl.SSLContext] = None
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(tls.cert_file, tls.key_file)
            if tls.client_ca_file:
                context.load_verify_locations(tls.client_ca_file)
                context.verify_mode = ssl.CERT_REQUIRED
            self.ssl_context = context

    def get_request(self) -> tuple[Union[socket.socket, ssl.SSLSocket], Any]:
        sock, address = self.socket.accept()
        if self.ssl_context is None:
            return sock, address
        # Handshake later, in the handler thread, so a bad client cannot stall accept().
        wrapped = self.ssl_context.wrap_socket(
            sock, server_side=True, do_handshake_on_connect=False
        )
        return wrapped, address

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        error = sys.exc_info()[1]
        if error is not None:
            self.owner.errors.append(error)


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _HttpServer
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        if isinstance(self.request, ssl.SSLSocket):
            self.request.do_handshake()
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(length)
        headers = {key.lower(): value for key, value in self.headers.items()}
        recorder = self.server.recorder
        with recorder.condition:
            self.server.owner.raw_bodies.append(raw)
        if self.path != HTTP_PATH:
            self._reply(404, b"no such path", "text/plain")
            return
        failure, hanging = recorder.begin(headers)
        if hanging:
            recorder.release.wait()
        if failure is not None:
            self._fail(failure)
            return
        body = gzip.decompress(raw) if headers.get("content-encoding") == "gzip" else raw
        try:
            request = ExportRequest.FromString(body)
        except Exception as error:
            self._reply(400, str(error).encode(), "text/plain")
            return
        response = recorder.accept(request)
        self._reply(200, response.SerializeToString(), "application/x-protobuf")

    def _fail(self, failure: HttpFailure) -> None:
        if failure.reset:
            # SO_LINGER 0: close sends RST, the client sees "connection reset by peer".
            self.request.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.request.close()
            return
        extra = {"Retry-After": failure.retry_after} if failure.retry_after else {}
        self._reply(failure.status, failure.body, failure.content_type, extra)

    def _reply(
        self, status: int, body: bytes, content_type: str, extra: Optional[Dict[str, str]] = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)


def _read(path: str) -> bytes:
    with open(path, "rb") as file:
        return file.read()
