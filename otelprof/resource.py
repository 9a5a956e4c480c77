"""The Resource profiles are sent under: the application's own when it has an SDK, else detected."""

from __future__ import annotations

import logging
from typing import Mapping, Optional

from opentelemetry import trace
from opentelemetry.sdk.resources import (
    SERVICE_NAME,
    OsResourceDetector,
    ProcessResourceDetector,
    Resource,
    ServiceInstanceIdResourceDetector,
    get_aggregated_resources,
)

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
    """``OTEL_SERVICE_NAME``/``OTEL_RESOURCE_ATTRIBUTES`` plus process, OS and host facts."""
    try:
        detected = get_aggregated_resources(
            [ProcessResourceDetector(), OsResourceDetector(), ServiceInstanceIdResourceDetector()]
        )
        facts = {
            k: v
            for k, v in detected.attributes.items()
            if not k.startswith("process.") or k in _PROCESS_KEYS
        }
    except Exception:  # a detector failing must not stop profiling
        _logger.debug("otelprof: resource detection failed", exc_info=True)
        facts = {}
    try:
        import socket

        facts.setdefault("host.name", socket.gethostname())
    except OSError:
        pass
    explicit = dict(attributes or {})
    if service_name:
        explicit[SERVICE_NAME] = service_name
    # Resource.create reads OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES; explicit values win.
    return Resource(facts).merge(Resource.create(explicit))


def resolve_resource(
    service_name: Optional[str] = None, attributes: Optional[Mapping[str, str]] = None
) -> Resource:
    """The application's resource when there is one (explicit settings still win), else detected."""
    app = application_resource()
    if app is None:
        return detect_resource(service_name, attributes)
    explicit = dict(attributes or {})
    if service_name:
        explicit[SERVICE_NAME] = service_name
    return app.merge(Resource(explicit)) if explicit else app
