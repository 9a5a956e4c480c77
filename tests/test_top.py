"""``otelprof top``: exact self/total numbers on hand-made profiles, filters, layout and the CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from profile_factory import (
    SPAN_A,
    SPAN_B,
    TRACE_A,
    TRACE_B,
    RequestFactory,
    S,
    frame,
    write_json_lines,
    write_pb,
)

from otelprof.model import Frame
from otelprof.reader import decode_request
from otelprof.records import ENDPOINT_ATTRIBUTE, ProfileRecord
from otelprof.top import FunctionRow, TopError, compute_top, format_top, main_top
from otelprof.units import format_percent, format_value

MS = 1_000_000
MAIN = frame("main", 5, "main.py", 1)
HANDLE = frame("handle", 30, "shop/views.py", 20)
COMPUTE = frame("compute", 12, "shop/pricing.py", 2)
WALK = frame("walk", 50, "shop/tree.py", 40)
SLEEP = frame("sleep", 3, "shop/io.py", 1)


def shop_request() -> RequestFactory:
    """cpu: compute 60ms, walk (recursive) 30ms, handle 10ms; wall adds sleep 900ms."""
    factory = RequestFactory()
    checkout = {ENDPOINT_ATTRIBUTE: "GET /checkout", "thread.name": "worker-1"}
    cart = {ENDPOINT_ATTRIBUTE: "GET /cart", "thread.name": "worker-2"}
    cpu = [
        S([COMPUTE, HANDLE, MAIN], 60 * MS, attributes=checkout, link=(TRACE_A, SPAN_A)),
        S([WALK, WALK, WALK, HANDLE, MAIN], 30 * MS, attributes=cart, link=(TRACE_B, SPAN_B)),
        S([HANDLE, MAIN], 10 * MS, attributes=checkout, link=(TRACE_A, SPAN_A)),
    ]
    wall = [S(s.stack, s.value, attributes=s.attributes, link=s.link) for s in cpu]
    wall.append(S([SLEEP, HANDLE, MAIN], 900 * MS, attributes=cart, link=(TRACE_B, SPAN_B)))
    factory.add_profile(("cpu", "nanoseconds"), cpu, resource={"service.name": "shop"})
    factory.add_profile(("wall", "nanoseconds"), wall, resource={"service.name": "shop"})
    return factory


def shop_records() -> tuple[ProfileRecord, ...]:
    return decode_request(shop_request().request(), "shop.otlp.pb")


def by_name(rows: tuple[FunctionRow, ...]) -> dict[str, tuple[tuple[int, ...], tuple[int, ...]]]:
    return {r.name: (r.self_values, r.total_values) for r in rows}


def test_self_and_total_are_exact_and_recursion_counts_once() -> None:
    table = compute_top(shop_records(), ["cpu", "wall"])
    assert [t.type for t in table.types] == ["cpu", "wall"]
    assert table.totals == (100 * MS, 1000 * MS)
    assert by_name(table.rows) == {
        "compute": ((60 * MS, 60 * MS), (60 * MS, 60 * MS)),
        "walk": ((30 * MS, 30 * MS), (30 * MS, 30 * MS)),  # three frames deep, counted once
        "handle": ((10 * MS, 10 * MS), (100 * MS, 1000 * MS)),
        "main": ((0, 0), (100 * MS, 1000 * MS)),
        "sleep": ((0, 900 * MS), (0, 900 * MS)),
    }
    assert {r.name: r.line for r in table.rows}["walk"] == 40  # the def line, not the sampled one


def test_missing_start_line_falls_back_to_the_hottest_line_and_empty_stacks_show() -> None:
    factory = RequestFactory()
    hot, cold = Frame("f", "a.py", 7, 0), Frame("f", "a.py", 9, 0)
    factory.add_profile(samples=[S([hot], 5), S([cold], 2), S([cold], 2), S([], 4)])
    table = compute_top(decode_request(factory.request()), ["cpu"])
    # f ran 5 on line 7 and 2 + 2 on line 9: its hottest line is 7.
    assert [(r.name, r.line, r.self_values) for r in table.sorted_rows("self-cpu")] == [
        ("f", 7, (9,)),
        ("[no stack]", 0, (4,)),
    ]
    assert table.totals == (13,)


def test_sorting_by_each_column_with_ties_by_name() -> None:
    table = compute_top(shop_records(), ["cpu", "wall"])
    order = {
        key: [r.name for r in table.sorted_rows(key)]
        for key in ("self-cpu", "total-cpu", "self-wall", "total-wall")
    }
    assert order["self-cpu"] == ["compute", "walk", "handle", "main", "sleep"]
    assert order["total-cpu"] == ["handle", "main", "compute", "walk", "sleep"]
    assert order["self-wall"] == ["sleep", "compute", "walk", "handle", "main"]
    assert order["total-wall"] == ["handle", "main", "sleep", "compute", "walk"]
    with pytest.raises(
        TopError, match="cannot sort by 'self-alloc'; choose one of self-cpu, total-cpu"
    ):
        table.sorted_rows("self-alloc")


GOLDEN = """\
otelprof top: 1 file, 2 profiles, service: shop
time: 2023-11-14T22:13:20Z .. 2023-11-14T22:13:30Z
total: cpu 100ms, wall 1.00s; sorted by self cpu; 5 of 5 functions

