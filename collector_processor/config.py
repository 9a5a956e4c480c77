"""The service configuration in the OpenTelemetry Collector's dialect: files, overrides, checks."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import yaml

from collector_processor.confparse import ConfigError, Node, join_path
from collector_processor.exporter import config as exporter_config
from collector_processor.extension import config as extension_config
from collector_processor.overrides import (
    apply_set,
    check_shape,
    describe_yaml_error,
    expand_env,
    load_yaml,
    merge,
)
from collector_processor.processor import config as processor_config
from collector_processor.receiver import config as receiver_config

__all__ = [
    "CollectorConfig",
    "ComponentConfig",
    "PipelineConfig",
    "TelemetryConfig",
    "load_config",
    "load_config_files",
    "parse_config",
    "unused_components",
]

Loader = Callable[[Node], Any]

# Canonical type -> loader; aliases map the Collector's older names onto the same component.
RECEIVERS: Dict[str, Loader] = {"otlp": receiver_config.load_config}
PROCESSORS: Dict[str, Loader] = {
    "resource": processor_config.load_resource_config,
    "resourcedetection": processor_config.load_resourcedetection_config,
    "memory_limiter": processor_config.load_memory_limiter_config,
}
EXPORTERS: Dict[str, Loader] = {
    "otlp_grpc": exporter_config.load_otlp_grpc_config,
    "otlp_http": exporter_config.load_otlp_http_config,
    "file": exporter_config.load_file_config,
}
EXTENSIONS: Dict[str, Loader] = {
    "file_storage": extension_config.load_file_storage_config,
    "health_check": extension_config.load_health_check_config,
    "bearertokenauth": extension_config.load_bearertokenauth_config,
}
ALIASES = {"exporters": {"otlp": "otlp_grpc", "otlphttp": "otlp_http"}}
SECTIONS: Dict[str, Dict[str, Loader]] = {
    "receivers": RECEIVERS,
    "processors": PROCESSORS,
    "exporters": EXPORTERS,
    "extensions": EXTENSIONS,
}
LOG_LEVELS = ("debug", "info", "warn", "error")
METRICS_LEVELS = ("none", "basic", "normal", "detailed")
_TYPE = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class ComponentConfig:
    """One configured component: its id (``type/name``), canonical type and settings."""

    id: str
    type: str
    settings: Any


@dataclass(frozen=True)
class PipelineConfig:
    name: str
    receivers: Tuple[str, ...]
    processors: Tuple[str, ...]
    exporters: Tuple[str, ...]


@dataclass(frozen=True)
class TelemetryConfig:
    log_level: str = "info"
    metrics_address: Optional[str] = None
    metrics_level: str = "normal"


@dataclass(frozen=True)
class CollectorConfig:
    receivers: Dict[str, ComponentConfig] = field(default_factory=dict)
    processors: Dict[str, ComponentConfig] = field(default_factory=dict)
    exporters: Dict[str, ComponentConfig] = field(default_factory=dict)
    extensions: Dict[str, ComponentConfig] = field(default_factory=dict)
    service_extensions: Tuple[str, ...] = ()
    pipelines: Tuple[PipelineConfig, ...] = ()
    telemetry: TelemetryConfig = field(default_factory=TelemetryConfig)


def _component_type(section: str, component_id: str) -> str:
    type_name, _, name = component_id.partition("/")
    path = join_path(section, component_id)
    if not _TYPE.match(type_name) or ("/" in component_id and not name):
        raise ConfigError(path, "invalid component id (expected type or type/name)")
    if any(ch.isspace() or ch == '"' for ch in name):
        raise ConfigError(path, "component names must not contain spaces or quotes")
    canonical = ALIASES.get(section, {}).get(type_name, type_name)
    if canonical not in SECTIONS[section]:
        known = ", ".join(sorted(SECTIONS[section]))
        raise ConfigError(path, f'unknown type "{type_name}" (supported: {known})')
    return canonical


def _load_section(root: Node, section: str) -> Dict[str, ComponentConfig]:
    node = root.child(section)
    components: Dict[str, ComponentConfig] = {}
    for component_id in node.raw:
        canonical = _component_type(section, component_id)
        settings = SECTIONS[section][canonical](node.child(component_id))
        components[component_id] = ComponentConfig(component_id, canonical, settings)
    return components


def _id_list(node: Node, key: str, known: Mapping[str, ComponentConfig], kind: str) -> List[str]:
    ids = node.string_list(key, [])
    for index, component_id in enumerate(ids):
        if component_id not in known:
            raise ConfigError(
                join_path(node.key_path(key), str(index)),
                f'references {kind} "{component_id}" which is not configured',
            )
        if ids.index(component_id) != index:
            raise ConfigError(join_path(node.key_path(key), str(index)), f'"{component_id}" twice')
    return ids


def _load_pipelines(node: Node, config: CollectorConfig) -> Tuple[PipelineConfig, ...]:
    pipelines = []
    for name in node.raw:
        signal, _, suffix = name.partition("/")
        if signal != "profiles" or ("/" in name and not suffix):
            raise ConfigError(
                node.key_path(name), "only profiles pipelines (profiles or profiles/name) are run"
            )
        pipe = node.child(name)
        receivers = _id_list(pipe, "receivers", config.receivers, "receiver")
        processors = _id_list(pipe, "processors", config.processors, "processor")
        exporters = _id_list(pipe, "exporters", config.exporters, "exporter")
        pipe.finish()
        if not receivers:
            raise ConfigError(pipe.key_path("receivers"), "at least one receiver is required")
        if not exporters:
            raise ConfigError(pipe.key_path("exporters"), "at least one exporter is required")
        pipelines.append(
            PipelineConfig(name, tuple(receivers), tuple(processors), tuple(exporters))
        )
    if not pipelines:
        raise ConfigError(node.path, "at least one profiles pipeline is required")
    return tuple(pipelines)


def _load_telemetry(node: Node) -> TelemetryConfig:
    logs = node.child("logs")
    level = logs.string("level", "info").lower()
    logs.finish()
    metrics = node.child("metrics")
    address = metrics.optional_string("address")
    metrics_level = metrics.string("level", "normal").lower()
    if metrics.has("readers"):
        raise ConfigError(metrics.key_path("readers"), "not supported: use address: host:port")
    metrics.finish()
    node.finish()
    if level not in LOG_LEVELS:
        raise ConfigError(logs.key_path("level"), f"must be one of {', '.join(LOG_LEVELS)}")
    if metrics_level not in METRICS_LEVELS:
        raise ConfigError(metrics.key_path("level"), f"must be one of {', '.join(METRICS_LEVELS)}")
    if address is not None:
        receiver_config.split_endpoint(address, metrics.key_path("address"))
    if metrics_level == "none":
        address = None
    return TelemetryConfig(log_level=level, metrics_address=address, metrics_level=metrics_level)


def _check_references(config: CollectorConfig) -> None:
    enabled = set(config.service_extensions)
    for exporter in config.exporters.values():
        storage = exporter.settings.sending.queue.storage
        path = join_path("exporters", exporter.id, "sending_queue", "storage")
        if storage is None or not exporter.settings.sending.queue.enabled:
            continue
        if storage not in config.extensions or config.extensions[storage].type != "file_storage":
            raise ConfigError(path, f'"{storage}" is not a configured file_storage extension')
        if storage not in enabled:
            raise ConfigError(path, f'extension "{storage}" is not listed in service::extensions')
    for receiver in config.receivers.values():
        for protocol in ("grpc", "http"):
            server = getattr(receiver.settings, protocol)
            if server is None or server.authenticator is None:
                continue
            path = join_path("receivers", receiver.id, "protocols", protocol, "auth")
            name = server.authenticator
            if name not in config.extensions or config.extensions[name].type != "bearertokenauth":
                raise ConfigError(
                    join_path(path, "authenticator"),
                    f'"{name}" is not a configured bearertokenauth extension',
                )
            if name not in enabled:
                raise ConfigError(
                    join_path(path, "authenticator"),
                    f'extension "{name}" is not listed in service::extensions',
                )


def parse_config(raw: Any) -> CollectorConfig:
    """Build and check the whole configuration from one (merged) mapping."""
    root = Node(raw, "")
    if root.has("connectors"):
        raise ConfigError("connectors", "not supported by otelprof-collector")
    # A misspelt section first: otherwise its components seem missing ("references receiver
    # "otlp" which is not configured") and the typo itself is never named.
    for section in (*SECTIONS, "service"):
        root.get(section)
    root.finish()
    sections = {section: _load_section(root, section) for section in SECTIONS}
    partial = CollectorConfig(
        receivers=sections["receivers"],
        processors=sections["processors"],
        exporters=sections["exporters"],
        extensions=sections["extensions"],
    )
    service = root.child("service")
    if not root.has("service"):
        raise ConfigError("service", "required (with pipelines)")
    service_extensions = _id_list(service, "extensions", partial.extensions, "extension")
    pipelines = _load_pipelines(service.child("pipelines"), partial)
    telemetry = _load_telemetry(service.child("telemetry"))
    service.finish()
    config = CollectorConfig(
        receivers=partial.receivers,
        processors=partial.processors,
        exporters=partial.exporters,
        extensions=partial.extensions,
        service_extensions=tuple(service_extensions),
        pipelines=pipelines,
        telemetry=telemetry,
    )
    _check_references(config)
    return config


def unused_components(config: CollectorConfig) -> List[str]:
    """Warnings, one line each, for components that are configured but never run.

    The Collector ignores them too; they are worth a line because a ``--set`` with a wrong id
    (``exporters::otlp_grpc::...`` for ``otlp_grpc/collector``) makes one silently.
    """
    used = {
        "receivers": {r for pipe in config.pipelines for r in pipe.receivers},
        "processors": {p for pipe in config.pipelines for p in pipe.processors},
        "exporters": {e for pipe in config.pipelines for e in pipe.exporters},
    }
    idle = [
        join_path(section, component_id)
        for section, ids in used.items()
        for component_id in getattr(config, section)
        if component_id not in ids
    ]
    idle_extensions = [
        join_path("extensions", name)
        for name in config.extensions
        if name not in config.service_extensions
    ]
    lines = []
    if idle:
        lines.append(f"not used by any pipeline, so not run: {', '.join(idle)}")
    if idle_extensions:
        lines.append(f"not listed in service::extensions, so not run: {', '.join(idle_extensions)}")
    return lines


def load_config_files(paths: Sequence[str], overrides: Sequence[str] = ()) -> Any:
    """Read, merge (later files win) and override the raw configuration; no checking yet."""
    merged: Dict[str, Any] = {}
    for path in paths:
        try:
            text = Path(path).read_bytes().decode("utf-8")
        except OSError as exc:
            raise ConfigError("", f"cannot read config file {path}: {exc.strerror}") from exc
        except UnicodeDecodeError as exc:
            raise ConfigError("", f"{path}: not UTF-8 text (byte {exc.start})") from None
        try:
            document = load_yaml(text)
        except yaml.YAMLError as exc:
            problem = describe_yaml_error(exc, text)
            raise ConfigError("", f"{path}: invalid YAML at {problem}") from None
        except RecursionError:
            raise ConfigError("", f"{path}: invalid YAML: nested too deeply") from None
        check_shape(document, path)
        if document is None:
            continue
        if not isinstance(document, dict):
            raise ConfigError("", f"{path}: the top level must be a mapping")
        merged = merge(merged, document)
    for override in overrides:
        merged = apply_set(merged, override)
    return expand_env(merged)


def load_config(paths: Sequence[str], overrides: Sequence[str] = ()) -> CollectorConfig:
    return parse_config(load_config_files(paths, overrides))
