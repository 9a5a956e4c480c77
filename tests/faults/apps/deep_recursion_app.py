"""Spins at the bottom of a very deep recursion; finds where RecursionError strikes.

The depth at which RecursionError strikes is printed: an agent that ran Python code on the
app's threads (and so used up their recursion budget) would change it.
"""

import contextlib
import hashlib
import sys
import threading
from types import FrameType
from typing import Optional

DEEP = 20000


def spin_until(event: threading.Event) -> int:
    rounds = 0
    digest = b""
    while not event.is_set():
        digest = hashlib.sha256(digest).digest()
        rounds += 1
    return rounds


def deep(n: int, event: threading.Event) -> int:
    if n == 0:
        print(f"at depth {DEEP}", flush=True)
        spin_until(event)
        return 0
    return deep(n - 1, event) + 1


def frames_below() -> int:
    """Frames under the caller: the app may be started through a wrapper (runpy, the probe)."""
    frame: Optional[FrameType] = sys._getframe(1)
    count = 0
    while frame is not None:
        count += 1
        frame = frame.f_back
    return count


def depth_reached() -> int:
    """The stack depth (counted from the bottom) at which RecursionError strikes."""
    base = frames_below()
    depth = base

    def probe(n: int) -> None:
        nonlocal depth
        depth = base + n
        probe(n + 1)

    with contextlib.suppress(RecursionError):
        probe(0)
    return depth


def main() -> int:
    default_limit = sys.getrecursionlimit()
    print(f"recursion error at {depth_reached()} of {default_limit}", flush=True)
    sys.setrecursionlimit(DEEP + 1000)
    stdin_closed = threading.Event()

    def read_stdin() -> None:
        for _ in sys.stdin:
            pass
        stdin_closed.set()

    threading.Thread(target=read_stdin, daemon=True).start()
    print(f"returned {deep(DEEP, stdin_closed)}", flush=True)
    sys.setrecursionlimit(default_limit)
    print(f"recursion error at {depth_reached()} of {default_limit}", flush=True)
    print("deep recursion done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
