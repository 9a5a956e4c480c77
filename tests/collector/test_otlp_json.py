"""OTLP/JSON: lossless round trip, ids written as hex, hex and base64 both read."""

from __future__ import annotations

import base64
import json

import pytest

from collector_processor import otlp_json
from collector_processor.errors import InvalidRequestError

from .payloads import make_request, trace_id


def test_round_trip_is_lossless() -> None:
    request = make_request(samples_per_profile=20)
    line = otlp_json.dumps(request)
    assert "\n" not in line
    assert otlp_json.loads(line) == request


def test_ids_are_lowercase_hex_and_names_lower_camel_case() -> None:
    request = make_request()
    document = json.loads(otlp_json.dumps(request))
    link = document["dictionary"]["linkTable"][1]
    assert link["traceId"] == request.dictionary.link_table[1].trace_id.hex()
    assert link["spanId"] == request.dictionary.link_table[1].span_id.hex()
    profile = document["resourceProfiles"][0]["scopeProfiles"][0]["profiles"][0]
    assert (
        profile["profileId"]
        == request.resource_profiles[0].scope_profiles[0].profiles[0].profile_id.hex()
    )
    assert "timeUnixNano" in profile


def test_base64_ids_and_snake_case_names_are_read_too() -> None:
    document = {
        "resource_profiles": [],
        "dictionary": {
            "link_table": [
                {},
                {"trace_id": base64.b64encode(trace_id(1)).decode(), "spanId": "0102030405060708"},
            ]
        },
    }
    request = otlp_json.loads(json.dumps(document))
    assert request.dictionary.link_table[1].trace_id == trace_id(1)
    assert request.dictionary.link_table[1].span_id == bytes(range(1, 9))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "invalid JSON: "),
        ('"text"', "invalid OTLP JSON: the top level must be an object"),
        ('{"dictionary": {"stringTable": [1]}}', "invalid OTLP JSON: "),
        (b"\xff\xfe", "invalid JSON: "),
        ("[" * 100_000, "invalid JSON: nested too deeply"),
    ],
)
def test_bad_json_is_an_invalid_request(text: str, message: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        otlp_json.loads(text)
    assert str(caught.value).startswith(message)


def test_unknown_fields_are_ignored() -> None:
    assert otlp_json.loads('{"resourceProfiles": [], "futureField": 1}') == type(make_request())()
