"""OTLP/gRPC profile exporter: one ``ProfilesService/Export`` call per request, classified."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional, Sequence, Tuple
from urllib.parse import urlparse

import grpc
from opentelemetry.proto.collector.profiles.v1development.profiles_service_pb2_grpc import (
    ProfilesServiceStub,
)

from otelprof import _unpatched
from otelprof.export._common import (
    SHUT_DOWN,
    USER_AGENT,
    TLSFileError,
    check_tls_files,
    read_tls_file,
    response_result,
    truncate,
)
from otelprof.export._grpc_fork import GUARD
from otelprof.export.base import ExportResult, ExportStatus

if TYPE_CHECKING:
    from opentelemetry.proto.collector.profiles.v1development.profiles_service_pb2 import (
        ExportProfilesServiceRequest,
    )

    from otelprof.config import ExporterConfig

# The OpenTelemetry Collector's otlpexporter retries exactly these (otlp.go, shouldRetry);
# RESOURCE_EXHAUSTED only when the server says when to come back (RetryInfo).
RETRYABLE_CODES = frozenset(
    {
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)
STATUS_DETAILS_KEY = "grpc-status-details-bin"  # a google.rpc.Status (what Go servers send)
RETRY_INFO_KEY = "google.rpc.retryinfo-bin"  # a bare RetryInfo (what some Python servers send)
_RETRY_INFO_TYPE = "type.googleapis.com/google.rpc.RetryInfo"

# OTLP servers should accept 64 MiB (OTLP-FACTS); gRPC's client default would refuse answers
# above 4 MiB, which only matters for error details, but keep both directions generous.
_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
_CHANNEL_OPTIONS: Tuple[Tuple[str, Any], ...] = (
    ("grpc.primary_user_agent", USER_AGENT),
    ("grpc.max_send_message_length", _MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", _MAX_MESSAGE_BYTES),
    # Without this, a channel created in a forked child picks up the parent's connection from
    # gRPC's process-wide subchannel pool and fails ("Wrong file descriptor generation").
    ("grpc.use_local_subchannel_pool", 1),
)


class OTLPGrpcProfileExporter:
    """Sends each request with the ``ProfilesService`` stub over one lazily created channel.

    The channel (and the TLS credentials) are created at the first export, so constructing the
    exporter does no I/O and a bad certificate path shows up as a PERMANENT result naming the
    file rather than as an exception. After ``os.fork`` the child must call
    :meth:`reset_after_fork` before exporting: a gRPC channel cannot cross a fork.
    """

    def __init__(
        self,
        config: ExporterConfig,
        channel_options: Sequence[Tuple[str, Any]] = (),
    ) -> None:
        parsed = urlparse(config.endpoint)
        # gRPC wants ``host:port``; the scheme only chose TLS (ExporterConfig.use_tls).
        self._target = parsed.netloc or parsed.path
        self._use_tls = config.use_tls
        self._config = config
        # gRPC metadata keys must be lowercase ASCII. A ``-bin`` key carries bytes (gRPC sends
        # them base64-encoded): the text's UTF-8 here, as the Collector's Go exporter does;
        # a str there fails every export.
        self._metadata = tuple(
            (key.lower(), value.encode() if key.lower().endswith("-bin") else value)
            for key, value in config.headers.items()
        )
        self._compression = (
            grpc.Compression.Gzip
            if config.compression == "gzip"
            else grpc.Compression.NoCompression
        )
        overridden = {name for name, _ in channel_options}
        self._channel_options = tuple(
            option for option in _CHANNEL_OPTIONS if option[0] not in overridden
        ) + tuple(channel_options)
        self._lock = _unpatched.allocate_lock()
        self._channel: Optional[grpc.Channel] = None
        self._stub: Optional[ProfilesServiceStub] = None
        self._shutdown = False

    @property
    def target(self) -> str:
        """The ``host:port`` the channel connects to."""
        return self._target

    def export(self, request: ExportProfilesServiceRequest, timeout_seconds: float) -> ExportResult:
        """Send one request within ``timeout_seconds``; classify the outcome, never raise."""
        if GUARD.unsafe:
            return ExportResult(
                ExportStatus.PERMANENT,
                f"gRPC export to {self._target} skipped: this process was forked while an export"
                " was in flight, and gRPC cannot be used safely after such a fork",
            )
        with GUARD.call():  # no fork while we are inside gRPC (see _grpc_fork)
            return self._export(request, timeout_seconds)

    def _export(self, request: ExportProfilesServiceRequest, timeout: float) -> ExportResult:
        try:
            stub = self._get_stub()
        except TLSFileError as error:
            return ExportResult(ExportStatus.PERMANENT, f"gRPC export to {self._target}: {error}")
        except Exception as error:  # grpc refused the target or the credentials
            return ExportResult(
                ExportStatus.PERMANENT,
                f"gRPC export to {self._target}: cannot create channel: {error}",
            )
        if stub is None:
            return SHUT_DOWN
        try:
            response = stub.Export(
                request,
                timeout=max(timeout, 0.0),
                metadata=self._metadata,
                compression=self._compression,
            )
        except grpc.RpcError as error:
            return classify_rpc_error(error, self._target)
        except Exception as error:  # closed concurrently by shutdown, unserializable request...
            return ExportResult(
                ExportStatus.PERMANENT, f"gRPC export to {self._target} failed: {error!r}"
            )
        return response_result(response)

    def _get_stub(self) -> Optional[ProfilesServiceStub]:
        with self._lock:
            if self._shutdown:
                return None
            if self._stub is None:
                self._channel = self._create_channel()
                # The generated stub module has no type annotations.
                self._stub = ProfilesServiceStub(self._channel)  # type: ignore[no-untyped-call]
            return self._stub

    def _create_channel(self) -> grpc.Channel:
        if not self._use_tls:
            return grpc.insecure_channel(self._target, options=self._channel_options)
        # Read the files ourselves instead of the SDK's _load_credentials: it logs a missing file
        # and silently falls back to the system roots, turning a typo into a handshake failure.
        config = self._config
        check_tls_files(
            config.certificate_file, config.client_certificate_file, config.client_key_file
        )
        credentials = grpc.ssl_channel_credentials(
            root_certificates=read_tls_file("certificate file", config.certificate_file),
            private_key=read_tls_file("client key file", config.client_key_file),
            certificate_chain=read_tls_file(
                "client certificate file", config.client_certificate_file
            ),
        )
        return grpc.secure_channel(self._target, credentials, options=self._channel_options)

    def reset_after_fork(self) -> None:
        """Forget the parent's channel (without closing it: that is the parent's) in a child."""
        # The lock may have been held by a parent thread at fork time: replace it, don't take it.
        self._lock = _unpatched.allocate_lock()
        self._channel = None
        self._stub = None

    def shutdown(self) -> None:
        """Close the channel; later exports return PERMANENT. Safe to call twice."""
        with self._lock:
            self._shutdown = True
            channel, self._channel, self._stub = self._channel, None, None
        if channel is not None:
            channel.close()


def classify_rpc_error(error: object, target: str) -> ExportResult:
    """Map a failed call to RETRYABLE or PERMANENT, with the server's RetryInfo delay if any."""
    if not isinstance(error, grpc.Call):  # every error a stub raises is also a Call
        return ExportResult(ExportStatus.RETRYABLE, f"gRPC export to {target} failed: {error!r}")
    code = error.code()
    details = truncate(error.details() or "")
    delay = retry_delay_seconds(error.trailing_metadata())
    retryable = code in RETRYABLE_CODES or (
        code is grpc.StatusCode.RESOURCE_EXHAUSTED and delay is not None
    )
    status = ExportStatus.RETRYABLE if retryable else ExportStatus.PERMANENT
    message = f"gRPC export to {target} failed: {code.name}"
    if details:
        message += f": {details}"
    return ExportResult(status, message, delay if retryable else None)


def retry_delay_seconds(metadata: Optional[Sequence[Tuple[str, Any]]]) -> Optional[float]:
    """The ``RetryInfo.retry_delay`` in trailing metadata, in seconds; None when absent or bad."""
    from google.protobuf.message import DecodeError
    from google.rpc import error_details_pb2, status_pb2

    info = error_details_pb2.RetryInfo()
    found = False
    for key, value in metadata or ():
        if not isinstance(value, bytes):
            continue
        try:
            if key == STATUS_DETAILS_KEY:
                status = status_pb2.Status.FromString(value)
                for detail in status.details:
                    if detail.type_url == _RETRY_INFO_TYPE:
                        info.ParseFromString(detail.value)
                        found = True
            elif key == RETRY_INFO_KEY:
                info.ParseFromString(value)
                found = True
        except DecodeError:
            continue  # a garbled hint is no hint
    if not found:
        return None
    delay = info.retry_delay.seconds + info.retry_delay.nanos / 1e9
    return max(float(delay), 0.0)
