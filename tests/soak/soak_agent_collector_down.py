"""Soak: an app profiled for N minutes while its collector is down; is the agent's memory bounded?

Runs the soak workload twice side by side, bare and under ``otelprof run`` pointed at a dead
endpoint (or a hanging or failing one, ``--fault``), samples both processes' RSS every few
seconds, and reports the growth after a warm-up: the agent's must plateau (its export queue
drops the oldest profile when full) rather than climb with time.

    .venv/bin/python tests/soak/soak_agent_collector_down.py --minutes 10
    .venv/bin/python tests/soak/soak_agent_collector_down.py --minutes 2 --json out.json

Run on demand; not a test file (pytest does not collect it).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import pathlib
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, Iterator, List, Optional, Tuple

ROOT = pathlib.Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run as a script: make `tests` importable
    sys.path.insert(0, str(ROOT))

from tests.agent.e2e import OTELPROF, child_env  # noqa: E402
from tests.faults.harness import free_port  # noqa: E402

APP = pathlib.Path(__file__).with_name("soak_agent_app.py")
PROBE = [sys.executable, "-m", "tests.faults.probe"]


def rss_kib(pid: int) -> Optional[int]:
    """Resident set size of ``pid`` from /proc (KiB); None once the process is gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


@contextlib.contextmanager
def dead_collector(fault: str, protocol: str) -> Iterator[str]:
    """The endpoint the agent is given: nothing there, a hanging server, or one failing always."""
    if fault == "absent":
        base = f"http://127.0.0.1:{free_port()}"
        yield base if protocol == "grpc" else base + "/v1development/profiles"
        return
    import grpc

    from tests.export.servers import (
        GrpcFailure,
        HttpFailure,
        RecordingGrpcServer,
        RecordingHttpServer,
    )

    server: Any = RecordingGrpcServer() if protocol == "grpc" else RecordingHttpServer()
    with server:
        if fault == "hanging":
            server.hang()
        else:
            failure: Any = (
                GrpcFailure(grpc.StatusCode.UNAVAILABLE) if protocol == "grpc" else HttpFailure(503)
            )
            server.set_failures([failure] * 1_000_000)
        yield server.endpoint


