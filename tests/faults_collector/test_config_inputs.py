"""Hostile configuration input: every problem is a ConfigError naming where, never a traceback
or a hang (inputs the config fuzzer in benchmarks/fuzz_collector.py found or aims at)."""

from __future__ import annotations

from pathlib import Path

import pytest

from collector_processor.config import load_config
from collector_processor.confparse import ConfigError
from collector_processor.overrides import MAX_NODES

PIPELINE = (
    "exporters: {file: {path: /dev/null}}\n"
    "service: {pipelines: {profiles: {receivers: [otlp], exporters: [file]}}}\n"
)


def alias_bomb(levels: int) -> str:
    """Each level lists the previous one ten times: 10**levels values from a few lines."""
    lines = ["l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    for level in range(1, levels):
        lines.append(f"l{level}: &l{level} [" + ", ".join([f"*l{level - 1}"] * 10) + "]")
    return "\n".join(lines) + "\n"


CASES = [
    ("alias_cycle_list", "a: &a [*a]\n", "nested deeper than 64 levels"),
    ("alias_cycle_mapping", "receivers: &r {otlp: *r}\n", "nested deeper than 64 levels"),
    ("alias_bomb", alias_bomb(9), f"more than {MAX_NODES} values"),
    ("deep_nesting", "a: " + "[" * 3000 + "]" * 3000 + "\n", "nested too deeply"),
    (
        "superscript_port",
        "receivers: {otlp: {protocols: {grpc: {endpoint: 'h:\u00b2'}}}}\n" + PIPELINE,
        'receivers::otlp::protocols::grpc::endpoint: "h:\u00b2" must be host:port',
    ),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_hostile_yaml_is_a_config_error(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config([str(path)])
    assert expected in str(caught.value)


def test_a_config_that_is_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_bytes(b"receivers:\n  otlp: \xff\n")
    with pytest.raises(ConfigError, match=r"config.yaml: not UTF-8 text \(byte 19\)"):
        load_config([str(path)])


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("service::pipelines::profiles::exporters::\u00b2=file", "not a valid index"),
        ("receivers::otlp=&a [*a]", "--set receivers::otlp: nested deeper than 64 levels"),
        ("receivers::otlp=" + "[" * 3000, "--set value"),
    ],
    ids=["superscript_index", "alias_cycle", "deep_value"],
)
def test_hostile_overrides_are_config_errors(tmp_path: Path, override: str, expected: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("receivers: {otlp: {protocols: {http: {}}}}\n" + PIPELINE)
    with pytest.raises(ConfigError) as caught:
        load_config([str(path)], [override])
    assert expected in str(caught.value)
