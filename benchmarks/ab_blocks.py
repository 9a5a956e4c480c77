"""The agent's cost to the application's own threads, measured in one process by alternating blocks.

    python benchmarks/ab_blocks.py                      # 12 pairs of 600 requests, agent defaults
    python benchmarks/ab_blocks.py --pairs 20 --rate 50 # another sampling rate
    python benchmarks/ab_blocks.py --part sampler       # only the stack sampler (no correlation)
    python benchmarks/ab_blocks.py --part wake          # a thread that only takes the GIL at 100 Hz

Whole-process CPU of separate runs (``run_all.py``) varies by several percent on a shared
machine, more than the budget being checked. Here one process serves the web workload's Flask app
(benchmarks/workloads/web_service.py) and the same load generator sends a fixed number of
requests per block; blocks alternate profiler off and on (in random order within each pair), so
drift hits both sides of a pair alike. Per block: the process CPU, split into the agent's threads
(read per thread from /proc) and everything else (the application's threads). The report is the
median over pairs of the application-thread CPU on/off ratio (what the agent makes the
application pay, GIL hand-offs included) and the agent's own CPU as a share of the application's.
Starting and stopping the agent happens between blocks, outside the measurement. The agent runs
at a fixed rate here (blocks are too short for the adaptive rate to settle; ``--adaptive`` to
try anyway): measure at the rate ``run_all.py`` shows the adaptive rate settling at.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

ROOT = Path(__file__).resolve().parent.parent
WORKLOADS = ROOT / "benchmarks" / "workloads"
sys.path.insert(0, str(WORKLOADS))
sys.path.insert(0, str(ROOT))

from _common import _rusage_cpu, task_cpu_seconds  # noqa: E402

PARTS = ("agent", "sampler", "correlation", "wake", "busy-tick")


class Part:
    """Starts and stops the agent (or one of its parts) between blocks."""

    def __init__(self, kind: str, rate: float, out_dir: str, adaptive: bool = False) -> None:
        self.kind = kind
        self.adaptive = adaptive
        self.rate = rate
        self.out_dir = out_dir
        self._stop: Optional[Any] = None

    def start(self) -> None:
        if self.kind == "agent":
            import otelprof

            profiler = otelprof.start(
                output_dir=self.out_dir, sampling_rate_hz=self.rate, adaptive_rate=self.adaptive
            )
            self._stop = profiler.stop
        elif self.kind == "sampler":
            from otelprof.samplers.stack import StackSampler

            sampler = StackSampler(interval_seconds=1.0 / self.rate)
            sampler.start()
            self._stop = sampler.stop
        elif self.kind == "correlation":
            from otelprof.correlation import SpanCorrelator

            correlator = SpanCorrelator()
            correlator.start()
            self._stop = correlator.stop
        elif self.kind in ("wake", "busy-tick"):
            self._stop = _ticker(self.rate, self.kind == "busy-tick")
        else:
            raise SystemExit(f"unknown part {self.kind!r}")

    def stop(self) -> None:
        if self._stop is not None:
            self._stop()
            self._stop = None


def _ticker(rate: float, busy: bool) -> Any:
    """A thread that only takes the GIL at the sampling rate (``busy``: and holds it for about
    as long as a sampler tick, computing without touching other threads' frames)."""
    from otelprof._threads import start_agent_thread

    stop = threading.Event()

    def run() -> None:
        while not stop.wait(1.0 / rate):
            if busy:
                sum(range(6000))

    thread = start_agent_thread("ticker", run)

    def halt() -> None:
        stop.set()
        thread.join()

    return halt


def agent_tids() -> List[int]:
    from otelprof._threads import AGENT_THREAD_IDENTS

    return [
        t.native_id
        for t in threading.enumerate()
        if t.ident in AGENT_THREAD_IDENTS and t.native_id is not None
    ]


def block(port: int, requests: int) -> Tuple[float, float]:
    """(application-thread CPU s, agent-thread CPU s) over one block of requests."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL", "PYTHON"))}
    tids = agent_tids()
    before = task_cpu_seconds()
    cpu0 = _rusage_cpu(0)  # RUSAGE_SELF
    subprocess.run(
        [
            sys.executable,
            "-I",
            "-S",
            str(WORKLOADS / "loadgen.py"),
            "--port",
            str(port),
            "--requests",
            str(requests),
            "--concurrency",
            "4",
        ],
        env=env,
        check=True,
        capture_output=True,
    )
    cpu = _rusage_cpu(0) - cpu0
    after = task_cpu_seconds()
    agent = sum(max(0.0, after.get(t, 0.0) - before.get(t, 0.0)) for t in tids)
    return cpu - agent, agent


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", type=int, default=12)
    parser.add_argument("--requests", type=int, default=600, help="per block")
    parser.add_argument("--rate", type=float, default=100.0, help="(maximum) sampling rate, Hz")
    parser.add_argument(
        "--adaptive", action="store_true", help="agent part: let it lower its rate (default: fixed)"
    )
    parser.add_argument(
        "--part", default="agent", choices=("agent", "sampler", "correlation", "wake", "busy-tick")
    )
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    import logging

    from web_service import create_app, instrument, seed_database
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    app = create_app(seed_database())
    instrument(app)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, name="server", daemon=True).start()
    part = Part(args.part, args.rate, tempfile.mkdtemp(prefix="ab-blocks-"), args.adaptive)
    rng = random.Random(args.seed)
    block(server.server_port, args.requests)  # warm up: imports, caches, database pages
    ratios: List[float] = []
    shares: List[float] = []
    results: Dict[str, List[float]] = {"off": [], "on": []}
    for index in range(args.pairs):
        measured: Dict[bool, Tuple[float, float]] = {}
        for on in rng.sample([False, True], 2):
            if on:
                part.start()
            try:
                measured[on] = block(server.server_port, args.requests)
            finally:
                if on:
                    part.stop()
        (app_off, _), (app_on, agent_on) = measured[False], measured[True]
        ratios.append(app_on / app_off)
        shares.append(agent_on / app_on)
        results["off"].append(app_off)
        results["on"].append(app_on)
        print(
            f"pair {index + 1}/{args.pairs}: application CPU off {app_off:.3f}s on {app_on:.3f}s"
            f" ({(app_on / app_off - 1) * 100:+.1f}%), agent {agent_on * 1000:.0f} ms"
            f" ({agent_on / app_on * 100:.2f}%)",
            flush=True,
        )
    server.shutdown()
    ratio = statistics.median(ratios)
    share = statistics.median(shares)
    quartiles = statistics.quantiles(ratios, n=4) if len(ratios) >= 2 else [ratio, ratio, ratio]
    print(
        f"\n{args.part} at {args.rate:g} Hz, {args.pairs} pairs of {args.requests} requests:\n"
        f"  application threads: {(ratio - 1) * 100:+.2f}% CPU (median of pairs;"
        f" quartiles {(quartiles[0] - 1) * 100:+.2f}% .. {(quartiles[2] - 1) * 100:+.2f}%)\n"
        f"  agent threads: {share * 100:.2f}% of the application's CPU (median)\n"
        f"  total: {((ratio - 1) + share * ratio) * 100:+.2f}% of the bare process CPU"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