---------- cpu -----------  ---------- wall ----------
   self     %    total     %     self     %    total     %  function  file:line
 60.0ms 60.0%   60.0ms 60.0%   60.0ms  6.0%   60.0ms  6.0%  compute  shop/pricing.py:2
 30.0ms 30.0%   30.0ms 30.0%   30.0ms  3.0%   30.0ms  3.0%  walk  shop/tree.py:40
 10.0ms 10.0%    100ms  100%   10.0ms  1.0%    1.00s  100%  handle  shop/views.py:20
      -     -    100ms  100%        -     -    1.00s  100%  main  main.py:1
      -     -        -     -    900ms 90.0%    900ms 90.0%  sleep  shop/io.py:1
"""


def test_the_table_reads_exactly_like_this() -> None:
    assert format_top(shop_records()) == GOLDEN


def test_filters_by_trace_span_endpoint_thread_and_resource() -> None:
    records = shop_records()
    by_trace = format_top(records, trace_id=TRACE_B.hex(), types=["cpu"])
    assert f"filter: trace_id={TRACE_B.hex()}" in by_trace
    assert "total: cpu 30.0ms" in by_trace and "compute" not in by_trace
    by_span = format_top(records, span_id=SPAN_B.hex())
    assert "total: cpu 30.0ms, wall 930ms" in by_span
    checkout = format_top(records, endpoint="GET /checkout")
    assert "filter: endpoint='GET /checkout'" in checkout
    assert "total: cpu 70.0ms, wall 70.0ms" in checkout and "walk" not in checkout
    worker2 = format_top(records, thread="worker-2", sort="self-wall")
    assert "total: cpu 30.0ms, wall 930ms; sorted by self wall" in worker2
    assert "no samples match" in format_top(records, resource=[("service.name", "other")])
    assert "no samples match" in format_top(records, trace_id="0" * 31 + "1")


def test_other_sample_types_use_their_units() -> None:
    factory = RequestFactory()
    factory.add_profile(("alloc_space", "bytes"), [S([COMPUTE, MAIN], 3 * 2**20), S([MAIN], 2**20)])
    factory.add_profile(("alloc_objects", "count"), [S([COMPUTE, MAIN], 12_345)])
    records = decode_request(factory.request())
    text = format_top(records, types=["alloc_space", "alloc_objects"])
    assert "sorted by self alloc_space" in text
    line = next(line for line in text.splitlines() if line.endswith("shop/pricing.py:2"))
    assert line.split()[:8] == [
        "3.0MiB",
        "75.0%",
        "3.0MiB",
        "75.0%",
        "12345",
        "100%",
        "12345",
        "100%",
    ]
    with pytest.raises(
        TopError,
        match=r"no 'cpu' samples in the files \(types present: alloc_objects, alloc_space\)",
    ):
        format_top(records, types=["cpu"])
    with pytest.raises(TopError, match="at most 2 sample types"):
        format_top(records, types=["alloc_space", "alloc_objects", "cpu"])


def precise_window(factory: RequestFactory, sample_type: tuple[str, str], samples: list) -> None:
    """A precise window's profile, as the agent writes it: period type ``precise``, period 1."""
    profile = factory.add_profile(sample_type, samples, resource={"service.name": "shop"}, period=1)
    profile.period_type.type_strindex = factory.string("precise")


