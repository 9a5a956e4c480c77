"""Read what collector_processor's `file` exporter wrote: OTLP JSON, one request per line."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any, Dict, List

from google.protobuf import json_format
from opentelemetry.proto.collector.profiles.v1development.profiles_service_pb2 import (
    ExportProfilesServiceRequest,
)

# OTLP/JSON writes these bytes fields as hex where protobuf's JSON mapping expects base64.
_HEX_ID_KEYS = frozenset({"traceId", "spanId", "profileId"})


def _hex_ids_to_base64(node: Any) -> Any:
    if isinstance(node, dict):
        converted: Dict[str, Any] = {}
        for key, value in node.items():
            if key in _HEX_ID_KEYS and isinstance(value, str):
                converted[key] = base64.b64encode(bytes.fromhex(value)).decode()
            else:
                converted[key] = _hex_ids_to_base64(value)
        return converted
    if isinstance(node, list):
        return [_hex_ids_to_base64(item) for item in node]
    return node


def parse_line(line: str) -> ExportProfilesServiceRequest:
    request = ExportProfilesServiceRequest()
    json_format.ParseDict(_hex_ids_to_base64(json.loads(line)), request)
    return request


def read_requests(path: Path) -> List[ExportProfilesServiceRequest]:
    """Every complete line of the file; a line still being written (no newline yet) waits."""
    if not path.exists():
        return []
    text = path.read_text()
    complete = text[: text.rfind("\n") + 1]
    return [parse_line(line) for line in complete.splitlines() if line.strip()]
