"""Run a function in a forked child and get its exit code back, with a deadline."""

from __future__ import annotations

import os
import signal
import time
import warnings
from typing import Callable


def run_in_child(body: Callable[[], bool], deadline_seconds: float = 30.0) -> int:
    """Fork; the child exits 0 if ``body()`` is true, 1 if false, 2 if it raised.

    Returns the child's exit code, or -9 if it had to be killed at the deadline.
    """
    with warnings.catch_warnings():
        # 3.12+ warns that forking a threaded process is risky: that is the case under test.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:
        code = 2
        try:
            code = 0 if body() else 1
        finally:
            os._exit(code)
    deadline = time.monotonic() + deadline_seconds
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return -9
        time.sleep(0.01)  # polling a child's exit; the deadline bounds it