def test_a_precise_windows_wall_is_kept_apart_from_the_samplers_and_shown_when_asked() -> None:
    factory = shop_request()  # the sampler's cpu and wall: 1.00 s of wall in all
    precise_window(factory, ("wall", "nanoseconds"), [S([COMPUTE, HANDLE], 70 * MS)])
    precise_window(factory, ("calls", "count"), [S([COMPUTE, HANDLE], 7)])
    records = decode_request(factory.request())

    text = format_top(records)
    assert "total: cpu 100ms, wall 1.00s;" in text  # not 1.07 s: nothing of the window's
    compute = next(line for line in text.splitlines() if "compute" in line)
    assert compute.split()[4:8] == ["60.0ms", "6.0%", "60.0ms", "6.0%"]
    assert compute_top(records, ["wall"]).totals == (1000 * MS,)

    precise = format_top(records, types=["wall:precise", "calls"])
    assert "total: wall:precise 70.0ms, calls 7; sorted by self wall:precise;" in precise
    assert compute_top(records, ["wall:precise"]).totals == (70 * MS,)
    with pytest.raises(TopError, match=r"types present: calls, cpu, wall, wall:precise\)"):
        format_top(records, types=["exact"])


def test_window_series_keep_their_names_whatever_else_the_files_hold() -> None:
    # `otelprof run --precise` on a short program: a precise window and no sampler sample. The
    # docs' `--type wall:precise` must work there too, and must not be the sampler's `wall`.
    factory = RequestFactory()
    precise_window(factory, ("wall", "nanoseconds"), [S([COMPUTE, HANDLE], 70 * MS)])
    precise_window(factory, ("calls", "count"), [S([COMPUTE, HANDLE], 7)])
    only_precise = decode_request(factory.request())
    assert compute_top(only_precise, ["wall:precise", "calls"]).totals == (70 * MS, 7)
    with pytest.raises(TopError, match=r"types present: calls, wall:precise\)"):
        format_top(only_precise, types=["wall"])

    # Memory windows' heap profiles (period type `space`) keep their names when a leak profile
    # (period type `leak`) is there too: `--type inuse_space` is the window's, as documented.
    factory = RequestFactory()
    for sample_type, period_type, value in (
        (("inuse_space", "bytes"), "space", 4096),
        (("inuse_space", "bytes"), "leak", 1024),
        (("alloc_space", "bytes"), "space", 4096),
    ):
        profile = factory.add_profile(sample_type, [S([COMPUTE, HANDLE], value)], period=1)
        profile.period_type.type_strindex = factory.string(period_type)
    memory = decode_request(factory.request())
    assert compute_top(memory, ["inuse_space", "inuse_space:leak"]).totals == (4096, 1024)


def test_view_diff_and_export_keep_a_precise_windows_wall_apart_too(tmp_path, capsys) -> None:
    from otelprof.viewer.commands import main_export

    factory = shop_request()
    precise_window(factory, ("wall", "nanoseconds"), [S([COMPUTE, HANDLE], 70 * MS)])
    path = write_pb(tmp_path / "p.otlp.pb", factory.request())

    def collapsed_total(sample_type: str) -> int:
        out = tmp_path / f"{sample_type}.txt"
        assert (
            main_export(["--format", "collapsed", "--type", sample_type, str(path), "-o", str(out)])
            == 0
        )
        return sum(int(line.rsplit(" ", 1)[1]) for line in out.read_text().splitlines())

    assert collapsed_total("wall") == 1000 * MS
    assert collapsed_total("wall:precise") == 70 * MS


def test_every_line_fits_in_100_columns_and_long_names_lose_the_path_first() -> None:
    factory = RequestFactory()
    long_path = "/srv/app/.venv/lib/python3.11/site-packages/shop/services/payments/handlers.py"
    deep = Frame("handle_checkout_request", long_path, 31, 30)
    huge = Frame("x" * 150, "/very/long/" + "d/" * 40 + "mod.py", 3, 2)
    factory.add_profile(samples=[S([deep], 5), S([huge], 1)])
    text = format_top(decode_request(factory.request()))
    assert max(len(line) for line in text.splitlines()) <= 100
    assert (
        "handle_checkout_request  shop/services/payments/handlers.py:30" in text
    )  # venv prefix dropped
    huge_line = text.splitlines()[-1]
    assert huge_line.endswith("...  mod.py:2") and len(huge_line) == 100


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [
        (0, "nanoseconds", "-"),
        (4_000, "nanoseconds", "<0.01ms"),
        (1_234_567, "nanoseconds", "1.23ms"),
        (12_340_000, "nanoseconds", "12.3ms"),
        (999_400_000, "nanoseconds", "999ms"),
        (999_600_000, "nanoseconds", "1.00s"),
        (45_600_000_000, "nanoseconds", "45.6s"),
        (123_000, "microseconds", "123ms"),
        (512, "bytes", "512B"),
        (1536, "bytes", "1.5KiB"),
        (5 * 1024**3, "bytes", "5.0GiB"),
        (999, "count", "999"),
        (12_345, "count", "12345"),  # exact: calls are checked against the program
        (9_999_999, "count", "9999999"),
        (12_345_678, "count", "12.3M"),
    ],
)
def test_human_units(value: int, unit: str, text: str) -> None:
    assert format_value(value, unit) == text
    assert len(format_value(value, unit)) <= 7


