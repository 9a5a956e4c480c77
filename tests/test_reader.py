"""The reader: .otlp.pb and Collector JSON round trips, defensive decoding, and the filters."""

from __future__ import annotations

import dataclasses
import gzip
from pathlib import Path

import pytest
from google.protobuf import json_format
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.profiles.v1development import profiles_pb2 as pb
from profile_factory import (
    DURATION_NS,
    SPAN_A,
    SPAN_B,
    START_NS,
    TRACE_A,
    TRACE_B,
    RequestFactory,
    S,
    frame,
    write_json_lines,
    write_pb,
)

from otelprof.model import Frame, ValueType
from otelprof.reader import (
    ProfileFileError,
    decode_request,
    find_profile_files,
    load_profiles,
    read_file,
)
from otelprof.records import (
    ENDPOINT_ATTRIBUTE,
    ProfileRecord,
    by_resource,
    by_sample_attribute,
    by_sample_type,
    by_span_id,
    by_time_range,
    by_trace_id,
    parse_hex_id,
    sample_types,
)

LEAF = frame("leaf", 12)
MIDDLE = frame("middle", 25)
ROOT = frame("main", 40, filename="main.py")


def two_profile_request() -> RequestFactory:
    """A cpu and a wall profile sharing one dictionary, with links and attributes."""
    factory = RequestFactory()
    factory.add_profile(
        ("cpu", "nanoseconds"),
        [
            S(
                [LEAF, MIDDLE, ROOT],
                30,
                attributes={"thread.name": "worker"},
                link=(TRACE_A, SPAN_A),
            ),
            S([MIDDLE, ROOT], 10, attributes={"thread.name": "MainThread"}),
        ],
        resource={"service.name": "checkout", "service.version": "1.4"},
        attributes={"profile.note": "hand made"},
    )
    factory.add_profile(
        ("wall", "nanoseconds"),
        [
            S(
                [LEAF, MIDDLE, ROOT],
                50,
                link=(TRACE_B, SPAN_B),
                attributes={ENDPOINT_ATTRIBUTE: "GET /"},
            )
        ],
        resource={"service.name": "checkout", "service.version": "1.4"},
    )
    return factory


def without_source(records: tuple[ProfileRecord, ...]) -> list[ProfileRecord]:
    return [dataclasses.replace(r, source="") for r in records]


def test_pb_round_trip_gives_exact_records(tmp_path: Path) -> None:
    path = write_pb(tmp_path / "a.otlp.pb", two_profile_request().request())
    cpu, wall = read_file(path)

    assert cpu.source == str(path)
    assert cpu.sample_type == ValueType("cpu", "nanoseconds")
    assert cpu.period_type == ValueType("cpu", "nanoseconds")
    assert (cpu.period, cpu.start_unix_nano, cpu.duration_nano) == (
        10_000_000,
        START_NS,
        DURATION_NS,
    )
    assert dict(cpu.resource) == {"service.name": "checkout", "service.version": "1.4"}
    assert (cpu.scope_name, dict(cpu.profile_attributes)) == (
        "otelprof",
        {"profile.note": "hand made"},
    )
    first, second = cpu.samples
    assert first.stack == (LEAF, MIDDLE, ROOT)
    assert first.stack[0] == Frame("leaf", "app.py", 12, 2, "cpython")
    assert (first.value, first.values) == (30, (30,))
    assert dict(first.attributes) == {"thread.name": "worker"}
    assert (first.trace_id, first.span_id) == (TRACE_A, SPAN_A)
    assert (second.trace_id, second.span_id) == (None, None)
    assert cpu.total == 40
    assert wall.sample_type.type == "wall"
    assert (wall.samples[0].trace_id, wall.samples[0].span_id) == (TRACE_B, SPAN_B)


def test_collector_json_lines_decode_like_protobuf(tmp_path: Path) -> None:
    request = two_profile_request().request()
    from_pb = read_file(write_pb(tmp_path / "a.otlp.pb", request))
    # Two requests on two lines, ids in hex as the Collector writes them.
    json_path = write_json_lines(tmp_path / "profiles.json", request, request)
    from_json = read_file(json_path)
    assert len(from_json) == 4
    assert without_source(from_json) == without_source(from_pb) * 2
    assert from_json[0].samples[0].trace_id == TRACE_A


