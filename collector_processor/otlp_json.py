"""OTLP/JSON for profiles requests: protobuf JSON mapping with ids as hex, as the OTLP spec says.

``google.protobuf.json_format`` writes ``bytes`` fields as base64, but OTLP/JSON writes trace,
span and profile ids as lowercase hex. :func:`dumps` writes hex; :func:`loads` accepts both
(the lengths tell them apart: 16 id bytes are 32 hex characters but 24 base64 characters).
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any, Callable, Dict, Union

from google.protobuf import json_format
from opentelemetry.proto.collector.profiles.v1development.profiles_service_pb2 import (
    ExportProfilesServiceRequest,
)

from collector_processor.errors import InvalidRequestError

__all__ = ["dumps", "loads"]

# (container key, id key, id length in bytes); both JSON spellings of each key are accepted.
_LINK_IDS = (("traceId", "trace_id", 16), ("spanId", "span_id", 8))
_PROFILE_ID = ("profileId", "profile_id", 16)

Convert = Callable[[str, int, str], str]


def _field(obj: Dict[str, Any], camel: str, snake: str) -> Any:
    return obj.get(camel, obj.get(snake))


def _walk_ids(document: Dict[str, Any], convert: Convert) -> None:
    dictionary = _field(document, "dictionary", "dictionary")
    if isinstance(dictionary, dict):
        links = _field(dictionary, "linkTable", "link_table")
        for index, link in enumerate(links if isinstance(links, list) else []):
            if isinstance(link, dict):
                for camel, snake, size in _LINK_IDS:
                    _convert_key(
                        link, camel, snake, size, f"dictionary.link_table[{index}]", convert
                    )
    resources = _field(document, "resourceProfiles", "resource_profiles")
    for r_index, resource in enumerate(resources if isinstance(resources, list) else []):
        scopes = (
            _field(resource, "scopeProfiles", "scope_profiles")
            if isinstance(resource, dict)
            else None
        )
        for s_index, scope in enumerate(scopes if isinstance(scopes, list) else []):
            profiles = _field(scope, "profiles", "profiles") if isinstance(scope, dict) else None
            for p_index, profile in enumerate(profiles if isinstance(profiles, list) else []):
                if isinstance(profile, dict):
                    where = f"resource_profiles[{r_index}].scope_profiles[{s_index}]"
                    where += f".profiles[{p_index}]"
                    camel, snake, size = _PROFILE_ID
                    _convert_key(profile, camel, snake, size, where, convert)


def _convert_key(
    obj: Dict[str, Any], camel: str, snake: str, size: int, where: str, convert: Convert
) -> None:
    for key in (camel, snake):
        value = obj.get(key)
        if isinstance(value, str) and value:
            obj[key] = convert(value, size, f"{where}.{snake}")


def _hex_to_base64(value: str, size: int, where: str) -> str:
    if len(value) != 2 * size:
        return value  # not hex of the right length: leave it to the base64 reader
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        return value
    return base64.b64encode(raw).decode("ascii")


def _base64_to_hex(value: str, size: int, where: str) -> str:
    # json_format always writes valid base64 here.
    return base64.b64decode(value).hex()


def dumps(request: ExportProfilesServiceRequest) -> str:
    """One line of OTLP JSON (no newline) for ``request``."""
    document = json_format.MessageToDict(request, use_integers_for_enums=True)
    _walk_ids(document, _base64_to_hex)
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False)


def loads(text: Union[str, bytes]) -> ExportProfilesServiceRequest:
    """Parse OTLP JSON; unknown fields are ignored (OTLP asks receivers to tolerate them)."""
    try:
        document = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequestError(f"invalid JSON: {exc}") from exc
    except RecursionError:
        raise InvalidRequestError("invalid JSON: nested too deeply") from None
    if not isinstance(document, dict):
        raise InvalidRequestError("invalid OTLP JSON: the top level must be an object")
    _walk_ids(document, _hex_to_base64)
    request = ExportProfilesServiceRequest()
    try:
        json_format.ParseDict(document, request, ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError) as exc:
        raise InvalidRequestError(f"invalid OTLP JSON{_describe(str(exc))}") from None
    except RecursionError:
        raise InvalidRequestError("invalid OTLP JSON: nested too deeply") from None
    return request


# json_format's messages quote the offending value; the request's content must never reach an
# answer or a log, so only the field path (schema names and indices) and a reason class are kept.
_FIELD_CHAIN = re.compile(r"Failed to parse ([A-Za-z0-9_]+) field")
_AT_PATH = re.compile(r" at ExportProfilesServiceRequest\.([A-Za-z0-9_.\[\]]{1,300})")
_REASONS = (
    ("invalid literal for int", "not an integer"),
    ("Couldn't parse integer", "not an integer"),
    ("int() argument", "not an integer"),
    ("out of range", "integer out of range"),
    ("Couldn't parse float", "not a number"),
    ("true or false", "not true or false"),
    ("repeated field", "not a list"),
    ("string or bytes-like", "not a string"),
    ("Unpaired surrogate", "an unpaired surrogate in a string"),
    ("base64", "not valid base64"),
    ("padding", "not valid base64"),
    ("enum", "not a valid enum value"),
)


def _describe(message: str) -> str:
    """``": <path>: <reason>"`` for a json_format error, without any of the request's values."""
    found = _AT_PATH.search(message)
    path = found.group(1).rstrip(".") if found else ".".join(_FIELD_CHAIN.findall(message))
    reason = next((text for key, text in _REASONS if key in message), "wrong type or value")
    return f": {path}: {reason}" if path else f": {reason}"
