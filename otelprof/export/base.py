"""What every profile exporter promises: send one request, say how it went, never buffer."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional, Protocol

if TYPE_CHECKING:
    from opentelemetry.proto.collector.profiles.v1development.profiles_service_pb2 import (
        ExportProfilesServiceRequest,
    )


class ExportStatus(enum.Enum):
    """How one attempt ended; the processor decides what to do next from this alone."""

    SUCCESS = "success"
    RETRYABLE = "retryable"  # worth sending again later (unavailable, timeout, 429/503, ...)
    PERMANENT = "permanent"  # the request itself is bad or refused for good: drop it


@dataclass(frozen=True)
class ExportResult:
    """The outcome of one export attempt."""

    status: ExportStatus
    message: str = ""
    # A delay the server asked for (gRPC RetryInfo, HTTP Retry-After), in seconds.
    retry_after_seconds: Optional[float] = None

    @property
    def ok(self) -> bool:
        return self.status is ExportStatus.SUCCESS


SUCCESS = ExportResult(ExportStatus.SUCCESS)


class ProfileExporter(Protocol):
    """Sends requests; holds no queue and no thread of its own (the processor owns those)."""

    def export(self, request: ExportProfilesServiceRequest, timeout_seconds: float) -> ExportResult:
        """Send one request, within ``timeout_seconds``; never raise."""
        ...

    def shutdown(self) -> None:
        """Release connections; safe to call twice."""
        ...
