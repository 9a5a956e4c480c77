"""The ``resourcedetection`` processor: attributes of where the service runs, added to resources.

Detectors run once at start, in the configured order; when two detectors find the same key the
first one wins (as in the Collector). An attribute the agent already set is kept unless
``override: true``.

- ``env``: ``OTEL_RESOURCE_ATTRIBUTES`` (``key=value,key2=value2``, values percent-decoded).
- ``system``: ``host.name`` (``hostname_sources``: ``os`` = gethostname, ``dns`` = FQDN),
  ``host.id`` (``/etc/machine-id``), ``os.type`` and ``host.arch`` (semantic-convention values).
- ``k8s``: the Kubernetes downward-API variables listed in :data:`K8S_VARIABLES`.
"""

from __future__ import annotations

import logging
import os
import platform
import socket
from pathlib import Path
from typing import Callable, Dict, Mapping, Optional, Sequence

from opentelemetry.proto.collector.profiles.v1development.profiles_service_pb2 import (
    ExportProfilesServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from collector_processor.processor import attributes as attrs
from collector_processor.processor.config import ResourceDetectionConfig

__all__ = [
    "K8S_VARIABLES",
    "ResourceDetectionProcessor",
    "detect_env",
    "detect_k8s",
    "detect_system",
]

logger = logging.getLogger(__name__)

K8S_VARIABLES = {
    "K8S_POD_NAME": "k8s.pod.name",
    "K8S_POD_UID": "k8s.pod.uid",
    "K8S_NAMESPACE_NAME": "k8s.namespace.name",
    "K8S_NODE_NAME": "k8s.node.name",
    "K8S_CONTAINER_NAME": "k8s.container.name",
    "K8S_DEPLOYMENT_NAME": "k8s.deployment.name",
    "K8S_CLUSTER_NAME": "k8s.cluster.name",
}
MACHINE_ID_FILES = ("/etc/machine-id", "/var/lib/dbus/machine-id")
# platform.machine() -> semantic conventions' host.arch.
ARCH = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "armv7l": "arm32",
    "armv6l": "arm32",
    "i386": "x86",
    "i686": "x86",
    "ppc64le": "ppc64",
    "ppc64": "ppc64",
    "s390x": "s390x",
}


def detect_env(environ: Mapping[str, str]) -> Dict[str, str]:
    """``OTEL_RESOURCE_ATTRIBUTES`` as the SDKs read it; a malformed entry is skipped with a log."""
    from urllib.parse import unquote

    detected: Dict[str, str] = {}
    for entry in environ.get("OTEL_RESOURCE_ATTRIBUTES", "").split(","):
        if not entry.strip():
            continue
        key, sep, value = entry.partition("=")
        if not sep or not key.strip():
            logger.warning("resourcedetection: ignoring malformed OTEL_RESOURCE_ATTRIBUTES entry")
            continue
        detected[key.strip()] = unquote(value.strip())
    return detected


def _machine_id(read: Callable[[str], Optional[str]]) -> Optional[str]:
    for path in MACHINE_ID_FILES:
        text = read(path)
        if text and text.strip():
            return text.strip()
    return None


def _read_text(path: str) -> Optional[str]:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError:
        return None


def detect_system(
    config: ResourceDetectionConfig,
    *,
    hostname: Callable[[], str] = socket.gethostname,
    fqdn: Callable[[], str] = socket.getfqdn,
    read: Callable[[str], Optional[str]] = _read_text,
    system: Callable[[], str] = platform.system,
    machine: Callable[[], str] = platform.machine,
) -> Dict[str, str]:
    found: Dict[str, Optional[str]] = {}
    for source in config.hostname_sources:  # the first source that answers wins
        name = fqdn() if source == "dns" else hostname()
        if name:
            found["host.name"] = name
            break
    found["host.id"] = _machine_id(read)
    found["os.type"] = system().lower() or None
    arch = machine().lower()
    found["host.arch"] = ARCH.get(arch, arch) or None
    return {
        key: value
        for key, value in found.items()
        if value and config.system_attributes.get(key, False)
    }


def detect_k8s(environ: Mapping[str, str]) -> Dict[str, str]:
    return {attr: environ[var] for var, attr in K8S_VARIABLES.items() if environ.get(var)}


def detect(config: ResourceDetectionConfig, environ: Mapping[str, str]) -> Dict[str, str]:
    detected: Dict[str, str] = {}
    for detector in config.detectors:
        if detector == "env":
            found = detect_env(environ)
        elif detector == "system":
            found = detect_system(config)
        else:
            found = detect_k8s(environ)
        for key, value in found.items():
            detected.setdefault(key, value)
    return detected


class ResourceDetectionProcessor:
    def __init__(
        self,
        processor_id: str,
        config: ResourceDetectionConfig,
        detected: Optional[Mapping[str, str]] = None,
    ) -> None:
        self.id = processor_id
        self.config = config
        self._preset = detected
        self._values: Sequence[tuple[str, AnyValue]] = ()

    async def start(self) -> None:
        detected = self._preset if self._preset is not None else detect(self.config, os.environ)
        self._values = [(key, AnyValue(string_value=value)) for key, value in detected.items()]
        logger.info(
            "resourcedetection %s: detected %s", self.id, ", ".join(sorted(detected)) or "nothing"
        )

    def process(self, request: ExportProfilesServiceRequest) -> None:
        for resource_profiles in request.resource_profiles:
            attributes = resource_profiles.resource.attributes
            for key, value in self._values:
                if self.config.override or attrs.find(attributes, key) is None:
                    attrs.put(attributes, key, value)

    async def shutdown(self) -> None:
        return None
