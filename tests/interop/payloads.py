"""A hand-built, valid OTLP profiles v1.10 request with links, attributes and shared stacks."""

from __future__ import annotations

from typing import Dict, List, Sequence, Tuple, Union

from opentelemetry.proto.collector.profiles.v1development.profiles_service_pb2 import (
    ExportProfilesServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.profiles.v1development import profiles_pb2 as pb

Scalar = Union[str, int, float, bool]

TIME_UNIX_NANO = 1_760_000_000_000_000_000
DURATION_NANO = 10_000_000_000
PERIOD_NANO = 10_000_000

RESOURCE_ATTRIBUTES: Dict[str, Scalar] = {
    "service.name": "checkout",
    "service.instance.id": "9b0f7c1e-4c1a-4a43-9a38-2f1f0b6f2d11",
    "service.version": "1.4.2",
    "deployment.environment.name": "interop",
    "process.pid": 4242,
    "otelprof.interop": True,
}
SCOPE_NAME = "otelprof"
SCOPE_VERSION = "0.1.0"
SCOPE_ATTRIBUTES: Dict[str, Scalar] = {"otelprof.engine": "stack-sampler"}

# (function, filename, start_line); line numbers per location below.
FUNCTIONS: List[Tuple[str, str, int]] = [
    ("main", "/srv/app.py", 10),
    ("handle_checkout", "/srv/views.py", 40),
    ("compute_tax", "/srv/tax.py", 5),
    ("render", "/srv/templates.py", 88),
    ("select", "/usr/lib/python3.11/selectors.py", 451),
]
# (function index into FUNCTIONS, line)
LOCATIONS: List[Tuple[int, int]] = [(0, 12), (1, 47), (2, 9), (3, 90), (4, 468), (2, 11)]
# Leaf first, as the proto orders a stack's locations.
STACKS: List[List[int]] = [[2, 1, 0], [3, 1, 0], [4, 0], [5, 1, 0]]
LINKS: List[Tuple[bytes, bytes]] = [
    (bytes.fromhex("5b8efff798038103d269b633813fc60c"), bytes.fromhex("eee19b7ec3c1b174")),
    (bytes.fromhex("0af7651916cd43dd8448eb211c80319c"), bytes.fromhex("b7ad6b7169203331")),
]
# (stack, thread.id, thread.name, link or None, value, offset into the window in ns)
SAMPLES: List[Tuple[int, int, str, Union[int, None], int, int]] = [
    (0, 140001, "MainThread", 0, 30_000_000, 1_000_000),
    (1, 140001, "MainThread", 0, 10_000_000, 2_000_000),
    (2, 140002, "worker-1", None, 50_000_000, 3_000_000),
    (3, 140002, "worker-1", 1, 20_000_000, 4_000_000),
    (0, 140002, "worker-1", 1, 10_000_000, 5_000_000),
]


def _any(value: Scalar) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    return AnyValue(string_value=value)


def key_values(attributes: Dict[str, Scalar]) -> List[KeyValue]:
    """Plain key/value attributes, as the Collector's processors read them."""
    return [KeyValue(key=key, value=_any(value)) for key, value in attributes.items()]


class _Strings:
    def __init__(self, table: pb.ProfilesDictionary) -> None:
        self._table = table
        self._index: Dict[str, int] = {}
        self.add("")

    def add(self, value: str) -> int:
        if value not in self._index:
            self._index[value] = len(self._table.string_table)
            self._table.string_table.append(value)
        return self._index[value]


def _dictionary() -> Tuple[pb.ProfilesDictionary, Dict[Tuple[str, Scalar], int]]:
    table = pb.ProfilesDictionary()
    strings = _Strings(table)
    # Index 0 of every table holds its zero value.
    table.mapping_table.add()
    table.location_table.add()
    table.function_table.add()
    # The proto lets link_table[0] be Link{} or zero-filled ids and says SHOULD for the latter.
    table.link_table.add(trace_id=bytes(16), span_id=bytes(8))
    table.attribute_table.add()
    table.stack_table.add()
    attributes: Dict[Tuple[str, Scalar], int] = {}

    def attribute(key: str, value: Scalar) -> int:
        if (key, value) not in attributes:
            attributes[(key, value)] = len(table.attribute_table)
            table.attribute_table.add(key_strindex=strings.add(key), value=_any(value))
        return attributes[(key, value)]

    attribute("profile.frame.type", "cpython")
    for name, filename, start_line in FUNCTIONS:
        table.function_table.add(
            name_strindex=strings.add(name),
            system_name_strindex=strings.add(name),
            filename_strindex=strings.add(filename),
            start_line=start_line,
        )
    frame_type = attribute("profile.frame.type", "cpython")
    for function, line in LOCATIONS:
        location = table.location_table.add(attribute_indices=[frame_type])
        location.lines.add(function_index=function + 1, line=line)
    for stack in STACKS:
        table.stack_table.add(location_indices=[location + 1 for location in stack])
    for trace_id, span_id in LINKS:
        table.link_table.add(trace_id=trace_id, span_id=span_id)
    for _, thread_id, thread_name, _, _, _ in SAMPLES:
        attribute("thread.id", thread_id)
        attribute("thread.name", thread_name)
    for type_name in ("cpu", "wall", "nanoseconds"):
        strings.add(type_name)
    return table, attributes


def _profile(
    profile: pb.Profile,
    sample_type: str,
    strings: Sequence[str],
    attributes: Dict[Tuple[str, Scalar], int],
    scale: int,
) -> None:
    nanoseconds = strings.index("nanoseconds")
    profile.sample_type.type_strindex = strings.index(sample_type)
    profile.sample_type.unit_strindex = nanoseconds
    profile.period_type.type_strindex = strings.index(sample_type)
    profile.period_type.unit_strindex = nanoseconds
    profile.period = PERIOD_NANO
    profile.time_unix_nano = TIME_UNIX_NANO
    profile.duration_nano = DURATION_NANO
    profile.profile_id = bytes(range(1, 17)) if sample_type == "cpu" else bytes(range(17, 33))
    for stack, thread_id, thread_name, link, value, offset in SAMPLES:
        profile.samples.add(
            stack_index=stack + 1,
            attribute_indices=[
                attributes[("thread.id", thread_id)],
                attributes[("thread.name", thread_name)],
            ],
            link_index=0 if link is None else link + 1,
            values=[value * scale],
            timestamps_unix_nano=[TIME_UNIX_NANO + offset],
        )


def hand_built_request() -> ExportProfilesServiceRequest:
    """A `cpu` and a `wall` profile of one service sharing one dictionary."""
    table, attributes = _dictionary()
    request = ExportProfilesServiceRequest()
    request.dictionary.CopyFrom(table)
    resource_profiles = request.resource_profiles.add()
    resource_profiles.resource.attributes.extend(key_values(RESOURCE_ATTRIBUTES))
    scope_profiles = resource_profiles.scope_profiles.add()
    scope_profiles.scope.name = SCOPE_NAME
    scope_profiles.scope.version = SCOPE_VERSION
    scope_profiles.scope.attributes.extend(key_values(SCOPE_ATTRIBUTES))
    strings = list(table.string_table)
    _profile(scope_profiles.profiles.add(), "cpu", strings, attributes, scale=1)
    _profile(scope_profiles.profiles.add(), "wall", strings, attributes, scale=3)
    return request
