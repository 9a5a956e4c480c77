"""The handle of an on-demand window: wait for it, close it early, read its profiles."""

from __future__ import annotations

import _thread
import numbers
import time
from typing import TYPE_CHECKING, Callable, List, Optional

from otelprof.model import Profile

if TYPE_CHECKING:
    from otelprof.windows.leaks import LeakCandidate

OPEN_TIMEOUT_SECONDS = 10.0
"""How long, from the request, ``precise()``/``memory()`` and ``with`` wait for a window to open:
a window queued behind an open one, or a stuck agent, never holds the caller longer."""
MAX_WINDOW_SECONDS = 86400.0  # one day: longer is surely a unit mistake (milliseconds?)


def window_seconds(seconds: object) -> Optional[float]:
    """A requested window length, checked: None (until closed) or seconds in (0, 86400].

    Checked in the caller's thread, before anything is queued, so that a bad argument is the
    caller's error (named, with the type it should have) rather than a failure on the runner.
    """
    if seconds is None:
        return None
    # bool is an int, but precise(True) is a mistake, not a one-second window.
    if isinstance(seconds, bool) or not isinstance(seconds, numbers.Real):
        raise TypeError(
            "seconds must be a number of seconds (int or float) or None,"
            f" got {seconds!r} ({type(seconds).__name__})"
        )
    value = float(seconds)
    if not 0 < value <= MAX_WINDOW_SECONDS:  # also refuses NaN
        raise ValueError(
            f"seconds must be greater than 0 and at most {MAX_WINDOW_SECONDS:g}, got {seconds!r}"
        )
    return value


class _Latch:
    """Set once, never reset; waiting on it is one C call (``lock.acquire``).

    ``threading.Event.wait`` runs the threading module's Python code in the waiting thread. A
    precise window that opens while the application waits in it records the rest of that code
    as the application's: yappi sees those calls without the agent's frame that made them. With
    a bare lock only the agent's own frame is on the waiter's stack, and that is left out.
    """

    __slots__ = ("_gate", "_guard", "_set")

    def __init__(self) -> None:
        self._gate = _thread.allocate_lock()
        self._gate.acquire()  # held until set(): waiters block on acquiring it
        self._guard = _thread.allocate_lock()
        self._set = False

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        with self._guard:  # the runner and stop() may both finish a handle
            if not self._set:
                self._set = True
                self._gate.release()

    def wait(self, timeout: Optional[float] = None) -> bool:
        if self._set:
            return True
        if timeout is None:
            acquired = self._gate.acquire()
        else:
            acquired = self._gate.acquire(True, max(0.0, timeout))
        if acquired:
            self._gate.release()  # let the next waiter through
        return acquired


class WindowHandle:
    """One requested window. ``with otelprof.precise(): ...`` covers exactly the block.

    ``profiles`` holds the window's profiles once :meth:`wait` returned True (they are also
    exported when a profiler is running); ``error`` says why a window did not run.
    """

    def __init__(self, kind: str, seconds: Optional[float], trigger: str) -> None:
        self.kind = kind
        self.seconds = seconds
        self.trigger = trigger
        self.profiles: List[Profile] = []
        self.leaks: List[LeakCandidate] = []
        self.error: Optional[str] = None
        self.closed_early: Optional[str] = None
        self._opened = _Latch()
        self._done = _Latch()
        self._changed = _Latch()  # opened or done, whichever comes first
        self._close_requested = _Latch()
        self._on_close: Optional[Callable[[], None]] = None
        self._open_deadline = time.monotonic() + OPEN_TIMEOUT_SECONDS

    def __repr__(self) -> str:
        return f"<WindowHandle {self.kind} {self.state}>"

    @property
    def state(self) -> str:
        """``pending`` (queued), ``open`` (its engine runs), ``closing``, ``done``, or
        ``failed: REASON`` (it did not run, or its data was lost: :attr:`error`)."""
        if self.done:
            return "done" if self.error is None else f"failed: {self.error}"
        if self.opened:
            return "closing" if self.close_requested else "open"
        return "pending"

    @property
    def opened(self) -> bool:
        return self._opened.is_set()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait_opened(self, timeout: Optional[float] = None) -> bool:
        """True once the engine runs (False if it failed to open, or on timeout).

        Without a ``timeout``, waits until :data:`OPEN_TIMEOUT_SECONDS` after the request.
        """
        if timeout is None:
            timeout = self._open_deadline - time.monotonic()
        self._changed.wait(max(0.0, timeout))
        return self.opened and self.error is None

    def close(self) -> None:
        """Ask the window to close now (or drop the request if it has not opened yet)."""
        self._close_requested.set()
        callback = self._on_close
        if callback is not None:
            callback()

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Wait until the window has closed and its profiles are in :attr:`profiles`."""
        return self._done.wait(timeout)

    def __enter__(self) -> WindowHandle:
        self.wait_opened()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
        self.wait(OPEN_TIMEOUT_SECONDS * 3)

    # -- for the runner ------------------------------------------------------------------------

    @property
    def close_requested(self) -> bool:
        return self._close_requested.is_set()

    def mark_opened(self) -> None:
        self._opened.set()
        self._changed.set()

    def finish(
        self,
        profiles: Optional[List[Profile]] = None,
        error: Optional[str] = None,
        leaks: Optional[List[LeakCandidate]] = None,
    ) -> None:
        self.profiles = list(profiles or [])
        self.leaks = list(leaks or [])
        self.error = error
        self._done.set()
        self._changed.set()