def test_percentages() -> None:
    assert [format_percent(v, 1000) for v in (0, 1000, 999, 1, 0)] == [
        "-",
        "100%",
        "99.9%",
        "0.1%",
        "-",
    ]
    assert format_percent(1, 10_000) == "<0.1%"
    assert format_percent(5, 0) == "-"


# --- command line ------------------------------------------------------------------------------


def test_cli_prints_the_table_for_files_and_directories(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_pb(tmp_path / "run" / "1.otlp.pb", shop_request().request())
    assert main_top([str(tmp_path / "run"), "--limit", "2", "--sort", "total-wall"]) == 0
    out = capsys.readouterr()
    assert out.err == ""
    lines = out.out.splitlines()
    assert lines[2] == "total: cpu 100ms, wall 1.00s; sorted by total wall; 2 of 5 functions"
    assert [line.split()[-2] for line in lines[6:]] == ["handle", "main"]


def test_cli_reads_collector_json_and_warns_about_bad_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_json_lines(tmp_path / "profiles.json", shop_request().request())
    (tmp_path / "broken.otlp.pb").write_bytes(b"\x0a\xff")
    code = main_top([str(tmp_path), "--endpoint", "GET /cart", "--type", "wall"])
    out = capsys.readouterr()
    assert code == 0
    assert out.err.startswith(
        f"otelprof top: warning: {tmp_path / 'broken.otlp.pb'}: not an OTLP profiles file"
    )
    assert "total: wall 930ms" in out.out


def test_ids_copied_with_a_0x_prefix_are_accepted(tmp_path: Path, capsys) -> None:
    # The SDK's console exporter prints "trace_id": "0x0af7..."; a copy-paste must work.
    path = write_pb(tmp_path / "1.otlp.pb", shop_request().request())
    assert main_top([str(path), "--trace-id", "0x" + TRACE_B.hex(), "--type", "cpu"]) == 0
    assert "total: cpu 30.0ms" in capsys.readouterr().out
    assert main_top([str(path), "--span-id", "0X" + SPAN_B.hex().upper()]) == 0
    assert "total: cpu 30.0ms, wall 930ms" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--trace-id", "abc"], "argument --trace-id: trace id must be 32 hex digits, got 'abc'"),
        (["--span-id", "z" * 16], "argument --span-id: span id must be 16 hex digits"),
        (["--limit", "-1"], "argument --limit: must be a whole number >= 0, got '-1'"),
        (["--resource", "service.name"], "argument --resource: must be KEY=VALUE"),
        (
            ["--type", "alloc_space"],
            "error: no 'alloc_space' samples in the files (types present: cpu, wall)",
        ),
        (["--sort", "self-alloc"], "error: cannot sort by 'self-alloc'"),
        (["--sort", "fastest"], "error: cannot sort by 'fastest'"),
    ],
)
def test_cli_bad_arguments_exit_2_with_a_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    path = write_pb(tmp_path / "1.otlp.pb", shop_request().request())
    assert main_top([str(path), *args]) == 2
    out = capsys.readouterr()
    assert message in out.err and out.out == ""


def test_cli_without_readable_files_exits_2_naming_each_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.otlp.pb"
    bad.write_bytes(b"\xff\xff")
    assert main_top([str(bad), str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(
        f"otelprof top: error: {tmp_path / 'missing'}: no such file or directory"
    )
    assert err[1].startswith(f"otelprof top: error: {bad}: not an OTLP profiles file")
    assert err[2] == "otelprof top: error: no readable profile files"
    assert main_top([]) == 2  # argparse: PATH is required


def test_cli_exit_codes_in_a_real_process(tmp_path: Path) -> None:
    path = write_pb(tmp_path / "1.otlp.pb", shop_request().request())
    code = "import sys; from otelprof.top import main_top; sys.exit(main_top(sys.argv[1:]))"
    root = Path(__file__).resolve().parent.parent
    ok = subprocess.run(
        [sys.executable, "-c", code, str(path)],
        check=False,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (ok.returncode, ok.stderr) == (0, "")
    assert ok.stdout == format_top(decode_request(shop_request().request(), str(path)))
    bad = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "nope")],
        check=False,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "nope: no such file or directory" in bad.stderr