def test_pretty_printed_protobuf_json_with_base64_ids(tmp_path: Path) -> None:
    request = two_profile_request().request()
    path = tmp_path / "one.json"
    path.write_text(json_format.MessageToJson(request, indent=2))
    assert without_source(read_file(path)) == without_source(decode_request(request))


def test_several_values_are_summed_and_timestamps_count_events() -> None:
    factory = RequestFactory()
    factory.add_profile(
        ("cpu", "nanoseconds"),
        [
            S([LEAF], [2, 3, 5], timestamps=[START_NS + 1, START_NS + 2, START_NS + 3]),
            S([MIDDLE], [], timestamps=[START_NS + 1, START_NS + 5]),
        ],
    )
    (record,) = decode_request(factory.request())
    assert [s.value for s in record.samples] == [10, 2]
    assert record.samples[1].timestamps_unix_nano == (START_NS + 1, START_NS + 5)


def test_inlined_lines_expand_leaf_first_and_lineless_locations_show_the_address() -> None:
    factory = RequestFactory()
    inlined = Frame("helper", "app.py", 3, 1, "cpython")
    helper_index = factory.function(inlined)
    factory.add_profile(samples=[S([LEAF, ROOT], 7)])
    table = factory.dictionary
    # LEAF's location gets an inlined callee in front of it (lines[0] is the innermost).
    table.location_table[factory.location(LEAF)].lines.insert(
        0, pb.Line(function_index=helper_index, line=3)
    )
    table.location_table.append(pb.Location(address=0xBEEF))
    table.stack_table.append(pb.Stack(location_indices=[len(table.location_table) - 1]))
    request = factory.request()
    request.resource_profiles[0].scope_profiles[0].profiles[0].samples.add(
        stack_index=len(table.stack_table) - 1, values=[1]
    )
    (record,) = decode_request(request)
    assert record.samples[0].stack == (inlined, LEAF, ROOT)
    assert record.samples[1].stack == (Frame("0xbeef", "", 0, 0, ""),)


def test_all_zero_link_ids_mean_no_span() -> None:
    factory = RequestFactory()
    factory.add_profile(samples=[S([LEAF], 1, link=(bytes(16), bytes(8)))])
    factory.dictionary.link_table[0].CopyFrom(pb.Link(trace_id=bytes(16), span_id=bytes(8)))
    factory.add_profile(samples=[S([LEAF], 2)])
    first, second = decode_request(factory.request())
    assert (first.samples[0].trace_id, first.samples[0].span_id) == (None, None)
    assert (second.samples[0].trace_id, second.samples[0].span_id) == (None, None)


def test_string_table_references_in_resource_and_values_are_resolved() -> None:
    factory = RequestFactory()
    factory.add_profile(samples=[S([LEAF], 1)], resource={})
    kv = KeyValue(key_strindex=factory.string("service.name"))
    kv.value.CopyFrom(AnyValue(string_value_strindex=factory.string("from-table")))
    request = factory.request()
    request.resource_profiles[0].resource.attributes.append(kv)
    (record,) = decode_request(request)
    assert dict(record.resource) == {"service.name": "from-table"}


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (
            lambda r: setattr(
                r.resource_profiles[0].scope_profiles[0].profiles[0].samples[0], "stack_index", 9
            ),
            "samples[0]: stack_table index 9 out of range (stack_table has 2 entries)",
        ),
        (
            lambda r: setattr(
                r.resource_profiles[0].scope_profiles[0].profiles[0].samples[0], "link_index", -1
            ),
            "samples[0]: link_table index -1 out of range",
        ),
        (
            lambda r: (
                r.resource_profiles[0]
                .scope_profiles[0]
                .profiles[0]
                .samples[0]
                .attribute_indices.append(40)
            ),
            "attribute_table index 40 out of range",
        ),
        (
            lambda r: r.dictionary.stack_table[1].location_indices.append(77),
            "stack_table[1]: location_table index 77 out of range",
        ),
        (
            lambda r: setattr(r.dictionary.location_table[1].lines[0], "function_index", 5),
            "location_table[1]: function_table index 5 out of range",
        ),
        (
            lambda r: setattr(r.dictionary.function_table[1], "name_strindex", 1000),
            "string_table index 1000 out of range",
        ),
        (
            lambda r: setattr(
                r.resource_profiles[0].scope_profiles[0].profiles[0].sample_type,
                "type_strindex",
                99,
            ),
            "profiles[0]: string_table index 99 out of range",
        ),
        (
            lambda r: setattr(r.dictionary.link_table[1], "trace_id", b"short"),
            "link_table[1]: trace_id has 5 bytes, not 16",
        ),
        (
            lambda r: (
                r.resource_profiles[0]
                .scope_profiles[0]
                .profiles[0]
                .samples[0]
                .timestamps_unix_nano.extend([1, 2])
            ),
            "1 values but 2 timestamps",
        ),
    ],
)
def test_bad_references_name_the_file_and_the_problem(
    tmp_path: Path, corrupt, message: str
) -> None:
    factory = RequestFactory()
    factory.add_profile(samples=[S([LEAF], 3, link=(TRACE_A, SPAN_A))])
    request = factory.request()
    corrupt(request)
    path = write_pb(tmp_path / "bad.otlp.pb", request)
    with pytest.raises(ProfileFileError) as info:
        read_file(path)
    assert info.value.path == str(path)
    assert str(info.value).startswith(f"{path}: ")
    assert message in info.value.problem


