"""Configuration of the ``resource``, ``resourcedetection`` and ``memory_limiter`` processors."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Pattern, Tuple

from collector_processor.confparse import ConfigError, Node, join_path

__all__ = [
    "ACTIONS",
    "DETECTORS",
    "AttributeAction",
    "MemoryLimiterConfig",
    "ResourceConfig",
    "ResourceDetectionConfig",
    "default_memory_limiter_config",
    "default_resource_config",
    "default_resourcedetection_config",
    "load_memory_limiter_config",
    "load_resource_config",
    "load_resourcedetection_config",
]

ACTIONS = ("insert", "update", "upsert", "delete", "hash", "extract", "convert")
DETECTORS = ("env", "system", "k8s")
SYSTEM_ATTRIBUTES = ("host.name", "host.id", "os.type", "host.arch")
HOSTNAME_SOURCES = ("os", "dns")
CONVERTED_TYPES = ("string", "int", "double")


@dataclass(frozen=True)
class AttributeAction:
    """One entry of ``attributes:``; ``value`` is a YAML scalar or a list of scalars."""

    action: str
    key: str = ""
    value: Any = None
    from_attribute: str = ""
    pattern: Optional[Pattern[str]] = None
    converted_type: str = ""


@dataclass(frozen=True)
class ResourceConfig:
    """Each action is checked as it is read (its meaning depends on which keys are set)."""

    attributes: Tuple[AttributeAction, ...] = ()

    def validate(self, path: str) -> None:
        if not self.attributes:
            raise ConfigError(join_path(path, "attributes"), "at least one action is required")


@dataclass(frozen=True)
class ResourceDetectionConfig:
    detectors: Tuple[str, ...] = ("env",)
    override: bool = False
    timeout_seconds: float = 5.0
    hostname_sources: Tuple[str, ...] = ("os",)
    system_attributes: Dict[str, bool] = field(
        default_factory=lambda: dict.fromkeys(SYSTEM_ATTRIBUTES, True)
    )

    def validate(self, path: str) -> None:
        for index, name in enumerate(self.detectors):
            if name not in DETECTORS:
                raise ConfigError(
                    join_path(path, "detectors", str(index)),
                    f'unknown detector "{name}" (use {", ".join(DETECTORS)})',
                )
        for index, source in enumerate(self.hostname_sources):
            if source not in HOSTNAME_SOURCES:
                raise ConfigError(
                    join_path(path, "system", "hostname_sources", str(index)),
                    f'unknown source "{source}"',
                )


@dataclass(frozen=True)
class MemoryLimiterConfig:
    check_interval_seconds: float = 0.0
    limit_mib: int = 0
    spike_limit_mib: int = 0
    limit_percentage: int = 0
    spike_limit_percentage: int = 0
    queue_limit_mib: int = 0

    def validate(self, path: str) -> None:
        def key(name: str) -> str:
            return join_path(path, name)

        if self.check_interval_seconds <= 0:
            raise ConfigError(key("check_interval"), "must be > 0")
        if self.limit_mib <= 0 and self.limit_percentage <= 0:
            raise ConfigError(path, "limit_mib or limit_percentage must be > 0")
        if self.limit_mib > 0 and self.limit_percentage > 0:
            raise ConfigError(path, "set only one of limit_mib and limit_percentage")
        if self.limit_mib > 0 and self.spike_limit_mib >= self.limit_mib:
            raise ConfigError(key("spike_limit_mib"), "must be < limit_mib")
        if not 0 <= self.limit_percentage <= 100:
            raise ConfigError(key("limit_percentage"), "must be between 0 and 100")
        if self.limit_percentage and self.spike_limit_percentage >= self.limit_percentage:
            raise ConfigError(key("spike_limit_percentage"), "must be < limit_percentage")
        for name in ("spike_limit_mib", "spike_limit_percentage", "queue_limit_mib"):
            if getattr(self, name) < 0:
                raise ConfigError(key(name), "must be >= 0")


def default_resource_config() -> ResourceConfig:
    return ResourceConfig()


def default_resourcedetection_config() -> ResourceDetectionConfig:
    return ResourceDetectionConfig()


def default_memory_limiter_config() -> MemoryLimiterConfig:
    return MemoryLimiterConfig()


def _scalar_ok(value: Any) -> bool:
    return isinstance(value, (str, bool, int, float))


def _load_action(node: Node) -> AttributeAction:
    action = node.string("action", "").lower()
    key = node.string("key", "")
    value = node.get("value")
    from_attribute = node.string("from_attribute", "")
    pattern_text = node.string("pattern", "")
    converted_type = node.string("converted_type", "")
    if node.has("from_context"):
        raise ConfigError(node.key_path("from_context"), "not supported by otelprof-collector")
    node.finish()
    if action not in ACTIONS:
        raise ConfigError(
            node.key_path("action"), f'unsupported action "{action}" (use {", ".join(ACTIONS)})'
        )
    if value is not None and not (
        _scalar_ok(value) or (isinstance(value, list) and all(_scalar_ok(v) for v in value))
    ):
        raise ConfigError(node.key_path("value"), "must be a scalar or a list of scalars")
    sources = int(value is not None) + int(bool(from_attribute))
    if action in ("delete", "hash") and not key and not pattern_text:
        raise ConfigError(node.key_path("key"), f'"{action}" needs key or pattern')
    if action not in ("delete", "hash") and not key:
        raise ConfigError(node.key_path("key"), "required")
    if action in ("insert", "update", "upsert"):
        if sources == 0:
            raise ConfigError(node.path, f'"{action}" needs value or from_attribute')
        if sources > 1:
            raise ConfigError(node.path, "set only one of value and from_attribute")
    elif sources:
        field_name = "value" if value is not None else "from_attribute"
        raise ConfigError(node.key_path(field_name), f'not used by action "{action}"')
    if pattern_text and action not in ("delete", "hash", "extract"):
        raise ConfigError(node.key_path("pattern"), f'not used by action "{action}"')
    if action == "extract" and not pattern_text:
        raise ConfigError(node.key_path("pattern"), 'required for action "extract"')
    if converted_type and action != "convert":
        raise ConfigError(node.key_path("converted_type"), f'not used by action "{action}"')
    if action == "convert" and converted_type not in CONVERTED_TYPES:
        raise ConfigError(
            node.key_path("converted_type"), f"must be one of {', '.join(CONVERTED_TYPES)}"
        )
    pattern = None
    if pattern_text:
        try:
            pattern = re.compile(pattern_text)
        except re.error as exc:
            raise ConfigError(
                node.key_path("pattern"), f"invalid regular expression: {exc}"
            ) from exc
        if action == "extract" and (
            not pattern.groupindex or pattern.groups != len(pattern.groupindex)
        ):
            raise ConfigError(node.key_path("pattern"), "every group must be named: (?P<key>...)")
    return AttributeAction(
        action=action,
        key=key,
        value=value,
        from_attribute=from_attribute,
        pattern=pattern,
        converted_type=converted_type,
    )


def load_resource_config(node: Node) -> ResourceConfig:
    actions = tuple(_load_action(item) for item in node.node_list("attributes"))
    node.finish()
    config = ResourceConfig(attributes=actions)
    config.validate(node.path)
    return config


def load_resourcedetection_config(node: Node) -> ResourceDetectionConfig:
    defaults = default_resourcedetection_config()
    detectors = node.string_list("detectors", list(defaults.detectors))
    system = node.child("system")
    sources = system.string_list("hostname_sources", list(defaults.hostname_sources))
    enabled = dict(defaults.system_attributes)
    wanted = system.child("resource_attributes")
    for name in wanted.raw:
        if name not in enabled:
            raise ConfigError(wanted.key_path(name), "unknown attribute for the system detector")
        toggle = wanted.child(name)
        enabled[name] = toggle.boolean("enabled", True)
        toggle.finish()
    wanted.finish()
    system.finish()
    config = ResourceDetectionConfig(
        detectors=tuple(detectors),
        override=node.boolean("override", defaults.override),
        timeout_seconds=node.duration("timeout", defaults.timeout_seconds),
        hostname_sources=tuple(sources),
        system_attributes=enabled,
    )
    node.finish()
    config.validate(node.path)
    return config


def load_memory_limiter_config(node: Node) -> MemoryLimiterConfig:
    config = MemoryLimiterConfig(
        check_interval_seconds=node.duration("check_interval", 0.0),
        limit_mib=node.integer("limit_mib", 0),
        spike_limit_mib=node.integer("spike_limit_mib", 0),
        limit_percentage=node.integer("limit_percentage", 0),
        spike_limit_percentage=node.integer("spike_limit_percentage", 0),
        queue_limit_mib=node.integer("queue_limit_mib", 0),
    )
    node.finish()
    config.validate(node.path)
    return config
