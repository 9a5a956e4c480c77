"""The processor contract: transform or refuse a request in place, in pipeline order."""

from __future__ import annotations

from typing import Protocol

from opentelemetry.proto.collector.profiles.v1development.profiles_service_pb2 import (
    ExportProfilesServiceRequest,
)

__all__ = ["Processor"]


class Processor(Protocol):
    """``process`` runs on the event loop: it must be quick and must not block."""

    async def start(self) -> None: ...

    def process(self, request: ExportProfilesServiceRequest) -> None:
        """Change ``request`` in place, or raise RefusedError to turn it away (retryable).

        Protobuf requests arrive as a wireviews head: the same ``resource_profiles[].resource``,
        ``.scope_profiles[].scope`` and ``dictionary.string_table``, with profiles and the
        other dictionary tables as bytes. Processors touch resources and scopes only."""

    async def shutdown(self) -> None: ...
