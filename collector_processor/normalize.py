"""Resource and scope attributes in plain form: string-table references resolved on arrival.

Profiles may carry a ``KeyValue`` as ``key_strindex`` and a string value as
``string_value_strindex`` (references into the dictionary's string table); the Collector's
exporters send resource attributes that way. The processors, the Collector's own processors
and Pyroscope read plain ``key``/``string_value`` only, so every resource and scope attribute is
rewritten to the plain form before the processors run. Attributes inside the dictionary
(``attribute_table``) keep their references: that is their designed form.
"""

from __future__ import annotations

from typing import Any, Sequence

from opentelemetry.proto.collector.profiles.v1development.profiles_service_pb2 import (
    ExportProfilesServiceRequest,
)

__all__ = ["resolve_string_references"]


def _resolve_value(value: Any, strings: Sequence[str]) -> None:
    kind = value.WhichOneof("value")
    if kind == "string_value_strindex":
        value.string_value = strings[value.string_value_strindex]
    elif kind == "array_value":
        for item in value.array_value.values:
            _resolve_value(item, strings)
    elif kind == "kvlist_value":
        _resolve_attributes(value.kvlist_value.values, strings)


def _resolve_attributes(attributes: Any, strings: Sequence[str]) -> None:
    for attribute in attributes:
        if attribute.key_strindex:
            if not attribute.key:  # a plain key wins over a reference (it MUST NOT be both)
                attribute.key = strings[attribute.key_strindex]
            attribute.key_strindex = 0
        _resolve_value(attribute.value, strings)


def resolve_string_references(request: ExportProfilesServiceRequest) -> None:
    """Rewrite resource and scope attributes in place; indices were validated before."""
    strings = request.dictionary.string_table
    for resource_profiles in request.resource_profiles:
        _resolve_attributes(resource_profiles.resource.attributes, strings)
        for scope_profiles in resource_profiles.scope_profiles:
            _resolve_attributes(scope_profiles.scope.attributes, strings)
