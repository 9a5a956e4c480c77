"""Workload for the agent soaks: worker threads walking many distinct stacks until stdin closes.

Stacks vary (random depth through a handful of functions) so each export interval interns
thousands of them; the app's own memory does not grow, so what grows is the agent's.
"""

import random
import sys
import threading


def leaf(n: int) -> int:
    return sum(i * i for i in range(n))


def branch_a(depth: int, rng: random.Random) -> int:
    return step(depth - 1, rng) + 1


def branch_b(depth: int, rng: random.Random) -> int:
    return step(depth - 1, rng) + 2


def branch_c(depth: int, rng: random.Random) -> int:
    return step(depth - 1, rng) + 3


BRANCHES = (branch_a, branch_b, branch_c)


def step(depth: int, rng: random.Random) -> int:
    if depth <= 0:
        return leaf(200)
    return rng.choice(BRANCHES)(depth, rng)


def worker(seed: int, stop: threading.Event) -> None:
    rng = random.Random(seed)
    while not stop.is_set():
        step(rng.randint(1, 12), rng)


def main() -> int:
    stop = threading.Event()
    workers = [threading.Thread(target=worker, args=(i, stop)) for i in range(4)]
    for thread in workers:
        thread.start()
    print("soak app ready", flush=True)
    for _ in sys.stdin:
        pass
    stop.set()
    for thread in workers:
        thread.join()
    print("soak app done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
