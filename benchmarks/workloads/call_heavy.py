"""Overhead worst case: a fixed number of tiny calls on deep, ever-changing stacks.

A sampler's cost per tick grows with stack depth and with the number of distinct stacks it must
intern; recursion to depth ~150 with a recursive Fibonacci at the bottom gives both. The amount
of work is fixed (not the duration), so CPU ratios between configurations are meaningful.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import WorkPhase, report, scaled

# Calibrated so a bare run takes about 20 s of CPU on the benchmark machine.
ITERATIONS = 30000
DEPTH = 150


def fib(n: int) -> int:
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def tiny(x: int) -> int:
    return x + 1


def leaf_work(seed: int) -> int:
    total = fib(18 + seed % 4)
    for i in range(200):
        total = tiny(total) ^ i
    return total


def descend(depth: int, seed: int) -> int:
    if depth == 0:
        return leaf_work(seed)
    # Two call sites on different lines: the sampler sees many distinct stacks.
    if (depth + seed) % 3:
        return descend(depth - 1, seed) + 1
    return descend(depth - 1, seed + 1) - 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=float, default=1.0)
    args = parser.parse_args()
    iterations = scaled(ITERATIONS, args.scale)
    checksum = 0
    with WorkPhase() as phase:
        for i in range(iterations):
            checksum ^= descend(DEPTH + i % 20, i)
    report(phase, extra={"iterations": iterations, "checksum": checksum})


if __name__ == "__main__":
    main()
