"""Small deterministic building blocks for agent tests."""

from __future__ import annotations

import threading
import time
from typing import Callable, List


class FakeClock:
    """A monotonic nanosecond clock that only moves when told to."""

    def __init__(self, start_ns: int = 1_000_000_000) -> None:
        self.now_ns = start_ns

    def __call__(self) -> int:
        return self.now_ns

    def advance(self, nanos: int) -> None:
        self.now_ns += nanos


class FakeSeconds:
    """A float-seconds clock for the export processor."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def wait_until(predicate: Callable[[], bool], timeout_seconds: float = 30.0) -> None:
    """Poll ``predicate`` until true; fail after the deadline (never a fixed sleep)."""
    deadline = time.monotonic() + timeout_seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached before the deadline")
        time.sleep(0.005)


class ParkedThread:
    """A thread parked inside a known function until released."""

    def __init__(self, name: str, target: Callable[[threading.Event, threading.Event], None]):
        self.arrived = threading.Event()
        self.release = threading.Event()
        self.thread = threading.Thread(
            target=target, args=(self.arrived, self.release), name=name, daemon=True
        )

    def __enter__(self) -> ParkedThread:
        self.thread.start()
        assert self.arrived.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.thread.join(10)


def function_names(stack: tuple) -> List[str]:
    return [frame.function for frame in stack]
