"""pprof (read back by ``go tool pprof``), speedscope (checked against its schema), collapsed."""

from __future__ import annotations

import gzip
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Dict

import jsonschema
import pytest

from otelprof.model import ValueType
from otelprof.reader import load_profiles
from otelprof.viewer._protobuf import MessageWriter, varint
from otelprof.viewer.collapsed import frame_text
from otelprof.viewer.commands import main_export
from tests.viewer.workloads import REPOSITORY

SPEEDSCOPE_SCHEMA = (
    REPOSITORY / "otelprof/viewer/js/node_modules/speedscope/dist/release/file-format-schema.json"
)
GO = shutil.which("go") or "/usr/local/go/bin/go"


def test_varints_match_the_protobuf_encoding():
    assert varint(0) == b"\x00"
    assert varint(1) == b"\x01"
    assert varint(300) == b"\xac\x02"
    assert varint(-1) == b"\xff" * 9 + b"\x01"  # int64 -1: ten bytes, as protobuf writes it
    message = MessageWriter().integer(1, 150).integer(2, 0).string(3, "").packed(4, [3, 270])
    assert message.to_bytes() == b"\x08\x96\x01" + b"\x1a\x00" + b"\x22\x03\x03\x8e\x02"


def _pprof_top(path: Path) -> str:
    done = subprocess.run(
        [GO, "tool", "pprof", "-top", "-nodecount=20", str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _flat_percent(top: str, function: str) -> float:
    for line in top.splitlines():
        fields = line.split()
        if len(fields) >= 6 and fields[5] == function:
            return float(fields[1].rstrip("%"))
    raise AssertionError(f"{function} not in go tool pprof -top:\n{top}")


def test_go_tool_pprof_lists_the_hot_functions_of_a_real_run(release_runs, tmp_path):
    out = tmp_path / "v1.pb.gz"
    assert main_export(["--format", "pprof", str(release_runs["v1"]), "-o", str(out)]) == 0
    assert out.read_bytes()[:2] == b"\x1f\x8b"
    top = _pprof_top(out)
    assert "Type: cpu" in top
    # v1 spends ~4x more in parse_records than in checksum: both hot, in that order.
    parse, checksum = _flat_percent(top, "parse_records"), _flat_percent(top, "checksum")
    assert parse > checksum > 5.0, top
    assert parse + checksum > 80.0, top


def test_pprof_keeps_every_sample_type_values_and_labels(shop_profiles, tmp_path):
    out = tmp_path / "shop.pb.gz"
    assert main_export(["--format", "pprof", str(shop_profiles), "-o", str(out)]) == 0
    raw = subprocess.run(
        [GO, "tool", "pprof", "-raw", str(out)], capture_output=True, text=True, check=True
    ).stdout
    assert "cpu/nanoseconds[dflt] wall/nanoseconds" in raw
    # Each row: values per type, then location ids; cpu 600 + wall 700 merged into one row.
    assert re.search(r"^\s+600\s+700:", raw, re.MULTILINE), raw
    assert re.search(r"^\s+0\s+900:", raw, re.MULTILINE), raw  # sleep_wait is wall only
    assert "thread.name:[worker-1]" in raw and "otelprof.endpoint:[GET /checkout]" in raw
    top = _pprof_top(out)
    assert _flat_percent(top, "parse_records") == pytest.approx(100 * 600 / 1050, abs=0.1)


def test_speedscope_output_validates_against_the_speedscope_schema(release_runs, tmp_path):
    assert SPEEDSCOPE_SCHEMA.exists(), (
        f"{SPEEDSCOPE_SCHEMA} is missing: `make assets` installs the speedscope npm package"
    )
    schema = json.loads(SPEEDSCOPE_SCHEMA.read_text())
    out = tmp_path / "v1.speedscope.json"
    assert main_export(["--format", "speedscope", str(release_runs["v1"]), "-o", str(out)]) == 0
    document = json.loads(out.read_text())
    # The schema file is the whole definitions set; the document is a FileFormat.File.
    jsonschema.validate(document, {**schema, "$ref": "#/definitions/FileFormat.File"})
    assert [p["name"] for p in document["profiles"]] == ["cpu (nanoseconds)", "wall (nanoseconds)"]
    frames = document["shared"]["frames"]
    cpu = document["profiles"][0]
    assert cpu["unit"] == "nanoseconds" and cpu["endValue"] == sum(cpu["weights"])
    hot = [s for s in cpu["samples"] if frames[s[-1]]["name"] in ("parse_records", "checksum")]
    assert {frames[s[-1]]["name"] for s in hot} == {"parse_records", "checksum"}
    for stack in hot:
        # Root first: the script's module frame is outermost, then main, then the leaf.
        assert [frames[i]["name"] for i in stack[:2]] == ["<module>", "main"], stack


def test_the_schema_rejects_a_broken_document():
    # Proof the validation above can fail: the same check on a document missing its weights.
    schema = json.loads(SPEEDSCOPE_SCHEMA.read_text())
    broken = {
        "$schema": "https://www.speedscope.app/file-format-schema.json",
        "shared": {"frames": [{"name": "f"}]},
        "profiles": [
            {
                "type": "sampled",
                "name": "cpu",
                "unit": "nanoseconds",
                "startValue": 0,
                "endValue": 1,
                "samples": [[0]],
            }
        ],
    }
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, {**schema, "$ref": "#/definitions/FileFormat.File"})


def _collapsed(path: Path, tmp_path: Path, *extra: str) -> Dict[str, int]:
    out = tmp_path / "out.folded"
    assert main_export(["--format", "collapsed", str(path), "-o", str(out), *extra]) == 0
    stacks = {}
    for line in out.read_text().splitlines():
        stack, _, value = line.rpartition(" ")
        stacks[stack] = int(value)
    return stacks


def test_collapsed_stacks_are_root_first_with_summed_values(shop_profiles, tmp_path):
    stacks = _collapsed(shop_profiles, tmp_path)
    main, handle = "main (shop/app.py:1)", "handle_request (shop/app.py:15)"
    assert stacks == {
        f"{main};{handle};parse_records (shop/parse.py:34)": 600,
        f"{main};{handle};checksum (shop/parse.py:58)": 300,
        f"{main};idle_poll (shop/app.py:70)": 100,
        f"{main};late_cleanup (shop/app.py:90)": 50,
    }
    wall = _collapsed(shop_profiles, tmp_path, "--type", "wall")
    assert wall[f"{main};{handle};sleep_wait (shop/app.py:80)"] == 900


def test_collapsed_totals_match_the_records(release_runs, tmp_path):
    stacks = _collapsed(release_runs["v1"], tmp_path)
    records = load_profiles([release_runs["v1"]]).records
    total = sum(r.total for r in records if r.sample_type == ValueType("cpu", "nanoseconds"))
    assert sum(stacks.values()) == total


def test_frame_text_cannot_break_the_line_format():
    from otelprof.model import Frame

    assert frame_text(Frame("a;b\nc", "x.py", 3, 1)) == "a b c (x.py:1)"


def test_export_refuses_two_types_for_collapsed_and_unknown_types(shop_profiles, tmp_path, capsys):
    out = str(tmp_path / "x")
    args = ["--format", "collapsed", str(shop_profiles), "-o", out]
    assert main_export([*args, "--type", "cpu", "--type", "wall"]) == 2
    assert "one sample type" in capsys.readouterr().err
    assert main_export(["--format", "pprof", str(shop_profiles), "-o", out, "--type", "heap"]) == 2
    assert "no 'heap' samples" in capsys.readouterr().err


def test_export_filters_apply(shop_profiles, tmp_path):
    stacks = _collapsed(shop_profiles, tmp_path, "--thread", "worker-1")
    assert list(stacks.values()) == [300]


def test_pprof_is_gzip_of_a_profile_message(shop_profiles, tmp_path):
    out = tmp_path / "p.pb.gz"
    main_export(["--format", "pprof", str(shop_profiles), "-o", str(out)])
    body = gzip.decompress(out.read_bytes())
    assert body[:1] == b"\x0a"  # field 1 (sample_type), length-delimited, comes first
