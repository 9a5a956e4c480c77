"""The builder's output follows every OTLP profiles rule; a golden request pins the bytes."""

from __future__ import annotations

import pathlib
import threading

from opentelemetry.sdk.resources import Resource

from otelprof.builder import build_request
from otelprof.conformance import check_request
from otelprof.model import CPU_NANOS, WALL_NANOS, Frame, Profile, Sample, SpanLink
from otelprof.testing import capture_profiles
from tests.agent.helpers import wait_until

GOLDEN = pathlib.Path(__file__).parent / "testdata" / "golden_request.pb"

MAIN = Frame("main", "/app/main.py", 10, 1)
HANDLE = Frame("Handler.handle", "/app/handler.py", 42, 40)
QUERY = Frame("query", "/app/db.py", 7, 5)
LINK = SpanLink(bytes(range(1, 17)), bytes(range(1, 9)))


def _profiles() -> list:
    samples = (
        Sample((QUERY, HANDLE, MAIN), 30, (("thread.id", 7), ("thread.name", "worker")), LINK),
        Sample((HANDLE, MAIN), 20, (("thread.id", 7), ("thread.name", "worker")), LINK),
        Sample((HANDLE, MAIN), 5, (("thread.id", 7), ("thread.name", "worker")), LINK),
        Sample((MAIN,), 10, (("thread.id", 1), ("thread.name", "MainThread")), None),
        Sample((MAIN,), 0, (("thread.id", 1), ("thread.name", "MainThread")), None),
    )
    return [
        Profile(kind, kind, 10_000_000, 1_700_000_000_000_000_000, 10_000_000_000, samples)
        for kind in (CPU_NANOS, WALL_NANOS)
    ]


def _request():
    resource = Resource({"service.name": "checkout", "process.pid": 1234})
    return build_request(_profiles(), resource, "otelprof", "0.1.0", profile_ids=False)


def test_hand_built_profiles_conform_and_share_one_dictionary():
    request = _request()
    assert check_request(request) == []
    d = request.dictionary
    assert d.string_table[0] == "" and len(set(d.string_table)) == len(d.string_table)
    profiles = request.resource_profiles[0].scope_profiles[0].profiles
    assert [d.string_table[p.sample_type.type_strindex] for p in profiles] == ["cpu", "wall"]
    cpu = profiles[0]
    # Same identity summed (20 + 5), zero-valued sample dropped.
    assert sorted(s.values[0] for s in cpu.samples) == [10, 25, 30]
    # Stacks are interned once across both profiles; 3 distinct stacks + the zero stack.
    assert len(d.stack_table) == 4
    linked = [s for s in cpu.samples if s.link_index]
    assert {
        (d.link_table[s.link_index].trace_id, d.link_table[s.link_index].span_id) for s in linked
    } == {(LINK.trace_id, LINK.span_id)}
    leaf = d.location_table[d.stack_table[cpu.samples[0].stack_index].location_indices[0]]
    assert d.string_table[d.function_table[leaf.lines[0].function_index].name_strindex] == "query"
    resource = request.resource_profiles[0].resource
    assert {a.key: a.value.string_value for a in resource.attributes}["process.pid"] == "1234"


def test_golden_request_bytes_are_stable():
    encoded = _request().SerializeToString(deterministic=True)
    if not GOLDEN.exists():  # first run on a new layout: write it, and fail so it gets reviewed
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_bytes(encoded)
        raise AssertionError(f"golden file written to {GOLDEN}; review and commit it")
    assert encoded == GOLDEN.read_bytes()


def test_real_agent_output_conforms():
    stop = threading.Event()

    def busy() -> None:
        while not stop.is_set():
            sum(i * i for i in range(2000))

    with capture_profiles(sampling_rate_hz=200, export_interval_seconds=3600) as captured:
        worker = threading.Thread(target=busy, name="busy-worker")
        worker.start()
        wait_until(lambda: _sampled_enough(captured))
        stop.set()
        worker.join()
    (request,) = captured.requests
    assert check_request(request) == []
    d = request.dictionary
    names = {d.string_table[f.name_strindex] for f in d.function_table}
    assert "test_real_agent_output_conforms.<locals>.busy" in names or "busy" in names


def _sampled_enough(captured) -> bool:
    profiler = captured.profiler
    return profiler.sampler._interval.ticks >= 20


def test_equal_values_in_distinct_objects_are_interned_as_values():
    # The builder finds stacks and attribute lists by identity first; equal stacks that are
    # different objects still share one table entry, and 1 and True stay different values.
    stack = (QUERY, HANDLE, MAIN)
    same_stack = tuple(list(stack))
    assert same_stack is not stack
    samples = (
        Sample(stack, 1, (("n", 1),)),
        Sample(same_stack, 2, (("n", True),)),
        Sample(same_stack, 4, (("n", 1),)),
    )
    profile = Profile(CPU_NANOS, CPU_NANOS, 1, 1_700_000_000_000_000_000, 1, samples)
    request = build_request([profile], Resource({"service.name": "s"}), "otelprof", "0.1.0")
    assert check_request(request) == []
    table = request.dictionary
    assert len(table.stack_table) == 2  # the zero stack and one more
    values = sorted(
        (table.attribute_table[s.attribute_indices[0]].value.WhichOneof("value"), s.values[0])
        for s in request.resource_profiles[0].scope_profiles[0].profiles[0].samples
    )
    assert values == [("bool_value", 2), ("int_value", 5)]
