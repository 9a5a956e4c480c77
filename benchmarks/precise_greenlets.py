"""What following greenlets costs yappi: a call-heavy loop in two gevent greenlets, bare and
under yappi's CPU clock with one call stack per thread and with one per greenlet (the backend a
precise window uses under gevent and eventlet, docs/windows.md).

    python benchmarks/precise_greenlets.py            # slowdown of each backend, three rounds

Each figure is the loop's thread CPU under yappi divided by its thread CPU bare, in the same
round; a tuning aid for one machine at a time.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402  (after patching, as a gevent program does)
import statistics  # noqa: E402
import time  # noqa: E402
from typing import Dict, List, Optional  # noqa: E402

import gevent  # noqa: E402
import yappi  # noqa: E402


def _step(value: int) -> int:
    return value + 1


def _work(calls: int) -> None:
    total = 0
    for _ in range(calls):
        total = _step(total)
    gevent.sleep(0)


def _run(calls: int) -> float:
    started = time.thread_time()
    gevent.joinall([gevent.spawn(_work, calls) for _ in range(2)])
    return time.thread_time() - started


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300_000, help="per greenlet")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    slowdown: Dict[str, List[float]] = {"native_thread": [], "greenlet": []}
    for _ in range(args.rounds):
        for backend, ratios in slowdown.items():
            bare = _run(args.calls)
            yappi.set_context_backend(backend)
            yappi.set_clock_type("cpu")
            yappi.start(builtins=False, profile_threads=True)
            try:
                profiled = _run(args.calls)
            finally:
                yappi.stop()
                yappi.clear_stats()
                yappi.set_context_backend("native_thread")
            ratios.append(profiled / bare)
    for backend, ratios in slowdown.items():
        shown = ", ".join(f"{ratio:.1f}x" for ratio in ratios)
        print(f"{backend:14s} median {statistics.median(ratios):.1f}x  ({shown})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
