"""The ``otlp_grpc`` exporter: ``ProfilesService/Export`` over a grpc.aio channel."""

from __future__ import annotations

from typing import Any, List, Optional, Tuple

import grpc
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.profiles.v1development.profiles_service_pb2 import (
    ExportProfilesServiceResponse,
)

from collector_processor.errors import PermanentError, RetryableError
from collector_processor.exporter.config import OTLPGrpcExporterConfig
from collector_processor.exporter.partial import log_partial_success
from collector_processor.tlsconfig import read_file

__all__ = ["EXPORT_METHOD", "OTLPGrpcExporter", "classify_rpc_error"]

EXPORT_METHOD = "/opentelemetry.proto.collector.profiles.v1development.ProfilesService/Export"

# As the Collector's otlpexporter: RESOURCE_EXHAUSTED only when the server sent RetryInfo.
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


def _retry_delay_seconds(error: grpc.aio.AioRpcError) -> Optional[float]:
    """The server's requested delay from google.rpc.RetryInfo in the status details, if any."""
    metadata: Any = error.trailing_metadata() or ()
    for key, value in metadata:
        if key != "grpc-status-details-bin" or not isinstance(value, bytes):
            continue
        status = status_pb2.Status()
        try:
            status.ParseFromString(value)
        except Exception:  # a malformed detail is the server's bug, not a reason to crash
            return None
        for detail in status.details:
            info = error_details_pb2.RetryInfo()
            if detail.Is(info.DESCRIPTOR) and detail.Unpack(info):
                return float(info.retry_delay.seconds + info.retry_delay.nanos / 1e9)
    return None


def classify_rpc_error(error: grpc.aio.AioRpcError) -> Exception:
    code = error.code()
    message = f"{code.name}: {error.details()}"
    delay = _retry_delay_seconds(error)
    if code in RETRYABLE_CODES:
        return RetryableError(message, delay)
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED and delay is not None:
        return RetryableError(message, delay)
    return PermanentError(message)


class OTLPGrpcExporter:
    # The call's deadline is the attempt's timeout; DEADLINE_EXCEEDED is retryable.
    enforces_timeout = True

    def __init__(self, exporter_id: str, config: OTLPGrpcExporterConfig) -> None:
        self.id = exporter_id
        self.config = config
        self._channel: Any = None
        self._call: Any = None
        self._metadata: Tuple[Tuple[str, str], ...] = tuple(
            (name.lower(), value) for name, value in config.headers.items()
        )
        self._compression = (
            grpc.Compression.Gzip
            if config.compression == "gzip"
            else grpc.Compression.NoCompression
        )

    def _target(self) -> Tuple[str, bool]:
        endpoint = self.config.endpoint
        scheme, sep, rest = endpoint.partition("://")
        if not sep:
            return endpoint, self.config.tls.insecure
        # An explicit scheme decides, as for the OTLP exporters: http:// is plaintext.
        return rest.rstrip("/"), scheme == "http"

    async def start(self) -> None:
        target, insecure = self._target()
        options: List[Tuple[str, Any]] = [
            ("grpc.max_send_message_length", -1),
            ("grpc.max_receive_message_length", -1),
        ]
        tls = self.config.tls
        if insecure:
            self._channel = grpc.aio.insecure_channel(target, options=options)
        else:
            if tls.server_name_override:
                options.append(("grpc.ssl_target_name_override", tls.server_name_override))
            credentials = grpc.ssl_channel_credentials(
                root_certificates=read_file(tls.ca_file) if tls.ca_file else None,
                private_key=read_file(tls.key_file) if tls.key_file else None,
                certificate_chain=read_file(tls.cert_file) if tls.cert_file else None,
            )
            self._channel = grpc.aio.secure_channel(target, credentials, options=options)
        # Payloads are already serialized (they come from the queue): send the bytes as they are.
        self._call = self._channel.unary_unary(EXPORT_METHOD)

    async def export(self, payload: bytes) -> None:
        try:
            response_bytes = await self._call(
                payload,
                metadata=self._metadata,
                compression=self._compression,
                timeout=self.config.sending.timeout_seconds,
            )
        except grpc.aio.AioRpcError as exc:
            raise classify_rpc_error(exc) from None
        response = ExportProfilesServiceResponse()
        try:
            response.ParseFromString(response_bytes or b"")
        except Exception:
            return  # the request was accepted; an unreadable response changes nothing
        log_partial_success(self.id, response)

    async def shutdown(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None
