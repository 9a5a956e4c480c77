"""When windows open: at most one of each kind per interval, at a random offset, plus on demand."""

from __future__ import annotations

import collections
import math
import random
from dataclasses import dataclass
from typing import Callable, Deque, Dict, List, Optional, Sequence

from otelprof import _unpatched

PRECISE = "precise"
MEMORY = "memory"
KINDS = (PRECISE, MEMORY)

SCHEDULED = "scheduled"
ON_DEMAND = "on_demand"
SIGNAL = "signal"
WHOLE_RUN = "whole_run"


@dataclass(frozen=True)
class WindowSpec:
    """One kind's schedule: ``length_seconds`` (0: never) per ``interval_seconds``."""

    kind: str
    length_seconds: float
    interval_seconds: float


@dataclass(frozen=True)
class PlannedWindow:
    """A window that is due now; ``length_seconds`` None means open until it is closed."""

    kind: str
    length_seconds: Optional[float]
    trigger: str
    request: Optional[object] = None  # the WindowHandle of an on-demand request


class _Slot:
    """One kind's current interval and the random start chosen inside it."""

    def __init__(self, spec: WindowSpec, start: float, rng: random.Random) -> None:
        self.spec = spec
        self._rng = rng
        self.interval_start = start
        self.planned_start = start
        self.used = False
        self._plan(start)

    def _plan(self, interval_start: float) -> None:
        spec = self.spec
        self.interval_start = interval_start
        # The window has to fit inside its interval, so offsets range over [0, interval - length].
        slack = max(0.0, spec.interval_seconds - spec.length_seconds)
        self.planned_start = interval_start + self._rng.uniform(0.0, slack)
        self.used = False

    def advance_to(self, now: float) -> int:
        """Move to the interval holding ``now``; returns how many unused intervals were missed."""
        interval = self.spec.interval_seconds
        if now < self.interval_start + interval:
            return 0
        passed = int((now - self.interval_start) // interval)
        missed = passed - (1 if self.used else 0)
        self._plan(self.interval_start + passed * interval)
        return max(0, missed)

    @property
    def interval_end(self) -> float:
        return self.interval_start + self.spec.interval_seconds


class WindowScheduler:
    """Decides which window opens next; the runner opens one at a time, so none overlap.

    ``clock`` is a monotonic clock in seconds and ``rng`` the random source, both injectable so
    tests can drive the schedule. On-demand requests go first, in the order they came; a
    scheduled window delayed past the end of its interval by another window is missed (counted
    in ``missed``), never moved into the next interval.
    """

    def __init__(
        self,
        specs: Sequence[WindowSpec],
        clock: Callable[[], float],
        rng: Optional[random.Random] = None,
    ) -> None:
        self._clock = clock
        rng = rng if rng is not None else random.Random()
        now = clock()
        self._slots: Dict[str, _Slot] = {
            spec.kind: _Slot(spec, now, rng)
            for spec in specs
            if spec.length_seconds > 0 and spec.interval_seconds > 0
        }
        self._demands: Deque[PlannedWindow] = collections.deque()
        self._lock = _unpatched.allocate_lock()
        self.missed: Dict[str, int] = {kind: 0 for kind in self._slots}

    def request(
        self, kind: str, length_seconds: Optional[float], trigger: str, request: object = None
    ) -> None:
        """Queue an on-demand window (thread-safe)."""
        with self._lock:
            self._demands.append(PlannedWindow(kind, length_seconds, trigger, request))

    def cancel(self, request: object) -> bool:
        """Drop a queued on-demand window that has not opened yet."""
        with self._lock:
            for planned in list(self._demands):
                if planned.request is request:
                    self._demands.remove(planned)
                    return True
        return False

    def pending(self) -> List[PlannedWindow]:
        with self._lock:
            return list(self._demands)

    @property
    def has_demands(self) -> bool:
        return bool(self._demands)

    def due(self) -> Optional[PlannedWindow]:
        """The window to open now, if any (and mark it taken)."""
        with self._lock:
            if self._demands:
                return self._demands.popleft()
        now = self._clock()
        best: Optional[_Slot] = None
        for kind, slot in self._slots.items():
            self.missed[kind] += slot.advance_to(now)
            if slot.used or now < slot.planned_start:
                continue
            if best is None or slot.planned_start < best.planned_start:
                best = slot
        if best is None:
            return None
        best.used = True
        spec = best.spec
        return PlannedWindow(spec.kind, spec.length_seconds, SCHEDULED)

    def seconds_until_next(self) -> float:
        """Seconds until :meth:`due` may return a window (``inf`` when nothing is scheduled)."""
        if self._demands:
            return 0.0
        now = self._clock()
        wait = math.inf
        for slot in self._slots.values():
            start = slot.interval_end if slot.used else slot.planned_start
            if not slot.used and now >= slot.interval_end:
                start = now  # due() will roll the slot over and count the miss
            wait = min(wait, max(0.0, start - now))
        return wait
