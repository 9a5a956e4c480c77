"""Validation fast path: the column view clears valid requests without walking them, and every
encoding it cannot vouch for goes to the exact path, which names the problem."""

from __future__ import annotations

import random
from typing import Any, List

import pytest
from opentelemetry.proto.collector.profiles.v1development.profiles_service_pb2 import (
    ExportProfilesServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.profiles.v1development import profiles_pb2 as pb

from collector_processor import validation
from collector_processor.errors import InvalidRequestError
from collector_processor.fastcheck import canonical, parse_columns, parse_shallow, varints_in_range
from collector_processor.validation import validate_request

from .payloads import make_request

P0 = "resource_profiles[0].scope_profiles[0].profiles[0]"


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative int32 values are sign-extended to ten bytes
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _length_delimited(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _wire_with_samples(samples: List[bytes], dictionary: Any) -> bytes:
    """A request whose one profile holds ``samples`` encoded exactly as given."""
    profile = b"".join(_length_delimited(2, sample) for sample in samples)
    wire = _length_delimited(1, _length_delimited(2, _length_delimited(2, profile)))
    return wire + _length_delimited(2, dictionary.SerializeToString())


def _exact_path_forbidden(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail if validation names any dictionary entry or sample one by one."""
    entry_check = validation._index

    def index(where: str, index: int, table: str, size: int) -> None:
        assert not where.startswith("dictionary.") and ".samples[" not in where, where
        entry_check(where, index, table, size)

    def samples(*args: Any) -> None:
        raise AssertionError("samples checked one by one")

    monkeypatch.setattr(validation, "_index", index)
    monkeypatch.setattr(validation, "_check_samples", samples)


def test_a_valid_request_is_cleared_without_walking_it(monkeypatch: pytest.MonkeyPatch) -> None:
    request = make_request(samples_per_profile=50)
    _exact_path_forbidden(monkeypatch)
    validate_request(request, request.SerializeToString())


def test_values_only_samples_are_cleared_without_walking_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The otelprof agent sends one value per sample and no timestamps.
    request = make_request(samples_per_profile=50)
    for profile in request.resource_profiles[0].scope_profiles[0].profiles:
        for sample in profile.samples:
            del sample.timestamps_unix_nano[:]
    _exact_path_forbidden(monkeypatch)
    validate_request(request, request.SerializeToString())


def test_a_sample_without_values_among_values_only_samples_is_named() -> None:
    request = make_request()
    for sample in request.resource_profiles[0].scope_profiles[0].profiles[0].samples:
        del sample.timestamps_unix_nano[:]
    del request.resource_profiles[0].scope_profiles[0].profiles[0].samples[4].values[:]
    with pytest.raises(InvalidRequestError) as caught:
        validate_request(request, request.SerializeToString())
    assert str(caught.value) == f"{P0}.samples[4] has neither values nor timestamps_unix_nano"


def test_samples_with_and_without_timestamps_side_by_side_are_valid() -> None:
    request = make_request()
    sample = request.resource_profiles[0].scope_profiles[0].profiles[1].samples[3]
    del sample.timestamps_unix_nano[:]
    validate_request(request, request.SerializeToString())


def test_unknown_fields_in_samples_take_the_exact_path(monkeypatch: pytest.MonkeyPatch) -> None:
    valid = make_request()
    # Field 100 at the end of a sample: re-encoding keeps it, so only the check for unknown
    # fields in samples turns the fast path down.
    sample = pb.Sample(stack_index=1, values=[5]).SerializeToString() + b"\xa0\x06\x01"
    wire = _wire_with_samples([sample], valid.dictionary)
    shallow = parse_shallow(wire)
    assert shallow is not None and canonical(shallow)
    view = parse_columns(wire)
    assert view is not None and not view.samples_ok(shallow, 1, 4, 9, 6)
    walked = []
    monkeypatch.setattr(validation, "_check_samples", lambda *args: walked.append(args))
    validate_request(ExportProfilesServiceRequest.FromString(wire), wire)
    assert len(walked) == 1


def test_unpacked_indices_cannot_hide_an_empty_values_field() -> None:
    # Re-encoded packed, each unpacked attribute index would be one byte longer: two of them
    # would make up for the two bytes of an empty values field, if they were decoded there.
    valid = make_request()
    unpacked = pb.Sample(values=[5]).SerializeToString() + bytes([0x10, 0x01])
    empty_values = pb.Sample(stack_index=1).SerializeToString() + bytes([0x22, 0x00])
    wire = _wire_with_samples([unpacked, unpacked, empty_values], valid.dictionary)
    shallow = parse_shallow(wire)
    assert shallow is not None and not canonical(shallow)
    with pytest.raises(InvalidRequestError) as caught:
        validate_request(ExportProfilesServiceRequest.FromString(wire), wire)
    assert str(caught.value) == f"{P0}.samples[2] has neither values nor timestamps_unix_nano"


def test_an_empty_values_field_does_not_count_as_values() -> None:
    valid = make_request()
    empty_values = pb.Sample(stack_index=1).SerializeToString() + bytes([0x22, 0x00])
    wire = _wire_with_samples(
        [pb.Sample(values=[5]).SerializeToString(), empty_values], valid.dictionary
    )
    shallow = parse_shallow(wire)
    assert shallow is not None and not canonical(shallow)
    with pytest.raises(InvalidRequestError) as caught:
        validate_request(ExportProfilesServiceRequest.FromString(wire), wire)
    assert str(caught.value) == f"{P0}.samples[1] has neither values nor timestamps_unix_nano"


def test_unpacked_indices_take_the_exact_path() -> None:
    valid = make_request()
    # A sample whose attribute_indices is unpacked (legal proto: one varint per element).
    sample = pb.Sample(stack_index=1, values=[5]).SerializeToString() + bytes([0x10, 0x09])
    wire = _wire_with_samples([sample], valid.dictionary)
    request = ExportProfilesServiceRequest.FromString(wire)
    assert list(
        request.resource_profiles[0].scope_profiles[0].profiles[0].samples[0].attribute_indices
    ) == [9]
    with pytest.raises(InvalidRequestError) as caught:
        validate_request(request, wire)
    assert str(caught.value) == (
        f"{P0}.samples[0].attribute_indices[0] 9 out of range (attribute_table has 6)"
    )


def test_values_written_twice_in_one_sample_do_not_hide_a_sample_without_any() -> None:
    # Two packed values fields in sample 0 (legal: they concatenate), none in sample 1: as many
    # values blobs as samples, but the second sample is empty.
    valid = make_request()
    doubled = pb.Sample(values=[5]).SerializeToString() * 2
    empty = pb.Sample(stack_index=1).SerializeToString()
    wire = _wire_with_samples([doubled, empty], valid.dictionary)
    request = ExportProfilesServiceRequest.FromString(wire)
    assert list(request.resource_profiles[0].scope_profiles[0].profiles[0].samples[0].values) == [
        5,
        5,
    ]
    with pytest.raises(InvalidRequestError) as caught:
        validate_request(request, wire)
    assert str(caught.value) == f"{P0}.samples[1] has neither values nor timestamps_unix_nano"


def test_a_value_written_earlier_for_a_singular_index_does_not_hide_the_last_one() -> None:
    # stack_index written twice: the message keeps the last (out of range) one.
    valid = make_request()
    sample = bytes([0x08, 0x01, 0x08, 0x63]) + pb.Sample(values=[5]).SerializeToString()
    wire = _wire_with_samples([sample], valid.dictionary)
    request = ExportProfilesServiceRequest.FromString(wire)
    with pytest.raises(InvalidRequestError) as caught:
        validate_request(request, wire)
    assert str(caught.value) == f"{P0}.samples[0].stack_index 99 out of range (stack_table has 4)"


def test_nested_references_in_attribute_table_values_are_checked() -> None:
    request = make_request()
    value = request.dictionary.attribute_table[1].value
    value.array_value.values.add(string_value_strindex=70)
    for fast in (True, False):
        with pytest.raises(InvalidRequestError) as caught:
            validate_request(request, request.SerializeToString(), fast=fast)
        assert str(caught.value) == (
            "dictionary.attribute_table[1].value.array_value.values[0].string_value_strindex 70 "
            "out of range (string_table has 15)"
        )


def test_a_table_too_large_for_the_byte_checks_is_decoded() -> None:
    request = make_request()
    strings = request.dictionary.string_table
    strings.extend(f"s{i}" for i in range(20_000))
    request.dictionary.function_table.add(name_strindex=len(strings) - 1)
    validate_request(request, request.SerializeToString())
    request.dictionary.function_table.add(name_strindex=len(strings))
    with pytest.raises(InvalidRequestError) as caught:
        validate_request(request, request.SerializeToString())
    assert str(caught.value) == (
        f"dictionary.function_table[7].name_strindex {len(strings)} out of range "
        f"(string_table has {len(strings)})"
    )


def test_the_column_view_merges_every_entry() -> None:
    request = make_request(samples_per_profile=10)
    request.dictionary.attribute_table.add(value=AnyValue(string_value_strindex=3))
    view = parse_columns(request.SerializeToString())
    assert view is not None
    packed = b"".join(view.merged("dictionary.stack_table").location_indices)
    merged = pb.Stack.FromString(_length_delimited(1, packed))
    stacks = request.dictionary.stack_table
    assert list(merged.location_indices) == [i for s in stacks for i in s.location_indices]
    assert list(view.merged("dictionary.attribute_table.value").string_value_strindex) == [3]
    assert len(view.merged("resource_profiles.scope_profiles.profiles.samples").values) == 20


def _decoded_in_range(values: List[int], size: int) -> bool:
    return all(0 <= v < size or (size == 0 and v == 0) for v in values)


@pytest.mark.parametrize("size", [0, 1, 2, 127, 128, 129, 255, 256, 300, 16255, 16256])
def test_byte_level_range_check_agrees_with_decoding(size: int) -> None:
    rng = random.Random(size)
    candidates = [0, 1, 127, 128, 129, size - 2, size - 1, size, size + 1, 16255, 16256, -1]
    candidates += [(size - 1) | 0x7F, (size - 1) & ~0x7F, ((size - 1) >> 7) << 7 | 0x7F]
    candidates += [-(2**31), 2**31 - 1, 2**21, (1 << 14) + 5]
    for _ in range(400):
        values = [rng.choice(candidates) for _ in range(rng.randrange(1, 6))]
        values = [v for v in values if -(2**31) <= v < 2**31] or [0]
        blob = b"".join(map(_varint, values))
        assert varints_in_range(blob, size) is _decoded_in_range(values, size), values


def test_byte_level_range_check_declines_huge_tables() -> None:
    assert varints_in_range(_varint(5), 16257) is None
    assert varints_in_range(b"", 16257) is True
