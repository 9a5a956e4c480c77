"""Throughput and memory of collector_processor next to the real OpenTelemetry Collector.

    python benchmarks/collector_throughput.py  # 3 interleaved rounds, 15 s each
    python benchmarks/collector_throughput.py --quick  # checks the harness in ~1 minute
    python benchmarks/collector_throughput.py --py-spy  # and where collector_processor spends time

Each run starts one service fresh (OTLP/gRPC receiver -> [resource processor] -> otlp_grpc
exporter with an in-memory sending queue) and a null loopback backend that discards what it
gets; a closed-loop load generator in its own process sends agent-like export requests
(otelprof's own encoding: cpu + wall profiles, ~300 stacks, one shared dictionary, span links).
Runs of the subjects are interleaved and medians reported. Never part of CI.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.collector.payloads import PayloadShape, agent_requests
from benchmarks.collector.subjects import REPO_ROOT, Subject, free_port, start_subject
from benchmarks.collector.wire import LoadGenerator, NullBackend

RESULTS_DIR = Path(__file__).resolve().parent / "results"
SUBJECTS = {
    "otelcol": Subject("otelcol", "otelcol", resource_processor=False),
    "cp": Subject("cp", "collector_processor", resource_processor=False),
    "cp+resource": Subject("cp+resource", "collector_processor", resource_processor=True),
}
MIB = 1024 * 1024


def otelcol_binary() -> Path:
    script = REPO_ROOT / "scripts" / "build_otelcol.sh"
    output = subprocess.run(["bash", str(script)], check=True, capture_output=True, text=True)
    return Path(output.stdout.strip().splitlines()[-1])


def run_once(
    subject: Subject,
    payloads: List[bytes],
    args: argparse.Namespace,
    backend: NullBackend,
    workdir: Path,
    binary: Path,
    py_spy_out: Optional[Path] = None,
) -> Dict[str, Any]:
    service = start_subject(subject, workdir, backend.endpoint, binary)
    load = LoadGenerator(f"127.0.0.1:{service.port}", payloads, args.concurrency)
    spy: Optional[subprocess.Popen[bytes]] = None
    try:
        load.start()
        time.sleep(args.warmup)
        backend0, load0 = backend.counters.snapshot(), load.counters.snapshot()
        cpu0, t0 = service.cpu_seconds(), time.monotonic()
        if py_spy_out is not None:
            spy = subprocess.Popen(
                [str(Path(sys.executable).parent / "py-spy"), "record", "--pid",
                 str(service.process.pid), "--duration", str(int(args.duration)), "--rate", "100",
                 "--format", "raw", "--threads", "--nonblocking", "--output", str(py_spy_out)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
        time.sleep(args.duration)
        backend1, load1 = backend.counters.snapshot(), load.counters.snapshot()
        cpu1, t1 = service.cpu_seconds(), time.monotonic()
        peak_rss, threads = service.peak_rss_bytes(), service.threads()
    finally:
        load.close()
        if spy is not None:
            spy.wait(60)
        service.stop()
    seconds = t1 - t0
    cpu = cpu1 - cpu0
    delivered = backend1[0] - backend0[0]
    return {
        "subject": subject.name,
        "seconds": seconds,
        "delivered_rps": delivered / seconds,
        "accepted_rps": (load1[0] - load0[0]) / seconds,
        "input_mb_per_s": (load1[1] - load0[1]) / seconds / MIB,
        "refused": load1[2] - load0[2],
        "cpu_cores": cpu / seconds,
        "delivered_per_cpu_second": delivered / cpu if cpu else 0.0,
        "peak_rss_mib": peak_rss / MIB,
        "threads": threads,
    }


def medians(runs: List[Dict[str, Any]], name: str) -> Dict[str, float]:
    mine = [run for run in runs if run["subject"] == name]
    keys = [key for key, value in mine[0].items() if isinstance(value, (int, float))]
    return {key: statistics.median(run[key] for run in mine) for key in keys}


def table(summary: Dict[str, Dict[str, float]], baseline: str) -> str:
    rows = [
        "| subject | delivered req/s | input MB/s | CPU cores used | req per CPU-second "
        "| peak RSS MiB | refused | req/s vs otelcol | per-core vs otelcol |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    base = summary.get(baseline)
    for name, m in summary.items():
        ratio = per_core = "—"
        if base and name != baseline:
            ratio = f"{m['delivered_rps'] / base['delivered_rps']:.2f}"
            per_core = f"{m['delivered_per_cpu_second'] / base['delivered_per_cpu_second']:.2f}"
        rows.append(
            f"| {name} | {m['delivered_rps']:.0f} | {m['input_mb_per_s']:.1f} "
            f"| {m['cpu_cores']:.2f} | {m['delivered_per_cpu_second']:.0f} "
            f"| {m['peak_rss_mib']:.0f} | {m['refused']:.0f} | {ratio} | {per_core} |"
        )
    return "\n".join(rows)


def hot_functions(raw_path: Path, top: int = 25) -> str:
    """Self and total share of py-spy's samples per function, from its collapsed stacks."""
    self_counts: Dict[str, int] = {}
    total_counts: Dict[str, int] = {}
    all_samples = 0
    for line in raw_path.read_text().splitlines():
        stack_text, _, count_text = line.rpartition(" ")
        if not stack_text:
            continue
        count = int(count_text)
        # "function (file:line)" -> "function (file)": rank functions, not single lines.
        frames = [
            re.sub(r":\d+\)$", ")", frame)
            for frame in stack_text.split(";")
            if not frame.startswith(("thread", "process"))
        ]
        if not frames:
            continue
        all_samples += count
        self_counts[frames[-1]] = self_counts.get(frames[-1], 0) + count
        for frame in set(frames):
            total_counts[frame] = total_counts.get(frame, 0) + count
    ranked = sorted(self_counts.items(), key=lambda item: -item[1])[:top]
    lines = ["| self % | total % | function (file) |", "|---|---|---|"]
    for frame, count in ranked:
        share = 100 * count / all_samples
        lines.append(f"| {share:.1f} | {100 * total_counts[frame] / all_samples:.1f} | `{frame}` |")
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=15.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight")
    parser.add_argument("--distinct-requests", type=int, default=16)
    parser.add_argument("--stacks", type=int, default=PayloadShape.stacks)
    parser.add_argument("--subjects", default=",".join(SUBJECTS))
    parser.add_argument(
        "--compression", choices=("gzip", "none"), default="gzip", help="exporter compression"
    )
    parser.add_argument("--py-spy", action="store_true", help="profile cp+resource once more")
    parser.add_argument("--quick", action="store_true", help="1 round, 4 s runs")
    parser.add_argument("--output", type=Path, default=None, help="JSON results file")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.duration, args.warmup = 1, 4.0, 1.0
    subjects = [
        dataclasses.replace(SUBJECTS[name], compression=args.compression)
        for name in args.subjects.split(",")
    ]

    binary = otelcol_binary()
    payloads = agent_requests(args.distinct_requests, PayloadShape(stacks=args.stacks))
    print(
        f"payload: {len(payloads)} distinct requests, median "
        f"{statistics.median(map(len, payloads)) / 1024:.1f} KiB, {args.stacks} stacks x 2 profiles"
    )
    workdir = Path(tempfile.mkdtemp(prefix="collector-bench-"))
    backend = NullBackend(free_port())
    runs: List[Dict[str, Any]] = []
    try:
        for round_index in range(args.rounds):
            # Rotate the order so no subject always runs first (warm caches, thermal state).
            order = (
                subjects[round_index % len(subjects) :] + subjects[: round_index % len(subjects)]
            )
            for subject in order:
                run = run_once(
                    subject, payloads, args, backend, workdir / f"r{round_index}", binary
                )
                runs.append(run)
                print(
                    f"round {round_index + 1} {subject.name:12s} "
                    f"{run['delivered_rps']:8.0f} req/s  {run['cpu_cores']:.2f} cores  "
                    f"{run['peak_rss_mib']:.0f} MiB"
                )
        summary = {s.name: medians(runs, s.name) for s in subjects}
        print()
        print(table(summary, "otelcol"))
        profile_table = ""
        if args.py_spy:
            raw = workdir / "py-spy.txt"
            spied = dataclasses.replace(SUBJECTS["cp+resource"], compression=args.compression)
            run_once(spied, payloads, args, backend, workdir / "spy", binary, raw)
            profile_table = hot_functions(raw)
            print()
            print(profile_table)
    finally:
        backend.close()
    results = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "cpus": _cpu_count()},
        "command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])]),
        "otelcol_binary": str(binary),
        "settings": {k: str(v) for k, v in vars(args).items()},
        "runs": runs,
        "medians": summary,
        "py_spy": profile_table,
    }
    output = args.output or RESULTS_DIR / "collector_throughput.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2))
    print(f"\nresults: {output}")
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


def _cpu_count() -> int:
    return len(os.sched_getaffinity(0))


if __name__ == "__main__":
    sys.exit(main())
