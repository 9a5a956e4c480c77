"""Cost of one stack-sampler tick, by thread count and stack depth (a tuning aid, seconds to run).

    python benchmarks/sampler_tick.py                  # the default grid
    python benchmarks/sampler_tick.py --threads 8 --depth 60 --ticks 2000
    python benchmarks/sampler_tick.py --threads 6 --depth 40 --walk stack  # one walk vs another

Threads wait at a known depth (idle, like a server's request threads between requests, or
spinning, so their stacks change under the sampler); the sampler's ``sample_once`` is called in
a loop and its CPU per call is read from the thread CPU clock. ``tick_us * rate_hz / 1e4`` is
the share of one core the sampler takes at that rate: the number the 1% budget is about.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, List, Sequence

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _at_depth(depth: int, body: Callable[[], None]) -> None:
    if depth <= 0:
        body()
    else:
        _at_depth(depth - 1, body)


def _start_threads(
    count: int, depth: int, busy: bool, stop: threading.Event
) -> List[threading.Thread]:
    def idle() -> None:
        stop.wait()

    def spin() -> None:
        while not stop.is_set():
            sum(range(200))

    threads = [
        threading.Thread(target=_at_depth, args=(depth, spin if busy else idle), daemon=True)
        for _ in range(count)
    ]
    for thread in threads:
        thread.start()
    return threads


WALKS = ("auto", "thread", "stack", "python")
"""auto: the sampler's own choice; thread: ``otelprof._native.walk_thread`` (interpreter frames);
stack: ``walk_stack`` (frame objects from ``sys._current_frames()``); python: no C at all."""


def _sampler(walk: str) -> object:
    from otelprof.samplers.stack import StackSampler, walk_named

    sampler = StackSampler()
    if walk != "auto":
        sampler._handles, sampler._walk = walk_named(walk)
    return sampler


def measure(
    threads: int, depth: int, busy: bool, ticks: int, rounds: int = 5, walk: str = "auto"
) -> float:
    """Median microseconds of CPU per ``sample_once`` over ``rounds`` batches of ``ticks``."""
    stop = threading.Event()
    started = _start_threads(threads, depth, busy, stop)
    try:
        sampler: Any = _sampler(walk)
        per_tick: List[float] = []
        for _ in range(rounds):
            spent = 0.0
            for _ in range(ticks):
                start = time.thread_time()
                sampler.sample_once()
                spent += time.thread_time() - start
                if busy:
                    time.sleep(0.001)  # let the spinning threads move their stacks
            per_tick.append(spent / ticks * 1e6)
            sampler.drain()
        return statistics.median(per_tick)
    finally:
        stop.set()
        for thread in started:
            thread.join()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, nargs="*", default=[1, 6, 16])
    parser.add_argument("--depth", type=int, nargs="*", default=[15, 40, 150])
    parser.add_argument("--ticks", type=int, default=300)
    parser.add_argument("--idle-only", action="store_true", help="skip the busy-thread rows")
    parser.add_argument("--rate", type=float, default=100.0, help="for the core-share column")
    parser.add_argument(
        "--walk", choices=WALKS, default="auto", help="the stack walk to time (default: auto)"
    )
    args = parser.parse_args(argv)
    print(
        "| threads | depth | state | µs per tick | share of one core at "
        f"{args.rate:g} Hz |\n|---|---|---|---|---|"
    )
    for busy in (False,) if args.idle_only else (False, True):
        for count in args.threads:
            for depth in args.depth:
                # Busy rows wait for the GIL between ticks: fewer ticks keep them to seconds.
                ticks = max(20, args.ticks // 5) if busy else args.ticks
                micros = measure(count, depth, busy, ticks, walk=args.walk)
                share = micros * args.rate / 1e4
                state = "busy" if busy else "idle"
                print(f"| {count} | {depth} | {state} | {micros:.1f} | {share:.2f}% |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