def start(args: List[str], env: Dict[str, str]) -> subprocess.Popen:
    process = subprocess.Popen(
        args, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if line != b"soak app ready\n":
        process.kill()
        raise SystemExit(f"the soak app did not start: {line!r} {process.stderr.read()!r}")  # type: ignore[union-attr]
    return process


def finish(process: subprocess.Popen) -> Tuple[int, str]:
    _, stderr = process.communicate(b"", timeout=120)  # closing stdin ends the app
    return process.returncode, stderr.decode(errors="replace")


def summarize(samples: List[Tuple[float, int]], warmup_seconds: float) -> Dict[str, float]:
    """RSS figures in MiB: first, after warm-up, max, growth since warm-up, late slope."""
    after = [(t, kib) for t, kib in samples if t >= warmup_seconds] or samples[-1:]
    half = after[len(after) // 2 :]
    slope = 0.0
    if len(half) >= 2 and half[-1][0] > half[0][0]:
        slope = (half[-1][1] - half[0][1]) / 1024 / ((half[-1][0] - half[0][0]) / 60)
    return {
        "first_mib": samples[0][1] / 1024,
        "after_warmup_mib": after[0][1] / 1024,
        "max_mib": max(kib for _, kib in samples) / 1024,
        "growth_after_warmup_mib": (max(kib for _, kib in after) - after[0][1]) / 1024,
        "growth_total_mib": (max(kib for _, kib in samples) - samples[0][1]) / 1024,
        "late_slope_mib_per_min": slope,
    }


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="soak length (default 10)")
    parser.add_argument("--sample-seconds", type=float, default=5.0, help="RSS sampling period")
    parser.add_argument("--protocol", choices=("grpc", "http/protobuf"), default="grpc")
    parser.add_argument("--fault", choices=("absent", "hanging", "erroring"), default="absent")
    parser.add_argument(
        "--export-interval",
        type=float,
        default=1.0,
        help="agent export interval in seconds (default 1: the 16-request queue fills in 16 s)",
    )
    parser.add_argument("--warmup-seconds", type=float, default=60.0)
    parser.add_argument("--json", metavar="FILE", help="also write the figures here")
    args = parser.parse_args(argv)

    duration = args.minutes * 60
    with tempfile.TemporaryDirectory() as tmp, dead_collector(args.fault, args.protocol) as url:
        probe_file = pathlib.Path(tmp) / "probe.jsonl"
        agent_env = child_env(
            OTEL_PYTHON_PROFILER_EXPORT_INTERVAL=str(args.export_interval),
            OTEL_PYTHON_PROFILER_LOG_LEVEL="warning",
            FAULT_PROBE_FILE=str(probe_file),
        )
        agent_env["PYTHONPATH"] = str(ROOT)
        bare_env = child_env()
        bare_env["PYTHONPATH"] = str(ROOT)
        command = [*PROBE, str(APP)]
        agent_cmd = [*OTELPROF, "run", "--endpoint", url, "--protocol", args.protocol, "--"]
        profiled = start([*agent_cmd, *command], agent_env)
        bare = start(command, bare_env)
        began = time.monotonic()
        series: Dict[str, List[Tuple[float, int]]] = {"profiled": [], "bare": []}
        try:
            while True:
                elapsed = time.monotonic() - began
                for name, process in (("profiled", profiled), ("bare", bare)):
                    kib = rss_kib(process.pid)
                    if kib is None:
                        raise SystemExit(f"the {name} app died early (exit {process.poll()})")
                    series[name].append((elapsed, kib))
                if elapsed >= duration:
                    break
                time.sleep(min(args.sample_seconds, max(duration - elapsed, 0.0)))
        finally:
            stopped = time.monotonic()
            profiled_status, profiled_stderr = finish(profiled)
            exit_seconds = time.monotonic() - stopped
            finish(bare)
        events = [json.loads(line) for line in probe_file.read_text().splitlines()]

    stats = next(e for e in events if e["event"] == "stats")
    warmup = min(args.warmup_seconds, duration / 2)
    report: Dict[str, Any] = {
        "minutes": args.minutes,
        "fault": args.fault,
        "protocol": args.protocol,
        "export_interval_seconds": args.export_interval,
        "rss_samples": len(series["profiled"]),
        "warmup_seconds": warmup,
        "profiled": summarize(series["profiled"], warmup),
        "bare": summarize(series["bare"], warmup),
        "export_attempts": sum(e["event"] == "export" for e in events),
        "queue_size": stats["queue_size"],
        "queue_high_water": stats["queue_high_water"],
        "dropped_requests": stats["dropped_requests"],
        "exported_requests": stats["exported_requests"],
        "shutdown_seconds": stats["shutdown_seconds"],
        "exit_seconds_after_stdin_closed": round(exit_seconds, 2),
        "app_exit_status": profiled_status,
        # Without their timestamps: what the user would have read in the app's stderr.
        "agent_warnings": [
            line.split(" WARNING ", 1)[-1]
            for line in profiled_stderr.splitlines()
            if "otelprof" in line
        ][:10],
    }
    print(json.dumps(report, indent=2))
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    profiled_growth = report["profiled"]["growth_after_warmup_mib"]
    print(
        f"\n{args.minutes:g} min, collector {args.fault} ({args.protocol}): agent RSS growth after "
        f"{warmup:.0f} s warm-up {profiled_growth:.2f} MiB (bare "
        f"{report['bare']['growth_after_warmup_mib']:.2f} MiB), queue high-water "
        f"{stats['queue_high_water']}/{stats['queue_size']}, {stats['dropped_requests']} dropped"
    )
    return 0 if profiled_status == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
