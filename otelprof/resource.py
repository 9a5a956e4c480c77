"""The Resource profiles are sent under: the application's own when it has an SDK, else detected."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
import uuid
from typing import Any, Dict, Mapping, Optional

from opentelemetry import trace
from opentelemetry.sdk.resources import (
    SERVICE_NAME,
    TELEMETRY_SDK_LANGUAGE,
    TELEMETRY_SDK_NAME,
    TELEMETRY_SDK_VERSION,
    OsResourceDetector,
    OTELResourceDetector,
    ProcessResourceDetector,
    Resource,
)
from opentelemetry.sdk.version import __version__ as sdk_version

from otelprof.model import AttributeValue

_logger = logging.getLogger("otelprof")

# Process attributes worth a series label. The SDK's process detector also reports the full
# command line and arguments, which can hold secrets and would become backend labels.
_PROCESS_KEYS = frozenset(
    {
        "process.pid",
        "process.executable.name",
        "process.runtime.name",
        "process.runtime.version",
    }
)


def application_resource() -> Optional[Resource]:
    """The resource of the application's SDK ``TracerProvider``, if it has one.

    Using it makes traces and profiles agree on ``service.name`` and ``service.instance.id``.
    """
    provider = trace.get_tracer_provider()
    resource = getattr(provider, "resource", None)
    return resource if isinstance(resource, Resource) else None


def detect_resource(
    service_name: Optional[str] = None, attributes: Optional[Mapping[str, str]] = None
) -> Resource:
    """``OTEL_SERVICE_NAME``/``OTEL_RESOURCE_ATTRIBUTES`` plus process, OS and host facts.

    The detectors are called one after the other on the calling thread: the SDK's
    ``Resource.create`` runs them on a thread pool, which deadlocks in a fork child and cannot
    start while the interpreter exits.
    """
    facts: Dict[str, Any] = {
        TELEMETRY_SDK_LANGUAGE: "python",
        TELEMETRY_SDK_NAME: "opentelemetry",
        TELEMETRY_SDK_VERSION: sdk_version,
    }
    for detector in (ProcessResourceDetector(), OsResourceDetector()):
        try:
            detected = detector.detect().attributes
        except Exception:  # a detector failing must not stop profiling
            _logger.debug("otelprof: resource detector %r failed", detector, exc_info=True)
            continue
        facts.update(
            (k, v)
            for k, v in detected.items()
            if not k.startswith("process.") or k in _PROCESS_KEYS
        )
    with contextlib.suppress(OSError):
        facts["host.name"] = socket.gethostname()
    facts.update(process_identity())
    try:  # OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME
        facts.update(OTELResourceDetector().detect().attributes)
    except Exception:
        _logger.warning("otelprof: could not read OTEL_RESOURCE_ATTRIBUTES", exc_info=True)
    facts.update(attributes or {})
    if service_name:
        facts[SERVICE_NAME] = service_name
    if not facts.get(SERVICE_NAME):
        # The SDK's own default, so profiles match traces of an unnamed service.
        facts[SERVICE_NAME] = "unknown_service:" + os.path.basename(sys.executable or "python")
    return Resource(facts)


def process_identity() -> Dict[str, AttributeValue]:
    """What changes in a forked child: its pid and its instance id."""
    return {"process.pid": os.getpid(), "service.instance.id": str(uuid.uuid4())}


def merge_explicit(
    resource: Resource, service_name: Optional[str], attributes: Optional[Mapping[str, str]]
) -> Resource:
    """``resource`` with the profiler's explicit service name and attributes on top."""
    explicit = dict(attributes or {})
    if service_name:
        explicit[SERVICE_NAME] = service_name
    return resource.merge(Resource(explicit)) if explicit else resource
