"""Read OTLP profile files (``.otlp.pb`` and the Collector's JSON lines) into flat frozen records.

A file that cannot be read, or a request in it that breaks the format (see
:mod:`otelprof.decode`), becomes a :class:`ProfileFileError` naming the file and the problem,
while the other requests and files still load. The records and the filters over them live in
:mod:`otelprof.records`.
"""

from __future__ import annotations

import base64
import gzip
import json
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, List, Tuple, Union

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.profiles.v1development.profiles_service_pb2 import (
    ExportProfilesServiceRequest,
)

from otelprof.decode import ProfileFileError, decode_request
from otelprof.records import SPAN_ID_BYTES, TRACE_ID_BYTES, ProfileRecord, is_hex_id

# ProfileFileError and decode_request are re-exported: one import serves a reader of files.
__all__ = [
    "PROFILE_FILE_SUFFIXES",
    "LoadResult",
    "ProfileFileError",
    "decode_request",
    "find_profile_files",
    "load_profiles",
    "read_file",
]

PROFILE_FILE_SUFFIXES = (".pb", ".json", ".jsonl", ".ndjson")
"""Names picked up when a directory is searched (each also with ``.gz``)."""

_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


@dataclass(frozen=True)
class LoadResult:
    """What :func:`load_profiles` found: the records, the files read, and every problem."""

    records: Tuple[ProfileRecord, ...]
    files: Tuple[Path, ...]
    errors: Tuple[ProfileFileError, ...]


def _hex_ids_to_base64(document: Any) -> None:
    """OTLP JSON writes trace, span and profile ids as hex; protobuf's JSON mapping wants base64."""

    def fix(obj: Any, keys: Tuple[str, str], size: int) -> None:
        for key in keys:
            value = obj.get(key)
            if isinstance(value, str) and is_hex_id(value, size):
                obj[key] = base64.b64encode(bytes.fromhex(value)).decode("ascii")

    def items(obj: Any, *keys: str) -> List[Any]:
        for key in keys:
            value = obj.get(key) if isinstance(obj, dict) else None
            if isinstance(value, list):
                return [v for v in value if isinstance(v, dict)]
            if isinstance(value, dict):
                return [value]
        return []

    for dictionary in items(document, "dictionary"):
        for link in items(dictionary, "linkTable", "link_table"):
            fix(link, ("traceId", "trace_id"), TRACE_ID_BYTES)
            fix(link, ("spanId", "span_id"), SPAN_ID_BYTES)
    for resource_profiles in items(document, "resourceProfiles", "resource_profiles"):
        for scope_profiles in items(resource_profiles, "scopeProfiles", "scope_profiles"):
            for profile in items(scope_profiles, "profiles"):
                fix(profile, ("profileId", "profile_id"), 16)


def _parse_json_request(path: Path, document: Any) -> Any:
    if not isinstance(document, dict):
        problem = f"expected a JSON object, got {type(document).__name__}"
        raise ProfileFileError(path, problem)
    _hex_ids_to_base64(document)
    request = ExportProfilesServiceRequest()
    try:
        # Unknown fields come from newer protos; dropping them loses nothing we can read.
        json_format.ParseDict(document, request, ignore_unknown_fields=True)
    except json_format.ParseError as exc:
        raise ProfileFileError(path, f"not an OTLP ExportProfilesServiceRequest: {exc}") from None
    return request


def _decode_json(path: Path, document: Any) -> List[ProfileRecord]:
    return list(decode_request(_parse_json_request(path, document), str(path)))


def _read_json(path: Path, text: str) -> Tuple[List[ProfileRecord], List[ProfileFileError], bool]:
    lines = text.splitlines()
    first = next((line for line in lines if line.strip()), "")
    try:
        json.loads(first)
    except ValueError:
        # Not JSON lines: maybe one pretty-printed request (json_format.MessageToJson output).
        try:
            document = json.loads(text)
        except ValueError:
            pass
        else:
            try:
                return _decode_json(path, document), [], True
            except ProfileFileError as exc:
                return [], [exc], False
    records: List[ProfileRecord] = []
    errors: List[ProfileFileError] = []
    read_any = False
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            document = json.loads(line)
        except ValueError as exc:
            errors.append(ProfileFileError(path, f"line {number}: not valid JSON ({exc})"))
            continue
        try:
            records.extend(_decode_json(path, document))
            read_any = True
        except ProfileFileError as exc:
            errors.append(ProfileFileError(path, f"line {number}: {exc.problem}"))
    # A file of blank lines is an empty file, not an unreadable one.
    return records, errors, read_any or not errors


