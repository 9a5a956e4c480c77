"""Installs its own SIGTERM/SIGUSR1/SIGUSR2/SIGALRM handlers and changes the switch interval.

Counts its handlers' calls (signals it raises itself, and a fast interval timer) and ends on
the SIGTERM the test sends: the app's handlers, not the agent's, must see every signal, and the
switch interval must stay what the app set, through a phase of tiny and one of huge intervals.
"""

import hashlib
import signal
import sys
import threading
from types import FrameType
from typing import Optional

calls = {"SIGUSR1": 0, "SIGUSR2": 0, "SIGALRM": 0}
terminated = threading.Event()


def count(signum: int, frame: Optional[FrameType]) -> None:
    calls[signal.Signals(signum).name] += 1


def on_term(signum: int, frame: Optional[FrameType]) -> None:
    terminated.set()


def work(rounds: int) -> bytes:
    digest = b""
    for _ in range(rounds):
        digest = hashlib.sha256(digest).digest()
    return digest


def main() -> int:
    for number in (signal.SIGUSR1, signal.SIGUSR2, signal.SIGALRM):
        signal.signal(number, count)
    signal.signal(signal.SIGTERM, on_term)
    sys.setswitchinterval(1e-6)  # a GIL hand-off at nearly every bytecode check
    for _ in range(200):
        signal.raise_signal(signal.SIGUSR1)  # runs the handler before returning
        work(200)
    signal.setitimer(signal.ITIMER_REAL, 0.001, 0.001)  # ticks interrupt the main thread
    work(50000)
    signal.setitimer(signal.ITIMER_REAL, 0)
    sys.setswitchinterval(0.5)  # the main thread keeps the GIL for up to half a second
    for _ in range(100):
        signal.raise_signal(signal.SIGUSR2)
        work(2000)
    print(f"usr1 {calls['SIGUSR1']} usr2 {calls['SIGUSR2']} alarms {calls['SIGALRM'] > 0}")
    print(f"switch interval {sys.getswitchinterval()}", flush=True)
    print("ready", flush=True)
    while not terminated.wait(0.05):
        work(200)
    print("got SIGTERM", flush=True)
    handler = signal.getsignal(signal.SIGTERM)
    print(f"handler {getattr(handler, '__name__', handler)}", flush=True)
    return 42


if __name__ == "__main__":
    sys.exit(main())
