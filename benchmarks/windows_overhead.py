"""What precise and memory windows cost: while open, and in total under the overhead governor.

    python benchmarks/windows_overhead.py            # about an hour on a 2-core machine
    python benchmarks/windows_overhead.py --part 1   # only: each window kind while open
    python benchmarks/windows_overhead.py --part 2   # only: in total, governor on
    python benchmarks/windows_overhead.py --part depth  # only: tracemalloc cost by depth
    python benchmarks/windows_overhead.py --quick    # a few minutes, to check the script

Part 1, while open: the web workload runs with an on-demand window of one kind opened before
the program starts and closed at exit (this script wraps the workload: ``--inside KIND``), so
the work phase's CPU ratio against a bare run is the window's own cost; the sampler alone, GC
profiling and the whole-run ``otelprof run --memory`` (heap snapshots every 10 s) are measured
the same way as references. Part 2, in total: the web workload runs about 80 s of CPU at the
default settings (budget 1% of process CPU), without windows, and with windows ten times denser
under a 5% budget (so that the governor, not the schedule, decides); the overhead is the process
CPU ratio against a bare run, and the governor's own account of it comes from the exported
profiles' attributes. Part "depth": tracemalloc's cost by traceback depth on a micro-benchmark.

Reuses the overhead harness (``benchmarks/harness.py``): one process per run, configurations
interleaved round-robin, medians reported. Never part of CI.
"""

from __future__ import annotations

import argparse
import json
import math
import runpy
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Mapping, Sequence

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.configs import BARE, Config, RunContext
from benchmarks.harness import Run, Workload, interleave, runs_to_json

RESULTS = Path(__file__).resolve().parent / "results" / "windows_overhead.json"  # _partN
HERE = str(Path(__file__).resolve())

NO_WINDOWS = {
    "OTEL_PYTHON_PROFILER_PRECISE_WINDOW": "0",
    "OTEL_PYTHON_PROFILER_MEMORY_WINDOW": "0",
}


def _otelprof(name: str, description: str, flags: Sequence[str], env: Mapping[str, str]) -> Config:
    def argv(ctx: RunContext) -> List[str]:
        out = str(ctx.out_dir / "otelprof")
        return [ctx.python, "-m", "otelprof", "run", *flags, "--output", out, "--", *ctx.workload]

    return Config(name=name, description=description, argv=argv, env=lambda ctx: dict(env))


def _window(name: str, description: str, kind: str, env: Mapping[str, str]) -> Config:
    def argv(ctx: RunContext) -> List[str]:
        return [ctx.python, HERE, "--inside", kind, "--", *ctx.workload]

    def environment(ctx: RunContext) -> Mapping[str, str]:
        return {**env, "OTEL_PYTHON_PROFILER_OUTPUT_DIR": str(ctx.out_dir / "otelprof")}

    return Config(name=name, description=description, argv=argv, env=environment)


WHILE_OPEN = [
    BARE,
    _otelprof(
        "sampler",
        "stack sampler only (no windows, no GC profiling)",
        (),
        {**NO_WINDOWS, "OTEL_PYTHON_PROFILER_GC": "false"},
    ),
    _otelprof("sampler+gc", "stack sampler and GC profiling, no windows", (), NO_WINDOWS),
    _window("precise-wall", "a yappi window (wall clock) open all along", "precise", {}),
    _window(
        "precise-cpu",
        "a yappi window (CPU clock) open all along",
        "precise",
        {"OTEL_PYTHON_PROFILER_PRECISE_CLOCK": "cpu"},
    ),
    _window("memory", "a tracemalloc window (depth 8) open all along", "memory", {}),
    _otelprof(
        "memory-whole-run",
        "otelprof run --memory (depth 8, heap snapshot and leak check every 10 s)",
        ("--memory",),
        {},
    ),
]

IN_TOTAL = [
    BARE,
    _otelprof(
        "no-windows",
        "otelprof run without windows and GC profiling (the always-on parts only)",
        (),
        {**NO_WINDOWS, "OTEL_PYTHON_PROFILER_GC": "false"},
    ),
    _otelprof("defaults", "otelprof run at its defaults (budget 1%)", (), {}),
    _otelprof(
        "dense-5%",
        "windows ten times denser (precise every 60 s, memory every 360 s), budget 5%",
        (),
        {
            "OTEL_PYTHON_PROFILER_PRECISE_INTERVAL": "60",
            "OTEL_PYTHON_PROFILER_MEMORY_INTERVAL": "360",
            "OTEL_PYTHON_PROFILER_OVERHEAD_BUDGET": "0.05",
        },
    ),
]


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _governor_account(keep_dir: Path, run: Run) -> Dict[str, Any]:
    """The counters of the last export of a run (profile attributes), read back from its files."""
    from otelprof.reader import load_profiles

    pattern = f"*-{run.workload}-{run.config}-{run.mode}-{run.round}"
    directories = [d / "otelprof" for d in keep_dir.glob(pattern) if (d / "otelprof").exists()]
    if not directories:
        return {}
    records = list(load_profiles(directories).records)
    stamped = [r for r in records if "otelprof.overhead.cpu_ratio" in r.profile_attributes]
    if not stamped:
        return {}
    last = max(stamped, key=lambda r: r.start_unix_nano + r.duration_nano)
    kinds = sorted(
        {str(r.profile_attributes.get("otelprof.window.kind")) for r in records} - {"None"}
    )
    account = {k: v for k, v in last.profile_attributes.items() if k.startswith("otelprof.")}
    account["window kinds exported"] = kinds
    return account


