"""Reads each profiler's output into one shape: (leaf-first function names, value) samples."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

Stack = Tuple[str, ...]
Samples = List[Tuple[Stack, float]]


def short_name(frame: str) -> str:
    """``"Cls.method (file.py:12)"`` -> ``"method"``: the profilers disagree on everything else."""
    name = frame.split(" (", 1)[0].strip()
    return name.rsplit(".", 1)[-1]


# --- otelprof: ExportProfilesServiceRequest files ------------------------------------------


def read_otlp_files(directory: Path, sample_type: str) -> Samples:
    """Samples of the profiles whose sample type is ``sample_type`` ("cpu" or "wall")."""
    from otelprof.reader import load_profiles

    loaded = load_profiles([directory])
    if loaded.errors:
        raise ValueError("; ".join(str(error) for error in loaded.errors))
    return [
        (tuple(frame.function for frame in sample.stack), float(sample.value))
        for record in loaded.records
        if record.sample_type.type == sample_type
        for sample in record.samples
    ]


# --- py-spy: raw (collapsed) format -----------------------------------------------------------


def read_collapsed(path: Path) -> Samples:
    """Brendan Gregg's collapsed stacks (``root;...;leaf count``), as py-spy ``-f raw`` writes."""
    return read_collapsed_text(path.read_bytes())


def read_collapsed_text(data: bytes) -> Samples:
    """Collapsed stacks from bytes (also what pre-1.0 pyroscope-io uploads)."""
    samples: Samples = []
    for line in data.decode("utf-8", "replace").splitlines():
        stack_text, _, count = line.rpartition(" ")
        if not stack_text or not count.isdigit():
            continue
        frames = [f for f in stack_text.split(";") if f]
        samples.append((tuple(reversed(frames)), float(count)))
    return samples


# --- pprof and Pyroscope's push API, decoded from the protobuf wire format -------------------
# Neither schema ships in a package we install; the handful of fields we need are stable.


def _varint(data: bytes, pos: int) -> Tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return result, pos


def fields(data: bytes) -> Iterator[Tuple[int, object]]:
    """(field number, int or bytes) for each field of one protobuf message."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        value: object
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 2:
            length, pos = _varint(data, pos)
            value, pos = data[pos : pos + length], pos + length
        elif wire == 1:
            value, pos = int.from_bytes(data[pos : pos + 8], "little"), pos + 8
        elif wire == 5:
            value, pos = int.from_bytes(data[pos : pos + 4], "little"), pos + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        yield number, value


def _ints(value: object) -> List[int]:
    """A repeated integer field, packed (bytes) or not (one int)."""
    if isinstance(value, int):
        return [value]
    assert isinstance(value, bytes)
    out, pos = [], 0
    while pos < len(value):
        item, pos = _varint(value, pos)
        out.append(item)
    return out


def read_pprof(data: bytes) -> Samples:
    """A pprof ``Profile`` (gzipped or not); values of its first sample type."""
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    strings: List[str] = []
    functions: Dict[int, int] = {}  # function id -> name string index
    locations: Dict[int, List[int]] = {}  # location id -> function ids, leaf first
    raw_samples: List[Tuple[List[int], int]] = []
    for number, value in fields(data):
        if number == 6:
            assert isinstance(value, bytes)
            strings.append(value.decode("utf-8", "replace"))
        elif number == 5:
            assert isinstance(value, bytes)
            f = dict(fields(value))
            functions[int(f.get(1, 0))] = int(f.get(2, 0))  # type: ignore[call-overload]
        elif number == 4:
            assert isinstance(value, bytes)
            loc_id, function_ids = 0, []
            for sub, sub_value in fields(value):
                if sub == 1:
                    loc_id = int(sub_value)  # type: ignore[call-overload]
                elif sub == 4:
                    assert isinstance(sub_value, bytes)
                    function_ids.append(int(dict(fields(sub_value)).get(1, 0)))  # type: ignore[call-overload]
            locations[loc_id] = function_ids
        elif number == 2:
            assert isinstance(value, bytes)
            loc_ids: List[int] = []
            values: List[int] = []
            for sub, sub_value in fields(value):
                if sub == 1:
                    loc_ids.extend(_ints(sub_value))
                elif sub == 2:
                    values.extend(_ints(sub_value))
            raw_samples.append((loc_ids, values[0] if values else 0))
    samples: Samples = []
    for loc_ids, amount in raw_samples:
        names = [strings[functions[f]] for loc in loc_ids for f in locations.get(loc, [])]
        samples.append((tuple(names), float(amount)))
    return samples


def read_pyroscope_push(body: bytes) -> List[Tuple[Dict[str, str], Samples]]:
    """Pyroscope's ``push.v1.PusherService/Push`` request: (labels, samples) per series."""
    if body[:2] == b"\x1f\x8b":
        body = gzip.decompress(body)
    out: List[Tuple[Dict[str, str], Samples]] = []
    for number, series in fields(body):
        if number != 1 or not isinstance(series, bytes):
            continue
        labels: Dict[str, str] = {}
        samples: Samples = []
        for sub, value in fields(series):
            assert isinstance(value, bytes)
            if sub == 1:
                pair = {k: v for k, v in fields(value) if isinstance(v, bytes)}
                labels[pair.get(1, b"").decode()] = pair.get(2, b"").decode()
            elif sub == 2:
                raw = dict(fields(value)).get(1, b"")
                assert isinstance(raw, bytes)
                samples.extend(read_pprof(raw))
        out.append((labels, samples))
    return out
