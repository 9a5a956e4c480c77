"""The protobuf fast path: it vouches only for requests the full parser decodes and validation
accepts, forwards what the full message would, and leaves every problem to the exact path."""

from __future__ import annotations

import random
from typing import Any, Callable, List

import pytest
from google.protobuf.descriptor import FieldDescriptor
from opentelemetry.proto.collector.profiles.v1development.profiles_service_pb2 import (
    ExportProfilesServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.profiles.v1development import profiles_pb2 as pb

from collector_processor.errors import InvalidRequestError
from collector_processor.fastpath import vouch
from collector_processor.normalize import resolve_string_references
from collector_processor.validation import validate_request

from .payloads import make_request, sample_count
from .test_validation import CASES


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _reversed_encoding(message: Any) -> bytes:
    """``message`` with the fields of every message written last to first, as the
    Collector's encoder does."""
    out = bytearray()
    for field, value in reversed(message.ListFields()):
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            for item in value if field.is_repeated else [value]:
                body = _reversed_encoding(item)
                out += _varint(field.number << 3 | 2) + _varint(len(body)) + body
        else:
            single = type(message)()
            if field.is_repeated:
                getattr(single, field.name).extend(value)
            else:
                setattr(single, field.name, value)
            out += single.SerializeToString()
    return bytes(out)


_VARINT_TYPES = {
    FieldDescriptor.TYPE_INT32,
    FieldDescriptor.TYPE_INT64,
    FieldDescriptor.TYPE_UINT32,
    FieldDescriptor.TYPE_UINT64,
    FieldDescriptor.TYPE_BOOL,
}


def _only(message: Any, field: Any, value: Any) -> bytes:
    """The encoding of ``message``'s ``field`` set to ``value`` alone."""
    single = type(message)()
    if field.is_repeated:
        getattr(single, field.name).extend(value)
    else:
        setattr(single, field.name, value)
    return bytes(single.SerializeToString())


def _element(field: Any, value: int) -> bytes:
    if field.type == FieldDescriptor.TYPE_FIXED64:
        return _varint(field.number << 3 | 1) + (value % 2**64).to_bytes(8, "little")
    return _varint(field.number << 3) + _varint(value % 2**64)


def _odd_encoding(message: Any, rng: random.Random, odd: float) -> bytes:
    """A legal encoding of ``message`` with fields in any order and, each with probability
    ``odd``, unusual forms: repeated numbers unpacked, split or next to an empty packed
    field, singular numbers written twice (the last one counts), unknown fields."""
    out = bytearray()
    fields = message.ListFields()
    rng.shuffle(fields)
    for field, value in fields:
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            for item in value if field.is_repeated else [value]:
                body = _odd_encoding(item, rng, odd)
                out += _varint(field.number << 3 | 2) + _varint(len(body)) + body
        elif (
            field.is_repeated
            and (field.type in _VARINT_TYPES or field.type == FieldDescriptor.TYPE_FIXED64)
            and rng.random() < odd
        ):
            choice = rng.randrange(4)
            if choice == 0:
                out += b"".join(_element(field, item) for item in value)
            elif choice == 1 and len(value) > 1:
                out += _only(message, field, value[:1]) + _only(message, field, value[1:])
            else:  # an empty packed field next to the real one
                out += _only(message, field, value) + _varint(field.number << 3 | 2) + b"\x00"
        else:
            if field.type in _VARINT_TYPES and not field.is_repeated and rng.random() < odd:
                out += _element(field, int(value) + 1)  # overwritten by the next one
            out += _only(message, field, value)
    if rng.random() < odd:
        out += bytes([0xA0, 0x06, 0x01])  # field 100
    return bytes(out)


def _known(request: ExportProfilesServiceRequest) -> ExportProfilesServiceRequest:
    """``request`` without unknown fields (which encodings may place differently)."""
    request.DiscardUnknownFields()
    return request


def _semantic_mutation(request: ExportProfilesServiceRequest, rng: random.Random) -> None:
    """Maybe break one rule of validation in ``request``."""
    profile = request.resource_profiles[0].scope_profiles[0].profiles[rng.randrange(2)]
    sample = profile.samples[rng.randrange(len(profile.samples))]
    choice = rng.randrange(8)
    if choice == 0:
        del sample.values[:]
    elif choice == 1:
        del sample.values[:]
        del sample.timestamps_unix_nano[:]
    elif choice == 2:
        sample.values.append(7)
    elif choice == 3:
        sample.stack_index = len(request.dictionary.stack_table)
    elif choice == 4:
        sample.attribute_indices.append(len(request.dictionary.attribute_table))


def _agent_like(request: ExportProfilesServiceRequest) -> ExportProfilesServiceRequest:
    for profile in request.resource_profiles[0].scope_profiles[0].profiles:
        for sample in profile.samples:
            del sample.timestamps_unix_nano[:]
    return request


def _forwarded(wire: bytes) -> ExportProfilesServiceRequest:
    """What the fast path forwards for ``wire``, decoded."""
    vouched = vouch(wire)
    assert vouched is not None
    resolve_string_references(vouched.request)
    return ExportProfilesServiceRequest.FromString(vouched.request.SerializeToString())


def _expected(wire: bytes) -> ExportProfilesServiceRequest:
    request = ExportProfilesServiceRequest.FromString(wire)
    resolve_string_references(request)
    return request


@pytest.mark.parametrize(
    "encode",
    [
        lambda r: r.SerializeToString(),
        _reversed_encoding,
    ],
    ids=["python-order", "collector-order"],
)
@pytest.mark.parametrize(
    "make",
    [lambda: make_request(samples_per_profile=40), lambda: _agent_like(make_request())],
    ids=["values-and-timestamps", "values-only"],
)
def test_valid_requests_are_vouched_for_and_forwarded_unchanged(
    make: Callable[[], ExportProfilesServiceRequest],
    encode: Callable[[ExportProfilesServiceRequest], bytes],
) -> None:
    request = make()
    wire = encode(request)
    assert ExportProfilesServiceRequest.FromString(wire) == request
    vouched = vouch(wire)
    assert vouched is not None
    assert (vouched.profiles, vouched.samples) == (2, sample_count(request))
    assert _forwarded(wire) == _expected(wire)


def test_string_references_in_resources_are_resolved_on_the_head() -> None:
    request = make_request()
    strings = request.dictionary.string_table
    request.resource_profiles[0].resource.attributes.add(key_strindex=3).value.CopyFrom(
        AnyValue(string_value_strindex=4)
    )
    wire = request.SerializeToString()
    forwarded = _forwarded(wire)
    added = forwarded.resource_profiles[0].resource.attributes[-1]
    assert (added.key, added.value.string_value) == (strings[3], strings[4])
    assert forwarded == _expected(wire)


@pytest.mark.parametrize(("mutate", "message"), CASES, ids=[c[1][:60] for c in CASES])
def test_no_rule_is_vouched_past(mutate: Callable[[Any], None], message: str) -> None:
    request = make_request()
    mutate(request)
    assert vouch(request.SerializeToString()) is None
    assert vouch(_reversed_encoding(request)) is None


def test_unpacked_indices_next_to_an_empty_values_field_are_not_vouched_for() -> None:
    request = make_request()
    valid = request.resource_profiles[0].scope_profiles[0].profiles[0].samples[0]
    unpacked = pb.Sample(values=[5]).SerializeToString() + bytes([0x10, 0x01])
    empty_values = pb.Sample(stack_index=1).SerializeToString() + bytes([0x22, 0x00])
    samples = [valid.SerializeToString(), unpacked, unpacked, empty_values]
    profile = b"".join(bytes([0x12]) + _varint(len(s)) + s for s in samples)
    scope = bytes([0x12]) + _varint(len(profile)) + profile
    resource = bytes([0x12]) + _varint(len(scope)) + scope
    dictionary = request.dictionary.SerializeToString()
    wire = bytes([0x0A]) + _varint(len(resource)) + resource
    wire += bytes([0x12]) + _varint(len(dictionary)) + dictionary
    assert not _reference(wire)
    assert vouch(wire) is None


def test_nested_attribute_values_and_empty_requests_take_the_exact_path() -> None:
    request = make_request()
    request.dictionary.attribute_table[1].value.array_value.values.add(string_value="x")
    assert vouch(request.SerializeToString()) is None
    assert vouch(ExportProfilesServiceRequest().SerializeToString()) is None


def test_invalid_utf8_in_a_dictionary_string_is_not_vouched_for() -> None:
    request = make_request()
    request.dictionary.attribute_table[1].value.string_value = "\u00e9t\u00e9"
    wire = request.SerializeToString()
    broken = wire.replace("\u00e9t\u00e9".encode(), b"\xe9t\xe9")
    assert len(broken) != len(wire) and vouch(wire) is not None
    with pytest.raises(Exception):  # noqa: B017 - whatever the full parser raises
        ExportProfilesServiceRequest.FromString(broken)
    assert vouch(broken) is None


def _big_tables(request: ExportProfilesServiceRequest, seed: int) -> ExportProfilesServiceRequest:
    """``request`` with dictionary tables past 128 entries: indices of two varint bytes."""
    rng = random.Random(seed)
    d = request.dictionary
    d.string_table.extend(f"s{i}" for i in range(300))
    for _ in range(200):
        d.function_table.add(name_strindex=rng.randrange(len(d.string_table)))
    for _ in range(200):
        d.location_table.add().lines.add(function_index=rng.randrange(len(d.function_table)))
    for _ in range(150):
        d.stack_table.add(location_indices=[rng.randrange(len(d.location_table)) for _ in range(5)])
    for profile in request.resource_profiles[0].scope_profiles[0].profiles:
        for sample in profile.samples:
            sample.stack_index = rng.randrange(len(d.stack_table))
    return request


@pytest.mark.parametrize("big", [False, True], ids=["one-byte-indices", "two-byte-indices"])
def test_a_packed_index_field_cut_short_is_not_vouched_for(big: bool) -> None:
    request = make_request()
    if big:
        _big_tables(request, 1)
    assert vouch(request.SerializeToString()) is not None
    # Two more stacks: the first one's packed indices end inside a varint (0x85); joined with
    # the next one's they would read as a valid index.
    dictionary = request.dictionary.SerializeToString()
    dictionary += bytes([0x3A, 3, 0x0A, 1, 0x85, 0x3A, 3, 0x0A, 1, 0x01])
    request.ClearField("dictionary")
    broken = request.SerializeToString() + bytes([0x12]) + _varint(len(dictionary)) + dictionary
    with pytest.raises(Exception):  # noqa: B017 - whatever the full parser raises
        ExportProfilesServiceRequest.FromString(broken)
    assert vouch(broken) is None


def test_differential_on_unusual_encodings() -> None:
    rng = random.Random(1121)
    vouched = declined_valid = invalid = 0
    for case in range(600):
        request = make_request(samples_per_profile=6, seed=case % 5)
        if case % 2:
            _agent_like(request)
        if case % 3 == 0:
            _big_tables(request, case)
        _semantic_mutation(request, rng)
        wire = _odd_encoding(request, rng, rng.choice((0.0, 0.002, 0.01, 0.05)))
        assert _known(ExportProfilesServiceRequest.FromString(wire)) == request
        valid = _reference(wire)
        invalid += not valid
        if vouch(wire) is None:
            declined_valid += valid
            continue
        assert valid, wire.hex()
        assert _known(_forwarded(wire)) == _known(_expected(wire)), wire.hex()
        vouched += 1
    assert vouched > 50 and declined_valid > 50 and invalid > 50, (vouched, declined_valid)


def _mutations(wire: bytes, rng: random.Random) -> bytes:
    data = bytearray(wire)
    kind = rng.randrange(6)
    position = rng.randrange(len(data))
    if kind == 0:  # one byte changed
        data[position] = rng.randrange(256)
    elif kind == 1:  # one byte nudged (an index or a length off by a little)
        data[position] = (data[position] + rng.choice((-2, -1, 1, 2))) % 256
    elif kind == 2:  # cut short
        del data[position:]
    elif kind == 3:  # bytes dropped
        del data[position : position + rng.randrange(1, 8)]
    elif kind == 4:  # a stretch repeated (a field written twice, say)
        end = min(len(data), position + rng.randrange(1, 40))
        data[end:end] = data[position:end]
    else:  # a high bit set: a varint runs on
        data[position] |= 0x80
    return bytes(data)


def _reference(wire: bytes) -> bool:
    """Whether the full parser decodes ``wire`` and exact validation accepts it."""
    try:
        request = ExportProfilesServiceRequest.FromString(wire)
    except Exception:
        return False
    if not request.resource_profiles:
        return True
    try:
        validate_request(request, fast=False)
    except InvalidRequestError:
        return False
    return True


def test_differential_against_the_full_parser_and_exact_validation() -> None:
    rng = random.Random(20261121)
    bases: List[bytes] = []
    for seed in range(3):
        request = make_request(samples_per_profile=8, seed=seed)
        request.dictionary.attribute_table[2].value.string_value_strindex = 3
        bases += [request.SerializeToString(), _reversed_encoding(_agent_like(request))]
        big = _big_tables(make_request(samples_per_profile=8, seed=seed), seed)
        bases += [big.SerializeToString(), _reversed_encoding(big)]
    vouched = declined_valid = 0
    for case in range(4000):
        wire = _mutations(bases[case % len(bases)], rng)
        if rng.random() < 0.3:
            wire = _mutations(wire, rng)
        valid = _reference(wire)
        if vouch(wire) is None:
            declined_valid += valid
            continue
        assert valid, wire.hex()
        assert _forwarded(wire) == _expected(wire), wire.hex()
        vouched += 1
    # The mutations must reach both sides, or this test proves nothing.
    assert vouched > 100 and declined_valid > 5, (vouched, declined_valid)