def _read_protobuf(path: Path, data: bytes) -> List[ProfileRecord]:
    request = ExportProfilesServiceRequest()
    try:
        request.ParseFromString(data)
    except DecodeError as exc:
        raise ProfileFileError(
            path, f"not an OTLP profiles file (neither JSON nor a protobuf request: {exc})"
        ) from None
    if data and not request.resource_profiles and not request.HasField("dictionary"):
        # Arbitrary bytes often parse as unknown fields of an empty message.
        raise ProfileFileError(
            path, f"not an OTLP profiles file ({len(data)} bytes but no profiles data)"
        )
    return list(decode_request(request, str(path)))


def _read_lenient(path: Path) -> Tuple[List[ProfileRecord], List[ProfileFileError], bool]:
    """Records, problems, and whether anything in the file could be read at all."""
    try:
        data = path.read_bytes()
        if data.startswith(_GZIP_MAGIC):
            data = gzip.decompress(data)
    except OSError as exc:
        return [], [ProfileFileError(path, f"cannot read it ({exc.strerror or exc})")], False
    except (EOFError, zlib.error) as exc:
        return [], [ProfileFileError(path, f"corrupt gzip data ({exc})")], False
    if data.startswith(_ZSTD_MAGIC):
        problem = "zstd-compressed; decompress it first (zstd -d)"
        return [], [ProfileFileError(path, problem)], False
    if data.lstrip()[:1] == b"{":
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            return [], [ProfileFileError(path, f"JSON that is not UTF-8 ({exc})")], False
        return _read_json(path, text)
    try:
        return _read_protobuf(path, data), [], True
    except ProfileFileError as exc:
        return [], [exc], False


def read_file(path: Union[str, Path]) -> Tuple[ProfileRecord, ...]:
    """Read one file strictly: raise :class:`ProfileFileError` on its first problem."""
    records, errors, _ = _read_lenient(Path(path))
    if errors:
        raise errors[0]
    return tuple(records)


def _is_profile_file(path: Path) -> bool:
    name = path.name[:-3] if path.name.endswith(".gz") else path.name
    return not path.name.startswith(".") and name.endswith(PROFILE_FILE_SUFFIXES)


def find_profile_files(
    paths: Iterable[Union[str, Path]],
) -> Tuple[Tuple[Path, ...], Tuple[ProfileFileError, ...]]:
    """Expand directories recursively (sorted); name every path that holds nothing to read."""
    found: List[Path] = []
    errors: List[ProfileFileError] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            inside = sorted(p for p in path.rglob("*") if p.is_file() and _is_profile_file(p))
            if not inside:
                suffixes = ", ".join(f"*{s}" for s in PROFILE_FILE_SUFFIXES)
                errors.append(ProfileFileError(path, f"no profile files ({suffixes}) under it"))
            found.extend(inside)
        elif path.exists():
            found.append(path)
        else:
            errors.append(ProfileFileError(path, "no such file or directory"))
    unique = tuple(dict.fromkeys(found))
    return unique, tuple(errors)


def load_profiles(paths: Iterable[Union[str, Path]]) -> LoadResult:
    """Load every file and directory given; problems are collected, never raised."""
    files, errors = find_profile_files(paths)
    records: List[ProfileRecord] = []
    problems = list(errors)
    readable: List[Path] = []
    for path in files:
        file_records, file_errors, ok = _read_lenient(path)
        records.extend(file_records)
        problems.extend(file_errors)
        if ok:
            readable.append(path)
    return LoadResult(tuple(records), tuple(readable), tuple(problems))
