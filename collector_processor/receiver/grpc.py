"""OTLP/gRPC: ``ProfilesService/Export`` on a grpc.aio server, raw bytes in and out."""

from __future__ import annotations

import logging
from typing import Any, Optional

import grpc
from google.protobuf import duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from collector_processor.auth import BearerTokenAuth
from collector_processor.receiver.config import MIB, GrpcServerConfig, split_endpoint
from collector_processor.receiver.ingest import Ingest, Outcome, Result
from collector_processor.tlsconfig import read_file

__all__ = ["SERVICE_NAME", "GrpcReceiverServer"]

logger = logging.getLogger(__name__)

SERVICE_NAME = "opentelemetry.proto.collector.profiles.v1development.ProfilesService"


def _retry_details(result: Result) -> bytes:
    """A google.rpc.Status carrying RetryInfo, so clients wait at least that long."""
    seconds = max(int(result.retry_after_seconds), 1)
    status = status_pb2.Status(code=code_pb2.UNAVAILABLE, message=result.message)
    status.details.add().Pack(
        error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=seconds))
    )
    return bytes(status.SerializeToString())


class GrpcReceiverServer:
    def __init__(
        self,
        receiver_id: str,
        config: GrpcServerConfig,
        ingest: Ingest,
        auth: Optional[BearerTokenAuth],
    ) -> None:
        self.receiver_id = receiver_id
        self.config = config
        self.ingest = ingest
        self.auth = auth
        self._server: Any = None
        self.port: Optional[int] = None

    async def start(self) -> None:
        max_bytes = self.config.max_recv_msg_size_mib * MIB
        self._server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", max_bytes),
                ("grpc.max_send_message_length", 4 * MIB),
                # Without this a second service on the same port would share it silently.
                ("grpc.so_reuseport", 0),
            ]
        )
        handler = grpc.method_handlers_generic_handler(
            SERVICE_NAME,
            # No deserializer: we decode ourselves to answer garbage with a precise reason.
            {"Export": grpc.unary_unary_rpc_method_handler(self._export)},
        )
        self._server.add_generic_rpc_handlers((handler,))
        key = f"receivers::{self.receiver_id}::protocols::grpc::endpoint"
        host, port = split_endpoint(self.config.endpoint, key)
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        try:
            if self.config.tls is not None:
                tls = self.config.tls
                credentials = grpc.ssl_server_credentials(
                    [(read_file(tls.key_file), read_file(tls.cert_file))],
                    root_certificates=read_file(tls.client_ca_file) if tls.client_ca_file else None,
                    require_client_auth=tls.client_ca_file is not None,
                )
                self.port = self._server.add_secure_port(address, credentials)
            else:
                self.port = self._server.add_insecure_port(address)
        except RuntimeError as exc:
            raise OSError(f"{key}: cannot listen on {address}: {exc}") from None
        if not self.port:
            raise OSError(f"{key}: cannot listen on {address}")
        await self._server.start()
        logger.info(
            "receiver %s: OTLP/gRPC listening on %s:%d%s",
            self.receiver_id,
            host,
            self.port,
            " (TLS)" if self.config.tls else "",
        )

    async def _export(self, body: bytes, context: Any) -> bytes:
        if self.auth is not None:
            metadata = dict(context.invocation_metadata() or ())
            if not self.auth.authenticate(metadata.get("authorization")):
                self.ingest.refuse(
                    Result(Outcome.UNAUTHENTICATED, "missing or invalid bearer token")
                )
                await context.abort(
                    grpc.StatusCode.UNAUTHENTICATED, "missing or invalid bearer token"
                )
        refusal = self.ingest.admit()
        result = refusal if refusal is not None else await self.ingest.accept_protobuf(body)
        if result.outcome is Outcome.OK:
            return b""  # an empty ExportProfilesServiceResponse: full success
        if result.outcome is Outcome.REFUSED:
            await context.abort(
                grpc.StatusCode.UNAVAILABLE,
                result.message,
                trailing_metadata=(("grpc-status-details-bin", _retry_details(result)),),
            )
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, result.message)
        return b""  # not reached: abort raises

    async def stop(self, grace_seconds: float) -> None:
        if self._server is not None:
            await self._server.stop(grace_seconds)
            self._server = None
