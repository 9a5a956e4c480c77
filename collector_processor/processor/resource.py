"""The ``resource`` processor: insert, update, upsert, delete, hash, extract and convert
resource attributes, with the semantics of the Collector's resource processor."""

from __future__ import annotations

from typing import Any

from opentelemetry.proto.collector.profiles.v1development.profiles_service_pb2 import (
    ExportProfilesServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from collector_processor.processor import attributes as attrs
from collector_processor.processor.config import AttributeAction, ResourceConfig

__all__ = ["ResourceProcessor", "apply_actions"]


def _source(action: AttributeAction, attributes: Any, constant: Any) -> Any:
    """The value to write: the configured constant, or the from_attribute's current value."""
    if constant is not None:
        return constant
    found = attrs.get(attributes, action.from_attribute)
    if found is None:
        return None
    copy = AnyValue()
    copy.CopyFrom(found)  # detached: the source may move when the map changes
    return copy


def _apply(action: AttributeAction, attributes: Any, constant: Any) -> None:
    kind = action.action
    if kind in ("insert", "update", "upsert"):
        value = _source(action, attributes, constant)
        if value is None:
            return  # from_attribute is absent: nothing to copy
        exists = attrs.find(attributes, action.key) is not None
        if (kind == "insert" and exists) or (kind == "update" and not exists):
            return
        attrs.put(attributes, action.key, value)
    elif kind in ("delete", "hash"):
        keys = [action.key] if action.key else []
        if action.pattern is not None:
            keys += attrs.matching_keys(attributes, action.pattern)
        for key in keys:
            if kind == "delete":
                attrs.delete(attributes, key)
            else:
                value = attrs.get(attributes, key)
                if value is not None:
                    attrs.hash_value(value)
    elif kind == "extract":
        value = attrs.get(attributes, action.key)
        if value is None or value.WhichOneof("value") != "string_value":
            return
        assert action.pattern is not None
        match = action.pattern.search(value.string_value)
        if match is None:
            return
        for name, text in match.groupdict().items():
            attrs.put(attributes, name, AnyValue(string_value=text or ""))
    elif kind == "convert":
        value = attrs.get(attributes, action.key)
        if value is not None:
            attrs.convert_value(value, action.converted_type)


def apply_actions(config: ResourceConfig, attributes: Any, constants: Any) -> None:
    for action, constant in zip(config.attributes, constants):
        _apply(action, attributes, constant)


class ResourceProcessor:
    """Applies the configured actions, in order, to every ResourceProfiles' resource."""

    def __init__(self, processor_id: str, config: ResourceConfig) -> None:
        self.id = processor_id
        self.config = config
        # Constant values become AnyValue once, not per request.
        self._constants = []
        for action in config.attributes:
            constant = None
            if action.value is not None:
                constant = AnyValue()
                attrs.set_any_value(constant, action.value)
            self._constants.append(constant)

    async def start(self) -> None:
        return None

    def process(self, request: ExportProfilesServiceRequest) -> None:
        for resource_profiles in request.resource_profiles:
            apply_actions(self.config, resource_profiles.resource.attributes, self._constants)

    async def shutdown(self) -> None:
        return None
