"""Overhead measured side by side: a bare run and a profiled run of the same work, at the same time.

    python benchmarks/corun.py                                  # otelprof vs bare, web workload
    python benchmarks/corun.py --configs bare,otelprof,py-spy,pyroscope-io --pairs 5
    python benchmarks/corun.py --workloads call_heavy --pin 0   # both sides on one CPU

Separate runs (``run_all.py``) and alternating blocks (``ab_blocks.py``) both compare work done
at different moments, and on a shared virtual machine the CPU time of the same work drifts by
10-30 % within minutes, far more than the 1 % being checked. Here each pair starts the bare
workload and the profiled one together, so whatever the machine does to one it does to the
other: pairs of two bare runs agree within about half a percent (config ``bare``: the A/A noise
floor), where runs taken one after another differed by several percent. Single-threaded work
(``call_heavy``) is the exception: each side settles on a CPU of its own, and the two CPUs of
a shared machine run at different speeds (A/A pairs differed by 7-11 %); ``--pin 0`` puts both
sides on one CPU, which they then share.

Per pair: the CPU of each target process over its work phase (``getrusage`` in the workload,
so interpreter start-up, imports and the final export at exit are left out), plus, for an
out-of-process profiler (py-spy), that profiler's own CPU over the whole run; the ratio
profiled / bare. The two work phases start together: each run waits at a barrier after its
start-up (a profiler's imports take longer), so the whole of both phases shares the machine.
The same ratios for user and system CPU and for context switches say where a cost is paid.
Reported: the median ratio over pairs, a 95 % bootstrap interval of that median, its range,
and the in-process profiler threads' own share. Both runs share the two CPUs with their load
generators, so the machine is oversubscribed while a pair runs: the absolute CPU figures are
not those of a lone run, the ratio is what this measures.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import statistics
import sys
import tempfile
import threading
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Set, Tuple

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.capture_server import CaptureServer
from benchmarks.configs import CONFIGS, Config, with_rate, with_settings
from benchmarks.harness import BARRIER_ENV, Workload, run_once

WORKLOADS = {
    "web_service": lambda scale, clients, rate: Workload(
        "web_service",
        "web_service.py",
        ("--scale", scale, "--concurrency", clients, "--rate", rate),
    ),
    # The same service behind a production-style server: a fixed pool of threads, keep-alive.
    "web_pool": lambda scale, clients, rate: Workload(
        "web_pool",
        "web_service.py",
        ("--scale", scale, "--concurrency", clients, "--rate", rate, "--server", "waitress"),
    ),
    # The same with its spans exported (encoded as OTLP protobuf, then dropped), as a traced
    # service does: the span attributes a profiler adds are encoded too.
    "web_export": lambda scale, clients, rate: Workload(
        "web_export",
        "web_service.py",
        ("--scale", scale, "--concurrency", clients, "--rate", rate, "--export-spans"),
    ),
    "call_heavy": lambda scale, clients, rate: Workload(
        "call_heavy", "call_heavy.py", ("--scale", scale)
    ),
}


def _config(name: str) -> Config:
    config = CONFIGS.get(name) or with_rate(name) or with_settings(name)
    if config is None:
        raise SystemExit(f"corun: unknown config {name!r} (known: {', '.join(CONFIGS)})")
    return config


def pinned(config: Config, cpus: Optional[Set[int]]) -> Config:
    """``config`` run under ``taskset``, which execs the command: every process and thread it
    makes inherits the CPU set."""
    if not cpus:
        return config
    pin = ["taskset", "-c", ",".join(map(str, sorted(cpus)))]
    argv = config.argv
    return dataclasses.replace(config, argv=lambda ctx: [*pin, *argv(ctx)])


def run_side(
    workload: Workload,
    config: Config,
    capture: CaptureServer,
    out: Dict[str, float],
    cpus: Optional[Set[int]] = None,
    barrier: Optional[Path] = None,
    extra_env: Optional[Dict[str, str]] = None,
) -> None:
    """Run ``workload`` under ``config`` to the end; fill ``out`` with what it measured."""
    env = dict(extra_env or {})
    if barrier is not None:
        env[BARRIER_ENV] = str(barrier)
    # No reaping of other children: the other side of the pair runs at the same time.
    run = run_once(
        workload,
        pinned(config, cpus),
        "cpu",
        0,
        capture,
        sys.executable,
        base_env=env,
        reap_orphans=False,
    )
    if not run.ok:
        raise RuntimeError(f"{config.name} failed: {run.error}")
    # An out-of-process profiler's own CPU is the rest of its run's total.
    external = run.external_cpu if config.out_of_process else 0.0
    out["cpu"] = run.work_cpu + external
    out["profiler"] = run.profiler_cpu
    out["user"] = run.work_parts["user"]
    out["system"] = run.work_parts["system"]
    out["switches"] = run.work_parts["voluntary_switches"] + run.work_parts["involuntary_switches"]


def median_interval(
    values: Sequence[float], resamples: int = 2000, seed: int = 0
) -> Tuple[float, float]:
    """A 95 % bootstrap interval of the median of ``values`` (deterministic: seeded).

    With 5 pairs it is wide, which is the point: it says how far the median can be trusted,
    where the range alone says only how far the pairs spread. Taking a part of the agent apart
    means comparing two such intervals, not two medians.
    """
    rng = random.Random(seed)
    n = len(values)
    medians = sorted(statistics.median(rng.choices(values, k=n)) for _ in range(resamples))
    return medians[int(0.025 * resamples)], medians[int(0.975 * resamples) - 1]


# Compared per pair besides the total: where an overhead is paid (the program's instructions in
# user time, the kernel in system time) and how often its threads handed over the CPU.
PARTS = ("user", "system", "switches")


def run_pair(
    workload: Workload,
    config: Config,
    capture: CaptureServer,
    cpus: Optional[Set[int]] = None,
    extra_env: Optional[Dict[str, str]] = None,
) -> Tuple[float, float, Dict[str, float]]:
    """(profiled / bare CPU ratio, profiler's own CPU share, profiled / bare ratio of each of
    ``PARTS``) of one pair started together."""
    bare: Dict[str, float] = {}
    profiled: Dict[str, float] = {}
    errors: List[BaseException] = []
    ended = threading.Event()

    with tempfile.TemporaryDirectory(prefix="otelprof-corun-") as directory:
        barrier = Path(directory)

        def side(cfg: Config, out: Dict[str, float]) -> None:
            try:
                run_side(workload, cfg, capture, out, cpus, barrier, extra_env)
            except BaseException as error:  # reported by the caller, after both ended
                errors.append(error)
            finally:
                ended.set()

        threads = [
            threading.Thread(target=side, args=(CONFIGS["bare"], bare)),
            threading.Thread(target=side, args=(config, profiled)),
        ]
        for thread in threads:
            thread.start()
        # Both work phases start together, once both runs are ready (see _meet_at_barrier);
        # a run that fails before it is ready ends the wait.
        while len(list(barrier.glob("*.ready"))) < 2 and not ended.wait(0.001):
            pass
        (barrier / "go").touch()
        for thread in threads:
            thread.join()
    if errors:
        raise errors[0]
    parts = {part: profiled[part] / bare[part] if bare[part] else 1.0 for part in PARTS}
    return profiled["cpu"] / bare["cpu"], profiled["profiler"] / profiled["cpu"], parts


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", default="bare,otelprof", help="comma-separated (vs bare)")
    parser.add_argument("--workloads", default="web_service")
    parser.add_argument("--pairs", type=int, default=5, help="pairs per config (default 5)")
    parser.add_argument("--scale", default="0.4", help="work per run (1 = ~20 s of CPU alone)")
    parser.add_argument(
        "--clients", default="4", help="web workload: concurrent clients per run (default 4)"
    )
    parser.add_argument(
        "--rate",
        default="0",
        help="web workload: requests per second per run, paced (a service with headroom, not"
        " saturated; ~360/s fill one CPU here); 0 (default): as fast as served",
    )
    parser.add_argument(
        "--pin",
        help="run both sides (and their children) on these CPUs only, e.g. 0: single-threaded"
        " work otherwise settles on one CPU each, and two CPUs of a shared machine differ",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set in both runs of every pair (e.g. an OTEL_PYTHON_PROFILER_* setting, which the"
        " bare run ignores); repeatable",
    )
    args = parser.parse_args(argv)
    bad = [item for item in args.env if "=" not in item]
    if bad:
        parser.error(f"--env takes NAME=VALUE, not {bad[0]!r}")
    extra_env = dict(item.split("=", 1) for item in args.env)
    cpus = {int(c) for c in args.pin.split(",")} if args.pin else None
    configs = [_config(name) for name in args.configs.split(",")]
    for config in configs:
        reason = config.missing()
        if reason:
            raise SystemExit(f"corun: {config.name} not available: {reason}")
    lines = [
        "| workload | config | pairs | CPU vs bare (median) | 95 % interval | range |"
        " profiler's own CPU | user | system | context switches |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    with CaptureServer() as capture:
        for name in args.workloads.split(","):
            workload = WORKLOADS[name](args.scale, args.clients, args.rate)
            results: Dict[str, List[Tuple[float, float, Dict[str, float]]]] = {
                c.name: [] for c in configs
            }
            for number in range(args.pairs):  # configs round-robin, so drift hits all alike
                for config in configs:
                    ratio, share, parts = run_pair(workload, config, capture, cpus, extra_env)
                    results[config.name].append((ratio, share, parts))
                    print(
                        f"{name} {config.name} pair {number + 1}: {(ratio - 1) * 100:+.2f}%"
                        f" (profiler threads {share * 100:.2f}%; "
                        + ", ".join(f"{p} {(parts[p] - 1) * 100:+.1f}%" for p in PARTS)
                        + ")",
                        flush=True,
                    )
            for config in configs:
                ratios = [r for r, _, _ in results[config.name]]
                shares = [s for _, s, _ in results[config.name]]
                medians = [
                    statistics.median(parts[p] for _, _, parts in results[config.name])
                    for p in PARTS
                ]
                low, high = median_interval(ratios)
                lines.append(
                    f"| {name} | {config.name} | {len(ratios)} |"
                    f" {(statistics.median(ratios) - 1) * 100:+.2f}% |"
                    f" {(low - 1) * 100:+.2f} .. {(high - 1) * 100:+.2f} |"
                    f" {(min(ratios) - 1) * 100:+.2f} .. {(max(ratios) - 1) * 100:+.2f} |"
                    f" {statistics.median(shares) * 100:.2f}% |"
                    + "".join(f" {(m - 1) * 100:+.1f}% |" for m in medians)
                )
    print("\n" + "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