def test_corrupt_files_are_reported_and_the_others_still_load(tmp_path: Path) -> None:
    good = two_profile_request().request()
    write_pb(tmp_path / "1-good.otlp.pb", good)
    data = good.SerializeToString()
    (tmp_path / "2-truncated.otlp.pb").write_bytes(data[: len(data) // 2])
    (tmp_path / "3-text.otlp.pb").write_bytes(b"this is not a profile at all\n")
    (tmp_path / "4-zstd.pb").write_bytes(b"\x28\xb5\x2f\xfd" + b"\x00" * 8)
    (tmp_path / "5-gzip.otlp.pb.gz").write_bytes(gzip.compress(data))
    (tmp_path / "6-badgzip.pb.gz").write_bytes(b"\x1f\x8b" + b"garbage")
    result = load_profiles([tmp_path])
    assert [p.name for p in result.files] == ["1-good.otlp.pb", "5-gzip.otlp.pb.gz"]
    assert len(result.records) == 4
    problems = {Path(e.path).name: e.problem for e in result.errors}
    assert set(problems) == {
        "2-truncated.otlp.pb",
        "3-text.otlp.pb",
        "4-zstd.pb",
        "6-badgzip.pb.gz",
    }
    assert "not an OTLP profiles file" in problems["2-truncated.otlp.pb"]
    assert "not an OTLP profiles file" in problems["3-text.otlp.pb"]
    assert "zstd" in problems["4-zstd.pb"]
    assert "gzip" in problems["6-badgzip.pb.gz"]


def test_a_bad_json_line_loses_only_that_line(tmp_path: Path) -> None:
    request = two_profile_request().request()
    path = write_json_lines(tmp_path / "profiles.json", request)
    bad_index = RequestFactory()
    bad_index.add_profile(samples=[S([LEAF], 1)])
    broken = bad_index.request()
    broken.resource_profiles[0].scope_profiles[0].profiles[0].samples[0].stack_index = 42
    with path.open("a") as out:
        out.write('{"resourceProfiles": [{"scopeProfiles": "oops"}]}\n')
        out.write(json_format.MessageToJson(broken, indent=None) + "\n")
        out.write('{"resourceProfiles": [{"truncated\n')
    result = load_profiles([path])
    assert result.files == (path,)
    assert len(result.records) == 2
    messages = [e.problem for e in result.errors]
    assert messages[0].startswith("line 2: not an OTLP ExportProfilesServiceRequest")
    assert (
        messages[1].startswith("line 3: resource_profiles[0]")
        and "stack_table index 42" in messages[1]
    )
    assert messages[2].startswith("line 4: not valid JSON")


def test_directories_are_searched_recursively_in_sorted_order(tmp_path: Path) -> None:
    request = two_profile_request().request()
    write_pb(tmp_path / "b" / "2.otlp.pb", request)
    write_pb(tmp_path / "a" / "z.otlp.pb", request)
    write_json_lines(tmp_path / "a" / "c" / "x.jsonl", request)
    (tmp_path / "a" / "notes.txt").write_text("ignored")
    write_pb(tmp_path / "a" / ".hidden.otlp.pb", request)
    (tmp_path / "empty").mkdir()
    files, errors = find_profile_files([tmp_path, tmp_path / "empty", tmp_path / "missing.pb"])
    assert [f.relative_to(tmp_path).as_posix() for f in files] == [
        "a/c/x.jsonl",
        "a/z.otlp.pb",
        "b/2.otlp.pb",
    ]
    assert [(Path(e.path).name, e.problem) for e in errors] == [
        ("empty", "no profile files (*.pb, *.json, *.jsonl, *.ndjson) under it"),
        ("missing.pb", "no such file or directory"),
    ]


def test_an_empty_file_is_read_and_has_no_profiles(tmp_path: Path) -> None:
    empty = tmp_path / "empty.otlp.pb"
    empty.write_bytes(b"")
    result = load_profiles([empty])
    assert (result.files, result.records, result.errors) == ((empty,), (), ())


def test_no_readable_file_leaves_files_empty(tmp_path: Path) -> None:
    (tmp_path / "x.pb").write_bytes(b"\xff\xff\xff")
    result = load_profiles([tmp_path / "x.pb"])
    assert result.files == () and len(result.errors) == 1


# --- filters ---------------------------------------------------------------------------------


def records() -> tuple[ProfileRecord, ...]:
    factory = two_profile_request()
    factory.add_profile(
        ("alloc_space", "bytes"),
        [S([LEAF], 4096)],
        resource={"service.name": "cart"},
    )
    return decode_request(factory.request())


def test_sample_types_and_type_filter() -> None:
    recs = records()
    assert sample_types(recs) == (
        ValueType("alloc_space", "bytes"),
        ValueType("cpu", "nanoseconds"),
        ValueType("wall", "nanoseconds"),
    )
    assert [r.sample_type.type for r in by_sample_type(recs, "cpu")] == ["cpu"]
    assert by_sample_type(recs, "cpu", "bytes") == ()


def test_resource_and_sample_attribute_filters() -> None:
    recs = records()
    assert [r.sample_type.type for r in by_resource(recs, "service.name", "cart")] == [
        "alloc_space"
    ]
    assert len(by_resource(recs, "service.version", "1.4")) == 2
    (worker,) = by_sample_attribute(recs, "thread.name", "worker")
    assert [s.value for s in worker.samples] == [30]
    (endpoint,) = by_sample_attribute(recs, ENDPOINT_ATTRIBUTE, "GET /")
    assert endpoint.sample_type.type == "wall"


def test_trace_and_span_filters_take_hex_or_bytes() -> None:
    recs = records()
    (cpu,) = by_trace_id(recs, TRACE_A.hex().upper())
    assert [s.value for s in cpu.samples] == [30]
    assert by_trace_id(recs, TRACE_B) == by_span_id(recs, SPAN_B.hex())
    assert by_span_id(recs, "0000000000000001") == ()
    with pytest.raises(ValueError, match="trace id must be 32 hex digits, got 'xyz'"):
        by_trace_id(recs, "xyz")
    assert parse_hex_id(" 00f067aa0ba902b7 ", 8) == SPAN_B


def test_time_range_clips_timestamped_samples_and_keeps_overlapping_windows() -> None:
    factory = RequestFactory()
    factory.add_profile(
        samples=[
            S([LEAF], [1, 2, 4], timestamps=[START_NS + 10, START_NS + 20, START_NS + 30]),
            S([MIDDLE], [], timestamps=[START_NS + 10, START_NS + 30]),
            S([ROOT], 100),  # no timestamps: judged by the profile's window
        ],
        duration_nano=1_000,
    )
    recs = decode_request(factory.request())
    (clipped,) = by_time_range(recs, START_NS + 15, START_NS + 31)
    assert [(s.stack[0].function, s.value, s.values) for s in clipped.samples] == [
        ("leaf", 6, (2, 4)),
        ("middle", 1, ()),
        ("main", 100, (100,)),
    ]
    (late,) = by_time_range(recs, START_NS + 25)
    assert [s.value for s in late.samples] == [4, 1, 100]
    assert by_time_range(recs, START_NS + 1_000) == ()
    assert by_time_range(recs, None, START_NS) == ()
