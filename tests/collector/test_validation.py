"""Request validation: every structural rule, each with the exact message it produces."""

from __future__ import annotations

from typing import Any, Callable

import pytest

from collector_processor.errors import InvalidRequestError
from collector_processor.validation import validate_request

from .payloads import make_request

P0 = "resource_profiles[0].scope_profiles[0].profiles[0]"


def _set(path: Callable[[Any], Any], field: str, value: Any) -> Callable[[Any], None]:
    def mutate(request: Any) -> None:
        setattr(path(request), field, value)

    return mutate


def dictionary(request: Any) -> Any:
    return request.dictionary


def profile(request: Any) -> Any:
    return request.resource_profiles[0].scope_profiles[0].profiles[0]


def sample(request: Any) -> Any:
    return profile(request).samples[2]


def _append(path: Callable[[Any], Any], value: int) -> Callable[[Any], None]:
    def mutate(request: Any) -> None:
        path(request).append(value)

    return mutate


def _clear_values(request: Any) -> None:
    del sample(request).values[:]
    del sample(request).timestamps_unix_nano[:]


def _extra_value(request: Any) -> None:
    sample(request).values.append(5)


def _resource_key_reference(request: Any) -> None:
    request.resource_profiles[0].resource.attributes.add(key_strindex=40)


def _scope_value_reference(request: Any) -> None:
    scope = request.resource_profiles[0].scope_profiles[0].scope
    scope.attributes.add(key="a").value.string_value_strindex = 16


def _attribute_table_value_reference(request: Any) -> None:
    request.dictionary.attribute_table[2].value.string_value_strindex = 99


def _link_zero_not_empty(request: Any) -> None:
    request.dictionary.link_table[0].span_id = b"\x01" * 8


CASES = [
    (
        _resource_key_reference,
        "resource_profiles[0].resource.attributes[1].key_strindex 40 out of range "
        "(string_table has 15)",
    ),
    (
        _scope_value_reference,
        "resource_profiles[0].scope_profiles[0].scope.attributes[0].value.string_value_strindex "
        "16 out of range (string_table has 15)",
    ),
    (
        _attribute_table_value_reference,
        "dictionary.attribute_table[2].value.string_value_strindex 99 out of range "
        "(string_table has 15)",
    ),
    (
        _set(sample, "stack_index", 99),
        f"{P0}.samples[2].stack_index 99 out of range (stack_table has 4)",
    ),
    (
        _set(sample, "stack_index", -1),
        f"{P0}.samples[2].stack_index -1 out of range (stack_table has 4)",
    ),
    (
        _set(sample, "link_index", 40),
        f"{P0}.samples[2].link_index 40 out of range (link_table has 9)",
    ),
    (
        _append(lambda r: sample(r).attribute_indices, 77),
        f"{P0}.samples[2].attribute_indices[2] 77 out of range (attribute_table has 6)",
    ),
    (_clear_values, f"{P0}.samples[2] has neither values nor timestamps_unix_nano"),
    (_extra_value, f"{P0}.samples[2] has 2 values but 1 timestamps_unix_nano"),
    (
        _set(lambda r: profile(r).sample_type, "type_strindex", 500),
        f"{P0}.sample_type.type_strindex 500 out of range (string_table has 15)",
    ),
    (
        _set(lambda r: profile(r).period_type, "unit_strindex", 21),
        f"{P0}.period_type.unit_strindex 21 out of range (string_table has 15)",
    ),
    (_set(profile, "profile_id", b"\x01" * 5), f"{P0}.profile_id must be 16 bytes or empty, got 5"),
    (
        _append(lambda r: profile(r).attribute_indices, 6),
        f"{P0}.attribute_indices[0] 6 out of range (attribute_table has 6)",
    ),
    (
        _set(lambda r: r.dictionary.link_table[3], "trace_id", b"\x01" * 17),
        "dictionary.link_table[3].trace_id must be 16 bytes or empty, got 17",
    ),
    (
        _link_zero_not_empty,
        "dictionary.link_table[0] must be the zero link (empty or all-zero ids)",
    ),
    (
        _set(lambda r: r.dictionary.function_table[2], "filename_strindex", 20),
        "dictionary.function_table[2].filename_strindex 20 out of range (string_table has 15)",
    ),
    (
        _set(lambda r: r.dictionary.location_table[1], "mapping_index", 3),
        "dictionary.location_table[1].mapping_index 3 out of range (mapping_table has 1)",
    ),
    (
        _set(lambda r: r.dictionary.location_table[2].lines[0], "function_index", 9),
        "dictionary.location_table[2].lines[0].function_index 9 "
        "out of range (function_table has 6)",
    ),
    (
        _append(lambda r: r.dictionary.location_table[1].attribute_indices, 8),
        "dictionary.location_table[1].attribute_indices[1] 8 out of range (attribute_table has 6)",
    ),
    (
        _set(lambda r: r.dictionary.attribute_table[1], "key_strindex", 33),
        "dictionary.attribute_table[1].key_strindex 33 out of range (string_table has 15)",
    ),
    (
        _append(lambda r: r.dictionary.mapping_table[0].attribute_indices, 6),
        "dictionary.mapping_table[0].attribute_indices[0] 6 out of range (attribute_table has 6)",
    ),
]


def test_a_realistic_request_is_valid() -> None:
    request = make_request(samples_per_profile=50)
    validate_request(request)
    validate_request(request, request.SerializeToString())
    validate_request(request, fast=False)


@pytest.mark.parametrize("fast", [False, True], ids=["exact-path", "fast-path"])
@pytest.mark.parametrize(("mutate", "message"), CASES, ids=[c[1][:60] for c in CASES])
def test_each_rule_names_the_problem(
    mutate: Callable[[Any], None], message: str, fast: bool
) -> None:
    request = make_request()
    mutate(request)
    with pytest.raises(InvalidRequestError) as caught:
        validate_request(request, request.SerializeToString(), fast=fast)
    assert str(caught.value) == message


@pytest.mark.parametrize("fast", [False, True], ids=["exact-path", "fast-path"])
def test_string_table_must_start_with_the_empty_string(fast: bool) -> None:
    request = make_request()
    request.dictionary.string_table[0] = "x"
    with pytest.raises(InvalidRequestError, match=r'string_table\[0\] must be ""'):
        validate_request(request, fast=fast)


@pytest.mark.parametrize("fast", [False, True], ids=["exact-path", "fast-path"])
def test_index_zero_into_an_empty_table_means_not_set(fast: bool) -> None:
    request = make_request()
    del request.dictionary.link_table[:]
    for profile_ in request.resource_profiles[0].scope_profiles[0].profiles:
        for sample_ in profile_.samples:
            sample_.link_index = 0
    validate_request(request, fast=fast)
    profile(request).samples[0].link_index = 1
    with pytest.raises(
        InvalidRequestError, match=r"link_index 1 out of range \(link_table has 0\)"
    ):
        validate_request(request, fast=fast)


@pytest.mark.parametrize("fast", [False, True], ids=["exact-path", "fast-path"])
def test_link_zero_may_hold_all_zero_ids(fast: bool) -> None:
    request = make_request()
    request.dictionary.link_table[0].trace_id = bytes(16)
    request.dictionary.link_table[0].span_id = bytes(8)
    validate_request(request, fast=fast)
