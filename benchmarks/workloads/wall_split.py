"""Accuracy workload: threads with a known wall-time split (sleeping, blocked, burning CPU).

Each target function measures its own wall time (and CPU time) on its thread, so the ground truth
is exact: the main thread waits in ``wall_supervise``, one thread alternates between
``wall_sleep`` (time.sleep) and ``wall_block`` (blocked on a lock with a timeout), and one thread
burns CPU in ``wall_burn``.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections import defaultdict
from typing import Callable, Dict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import WorkPhase, report

wall_truth: Dict[str, float] = defaultdict(float)
cpu_truth: Dict[str, float] = defaultdict(float)
_truth_lock = threading.Lock()
stop = threading.Event()


def _measured(name: str, body: Callable[[], object]) -> None:
    wall0, cpu0 = time.perf_counter(), time.thread_time()
    body()
    wall, cpu = time.perf_counter() - wall0, time.thread_time() - cpu0
    with _truth_lock:
        wall_truth[name] += wall
        cpu_truth[name] += cpu


def wall_sleep(seconds: float) -> None:
    _measured("wall_sleep", lambda: time.sleep(seconds))


def wall_block(seconds: float, never_released: threading.Lock) -> None:
    _measured("wall_block", lambda: never_released.acquire(timeout=seconds))


def wall_burn() -> None:
    def body() -> None:
        while not stop.is_set():
            end = time.thread_time() + 0.01
            while time.thread_time() < end:
                pass

    _measured("wall_burn", body)


def wall_supervise(seconds: float, threads: list[threading.Thread]) -> None:
    def body() -> None:
        time.sleep(seconds)
        stop.set()
        for thread in threads:
            thread.join()

    _measured("wall_supervise", body)


def _sleeper() -> None:
    held = threading.Lock()
    held.acquire()
    while not stop.is_set():
        wall_sleep(0.03)
        wall_block(0.02, held)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    with WorkPhase() as phase:
        threads = [
            threading.Thread(target=_sleeper, name="bench-sleeper"),
            threading.Thread(target=wall_burn, name="bench-burner"),
        ]
        for thread in threads:
            thread.start()
        wall_supervise(args.seconds, threads)
    report(phase, truth={"wall": dict(wall_truth), "cpu": dict(cpu_truth)})


if __name__ == "__main__":
    main()
