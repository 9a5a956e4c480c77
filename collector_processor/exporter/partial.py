"""Reporting an OTLP partial success: the backend took the request but rejected some profiles."""

from __future__ import annotations

import logging

from opentelemetry.proto.collector.profiles.v1development.profiles_service_pb2 import (
    ExportProfilesServiceResponse,
)

__all__ = ["log_partial_success"]

logger = logging.getLogger(__name__)


def log_partial_success(exporter_id: str, response: ExportProfilesServiceResponse) -> None:
    """Log once per response; as in the Collector, a partial success is not retried."""
    partial = response.partial_success
    if partial.rejected_profiles or partial.error_message:
        logger.warning(
            'exporter "%s": backend rejected %d profile(s): %s',
            exporter_id,
            partial.rejected_profiles,
            partial.error_message[:500],
        )
