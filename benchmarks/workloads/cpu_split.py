"""Accuracy workload: one thread spends a known share of its CPU time in each of three functions.

The ground truth is measured, not assumed: each function reads the thread CPU clock on entry and
exit, so the reported split is exact whatever the machine's load. Chunk lengths and order are
drawn from a seeded generator so no sampler can lock onto a period.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from collections import defaultdict
from typing import Dict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import WorkPhase, report

SHARES = {"split_alpha": 0.5, "split_beta": 0.3, "split_gamma": 0.2}
cpu_truth: Dict[str, float] = defaultdict(float)


def _spin(cpu_seconds: float) -> None:
    end = time.thread_time() + cpu_seconds
    while time.thread_time() < end:
        pass


def split_alpha(cpu_seconds: float) -> None:
    start = time.thread_time()
    _spin(cpu_seconds)
    cpu_truth["split_alpha"] += time.thread_time() - start


def split_beta(cpu_seconds: float) -> None:
    start = time.thread_time()
    _spin(cpu_seconds)
    cpu_truth["split_beta"] += time.thread_time() - start


def split_gamma(cpu_seconds: float) -> None:
    start = time.thread_time()
    _spin(cpu_seconds)
    cpu_truth["split_gamma"] += time.thread_time() - start


FUNCTIONS = {"split_alpha": split_alpha, "split_beta": split_beta, "split_gamma": split_gamma}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    rng = random.Random(1234)
    with WorkPhase() as phase:
        deadline = time.perf_counter() + args.seconds
        while time.perf_counter() < deadline:
            chunk = rng.uniform(0.03, 0.15)
            names = list(FUNCTIONS)
            rng.shuffle(names)
            for name in names:
                FUNCTIONS[name](chunk * SHARES[name])
    report(phase, truth={"cpu": dict(cpu_truth)}, extra={"nominal_shares": SHARES})


if __name__ == "__main__":
    main()
