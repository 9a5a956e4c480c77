"""Reading and writing plain ``KeyValue`` resource attributes as a small ordered map."""

from __future__ import annotations

import hashlib
import math
import struct
from typing import Any, Iterable, List, Optional

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

__all__ = [
    "convert_value",
    "delete",
    "find",
    "get",
    "hash_value",
    "matching_keys",
    "put",
    "set_any_value",
]


def find(attributes: Iterable[KeyValue], key: str) -> Optional[int]:
    for index, attribute in enumerate(attributes):
        if attribute.key == key:
            return index
    return None


def get(attributes: Any, key: str) -> Optional[AnyValue]:
    index = find(attributes, key)
    return None if index is None else attributes[index].value


def set_any_value(target: AnyValue, value: Any) -> None:
    """Store a YAML scalar (or list of scalars) in ``target``."""
    target.Clear()
    if isinstance(value, bool):
        target.bool_value = value
    elif isinstance(value, int):
        target.int_value = value
    elif isinstance(value, float):
        target.double_value = value
    elif isinstance(value, list):
        array = target.array_value
        array.SetInParent()
        for item in value:
            set_any_value(array.values.add(), item)
    else:
        target.string_value = str(value)


def put(attributes: Any, key: str, value: AnyValue) -> None:
    """Insert or overwrite ``key`` with a copy of ``value``."""
    index = find(attributes, key)
    if index is None:
        attributes.add(key=key).value.CopyFrom(value)
    else:
        attributes[index].value.CopyFrom(value)


def delete(attributes: Any, key: str) -> None:
    index = find(attributes, key)
    if index is not None:
        del attributes[index]


def matching_keys(attributes: Iterable[KeyValue], pattern: Any) -> List[str]:
    return [attribute.key for attribute in attributes if pattern.search(attribute.key)]


def hash_value(value: AnyValue) -> None:
    """Replace ``value`` by the hex SHA-256 of its bytes (the Collector's ``hash`` action)."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        raw = value.string_value.encode("utf-8")
    elif kind == "bool_value":
        raw = b"\x01" if value.bool_value else b"\x00"
    elif kind == "int_value":
        raw = struct.pack("<q", value.int_value)
    elif kind == "double_value":
        raw = struct.pack("<d", value.double_value)
    else:
        raw = b""
    digest = hashlib.sha256(raw).hexdigest() if raw else ""
    value.Clear()
    value.string_value = digest


def _format_double(number: float) -> str:
    if math.isfinite(number) and number == int(number) and abs(number) < 1e21:
        return str(int(number))
    return repr(number)


def _converted(kind: Optional[str], current: Any, target: str) -> Any:
    """The converted Python value, or None when the Collector would leave the value as is."""
    if kind is None:
        return None
    if target == "string":
        if kind == "bool_value":
            return "true" if current else "false"
        if kind == "double_value":
            return _format_double(current)
        return str(current) if kind in ("string_value", "int_value") else None
    if kind == "double_value" and not math.isfinite(current) and target == "int":
        return None
    if kind not in ("string_value", "int_value", "bool_value", "double_value"):
        return None
    text = current.strip() if kind == "string_value" else current
    try:
        return int(text) if target == "int" else float(text)
    except ValueError:
        return None


def convert_value(value: AnyValue, target: str) -> None:
    """Convert in place to ``string``, ``int`` or ``double``; leave it alone if impossible."""
    kind = value.WhichOneof("value")
    converted = _converted(kind, getattr(value, kind) if kind else None, target)
    if converted is None:
        return
    value.Clear()
    if target == "string":
        value.string_value = converted
    elif target == "int":
        value.int_value = converted
    else:
        value.double_value = converted
