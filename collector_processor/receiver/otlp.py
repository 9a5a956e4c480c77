"""The ``otlp`` receiver component: starts its gRPC and HTTP servers, stops them first."""

from __future__ import annotations

from typing import Mapping, Optional

from collector_processor.auth import BearerTokenAuth
from collector_processor.pipeline import Fanout
from collector_processor.receiver.config import OTLPReceiverConfig
from collector_processor.receiver.grpc import GrpcReceiverServer
from collector_processor.receiver.http import HttpReceiverServer
from collector_processor.receiver.ingest import Ingest
from collector_processor.telemetry import Metrics

__all__ = ["OTLPReceiver"]


class OTLPReceiver:
    def __init__(
        self,
        receiver_id: str,
        config: OTLPReceiverConfig,
        consumer: Fanout,
        metrics: Metrics,
        authenticators: Mapping[str, BearerTokenAuth],
    ) -> None:
        self.id = receiver_id
        self.grpc: Optional[GrpcReceiverServer] = None
        self.http: Optional[HttpReceiverServer] = None
        if config.grpc is not None:
            auth = authenticators[config.grpc.authenticator] if config.grpc.authenticator else None
            ingest = Ingest(receiver_id, "grpc", consumer, metrics)
            self.grpc = GrpcReceiverServer(receiver_id, config.grpc, ingest, auth)
        if config.http is not None:
            auth = authenticators[config.http.authenticator] if config.http.authenticator else None
            ingest = Ingest(receiver_id, "http", consumer, metrics)
            self.http = HttpReceiverServer(receiver_id, config.http, ingest, auth)

    async def start(self) -> None:
        if self.grpc is not None:
            await self.grpc.start()
        if self.http is not None:
            await self.http.start()

    async def shutdown(self, grace_seconds: float) -> None:
        """Stop accepting; requests in flight get ``grace_seconds`` to finish."""
        if self.grpc is not None:
            await self.grpc.stop(grace_seconds)
        if self.http is not None:
            await self.http.stop(grace_seconds)