def _table(runs: List[Run], accounts: Dict[str, List[Dict[str, Any]]]) -> List[str]:
    bare = [r.cpu for r in runs if r.config == "bare" and r.ok]
    bare_work = [r.work_cpu for r in runs if r.config == "bare" and r.ok]
    lines = [
        "| configuration | process CPU / bare | work-phase CPU / bare | agent threads CPU % |"
        " governor's ratio | windows opened / shortened / skipped |",
        "|---|---|---|---|---|---|",
    ]
    configs = list(dict.fromkeys(r.config for r in runs))
    for name in configs:
        ok = [r for r in runs if r.config == name and r.ok]
        failed = [r for r in runs if r.config == name and not r.ok]
        if not ok:
            lines.append(f"| {name} | failed: {failed[0].error if failed else '?'} | | | | |")
            continue
        cpu = _median([r.cpu for r in ok]) / _median(bare)
        work = _median([r.work_cpu for r in ok]) / _median(bare_work)
        agent = _median([100 * r.profiler_cpu / r.cpu for r in ok if r.cpu])
        account = accounts.get(name, [])
        ratio = _median([a["otelprof.overhead.cpu_ratio"] for a in account if a])
        windows = [
            "/".join(
                str(a.get(f"otelprof.windows.{k}", "-")) for k in ("opened", "shortened", "skipped")
            )
            for a in account
            if a
        ]
        lines.append(
            f"| {name} | {cpu:.3f} | {work:.3f} | {agent:.2f} |"
            f" {'' if math.isnan(ratio) else f'{100 * ratio:.2f}%'} | {', '.join(windows)} |"
        )
    return lines


def _part(
    title: str, workload: Workload, configs: List[Config], rounds: int, python: str
) -> Dict[str, Any]:
    print(f"\n## {title}: {workload.name} {' '.join(workload.args)}, {rounds} rounds", flush=True)
    with tempfile.TemporaryDirectory(prefix="otelprof-windows-bench-") as keep:
        keep_dir = Path(keep)

        def progress(run: Run) -> None:
            state = "ok" if run.ok else f"FAILED {run.error}"
            print(
                f"  {run.config:14s} round {run.round}: cpu {run.cpu:7.2f} s  {state}", flush=True
            )

        runs = interleave(workload, configs, rounds, "cpu", None, python, progress, keep_dir)
        accounts: Dict[str, List[Dict[str, Any]]] = {}
        for run in runs:
            if run.ok and run.config != "bare":
                accounts.setdefault(run.config, []).append(_governor_account(keep_dir, run))
    table = _table(runs, accounts)
    print("\n".join(table), flush=True)
    return {"title": title, "table": table, "runs": runs_to_json(runs), "accounts": accounts}


def _allocate(rounds: int) -> int:
    kept: List[object] = []
    for i in range(rounds):
        kept.append({"a": i, "b": [i, str(i)]})
        if len(kept) > 1000:
            kept = []
    return len(kept)


def _deep(depth: int, rounds: int) -> int:
    return _allocate(rounds) if depth == 0 else _deep(depth - 1, rounds)


def _tracemalloc_depths(depths: Sequence[int] = (1, 4, 8, 16, 32)) -> Dict[str, Any]:
    """tracemalloc's cost by traceback depth: an allocation-bound loop 30 frames deep."""
    import time
    import tracemalloc

    def timed() -> float:
        started = time.process_time()
        _deep(30, 200_000)
        return time.process_time() - started

    print("\n## tracemalloc cost by traceback depth (allocation-bound loop, 30 frames deep)")
    bare = min(timed() for _ in range(3))
    ratios = {}
    for depth in depths:
        tracemalloc.start(depth)
        try:
            ratios[depth] = min(timed() for _ in range(3)) / bare
        finally:
            tracemalloc.stop()
        print(f"  depth {depth:2d}: {ratios[depth]:5.1f}x", flush=True)
    return {"title": "tracemalloc depth", "ratios": ratios}


def _inside(kind: str, program: List[str]) -> None:
    """Run ``program`` with an on-demand window of ``kind`` open from before its first line."""
    import otelprof

    otelprof.start(precise_window_seconds=0, memory_window_seconds=0)
    window = otelprof.precise(None) if kind == "precise" else otelprof.memory(None)
    if not window.wait_opened():
        raise SystemExit(f"the {kind} window did not open: {window.error}")
    sys.argv = program
    runpy.run_path(program[0], run_name="__main__")  # the window closes at exit, with the profiler


def main(argv: Sequence[str] = ()) -> int:
    argv = list(argv)
    if argv[:1] == ["--inside"]:
        _inside(argv[1], argv[3:] if argv[2:3] == ["--"] else argv[2:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short runs, one round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--part", choices=("1", "2", "depth", "all"), default="all")
    args = parser.parse_args(argv)
    rounds = 1 if args.quick else args.rounds
    open_scale = 0.05 if args.quick else 0.25  # tracing runs take several times longer
    total_scale = 0.5 if args.quick else 4.0  # ~80 s of CPU bare: long enough for windows
    results: List[Dict[str, Any]] = []
    if args.part in ("depth", "all"):
        results.append(_tracemalloc_depths())
    if args.part in ("1", "all"):
        workload = Workload("web_service", "web_service.py", ("--scale", str(open_scale)))
        results.append(_part("While open", workload, WHILE_OPEN, rounds, args.python))
    if args.part in ("2", "all"):
        workload = Workload("web_service", "web_service.py", ("--scale", str(total_scale)))
        results.append(_part("In total, governor on", workload, IN_TOTAL, rounds, args.python))
    results_file = RESULTS.with_name(f"windows_overhead_part{args.part}.json")
    results_file.parent.mkdir(exist_ok=True)
    results_file.write_text(json.dumps(results, indent=1, default=str))
    print(f"\nresults: {results_file}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
