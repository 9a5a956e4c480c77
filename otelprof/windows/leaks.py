"""Leak candidates: allocation stacks whose live bytes keep growing across successive windows."""

from __future__ import annotations

import collections
import logging
import math
from dataclasses import dataclass
from typing import Any, Deque, Dict, List, Optional, Tuple

from otelprof.model import Attributes, Profile, Sample, Stack, ValueType
from otelprof.windows.memory import INUSE_OBJECTS, INUSE_SPACE, HeapObservation

_logger = logging.getLogger("otelprof")

LEAK_PERIOD = ValueType("leak", "bytes")
"""Period type of leak profiles: keeps them apart from the windows' own heap profiles."""


@dataclass(frozen=True)
class LeakCandidate:
    """A stack that retained more memory in each of the last ``observations`` windows."""

    stack: Stack
    bytes_per_second: float
    objects_per_second: float
    growth_bytes: int
    growth_objects: int
    observations: int
    observed_seconds: float

    @property
    def where(self) -> str:
        frame = self.stack[0]
        return f"{frame.function} ({frame.filename}:{frame.line})"


class LeakDetector:
    """Reports stacks that grew in each of the last ``min_observations`` observations.

    Per stack, the growth must be positive every time and its rate at least
    ``min_bytes_per_second``. Windowed observations only see what was allocated while they
    were open, so a stack that keeps replacing long-lived objects (a full LRU cache) also shows
    growth in every window. For those, the process-wide count of live memory blocks
    (``sys.getallocatedblocks()``, its trend inside the same windows) must also have grown at
    least ``confirm_share`` as fast as the stack retained blocks, by a margin of two standard
    errors: a leak grows the heap, a cache at steady state frees one entry per entry it adds.
    Only growth inside windows counts, so the agent's own objects built between windows do not.
    Observations from continuous tracing see frees too and need no confirmation.

    A window is measured from its middle (``HeapObservation.first_half``): objects that requests
    in flight hold when it closes were allocated inside it and are live, so measured from its
    start every stack that serves requests would grow in every window. From the middle, they are
    matched by what requests in flight held then, and a stack must also have grown in each
    second half by at least ``second_half_share`` of the most it held at any window's middle: a
    leak grows it about as much in both halves, in-flight work only comes and goes.
    """

    def __init__(
        self,
        min_observations: int = 5,
        min_bytes_per_second: float = 1024.0,
        confirm_share: float = 0.5,
        second_half_share: float = 0.5,
    ) -> None:
        self.min_observations = min_observations
        self.min_bytes_per_second = min_bytes_per_second
        self.confirm_share = confirm_share
        self.second_half_share = second_half_share
        self._history: Deque[HeapObservation] = collections.deque(maxlen=min_observations)
        self._logged: Dict[Tuple[str, str], float] = {}

    def reset(self) -> None:
        self._history.clear()

    def observe(self, observation: HeapObservation) -> List[LeakCandidate]:
        """Add one observation; returns the current candidates, fastest growing first."""
        history = self._history
        history.append(observation)
        if len(history) < self.min_observations:
            return []
        observed_seconds = sum(o.seconds for o in history)
        # The windows' trends averaged by duration, and the standard error of that average.
        heap_blocks_rate = (
            sum(o.heap_blocks_per_second * o.seconds for o in history) / observed_seconds
        )
        heap_blocks_error = (
            math.sqrt(sum((o.heap_blocks_error * o.seconds) ** 2 for o in history))
            / observed_seconds
        )
        heap_blocks_floor = heap_blocks_rate - 2 * heap_blocks_error
        needs_confirmation = not all(o.contiguous for o in history)
        candidates = []
        for key, (size, _count) in observation.growth.items():
            if size <= 0:
                continue
            growth_bytes = 0
            growth_objects = 0
            for past in history:
                size_then, count_then = past.growth.get(key, (0, 0))
                if size_then <= 0:
                    break
                growth_bytes += size_then
                growth_objects += max(0, count_then)
            else:
                rate = growth_bytes / observed_seconds
                if rate < self.min_bytes_per_second:
                    continue
                objects_rate = growth_objects / observed_seconds
                if not self._grew_in_both_halves(key, history):
                    continue
                if needs_confirmation and heap_blocks_floor < self.confirm_share * objects_rate:
                    continue
                stack = observation.name(key)  # named only now: few stacks get this far
                if stack is None:
                    continue
                candidates.append(
                    LeakCandidate(
                        stack,
                        rate,
                        objects_rate,
                        growth_bytes,
                        growth_objects,
                        len(history),
                        observed_seconds,
                    )
                )
        candidates.sort(key=lambda c: c.bytes_per_second, reverse=True)
        return candidates

    def _grew_in_both_halves(self, key: Any, history: Deque[HeapObservation]) -> bool:
        """Did the stack grow in each window's second half at least ``second_half_share`` as
        fast as the most it held at any window's middle, per second of that first half?"""
        held_rate = 0.0
        second_rates = []
        for observation in history:
            if observation.first_half is not None and observation.first_half_seconds > 0:
                held = observation.first_half.get(key, (0, 0))[0]
                held_rate = max(held_rate, held / observation.first_half_seconds)
                second_rates.append(observation.growth.get(key, (0, 0))[0] / observation.seconds)
        return all(rate >= self.second_half_share * held_rate for rate in second_rates)

    def log(
        self, candidates: List[LeakCandidate], what: str = "memory windows", limit: int = 5
    ) -> None:
        """One warning per leaking function (again only if its rate has since doubled).

        Stacks are grouped by their allocating function; the line named is the one whose
        stack grew fastest, the rate is the function's total.
        """
        groups: Dict[Tuple[str, str], List[LeakCandidate]] = {}
        for candidate in candidates:  # fastest first, so each group's first is its biggest
            leaf = candidate.stack[0]
            groups.setdefault((leaf.function, leaf.filename), []).append(candidate)
        for key, group in list(groups.items())[:limit]:
            rate = sum(c.bytes_per_second for c in group)
            last = self._logged.get(key)
            if last is not None and rate < 2 * last:
                continue
            self._logged[key] = rate
            _logger.warning(
                "otelprof: possible memory leak in %s: live memory allocated there grew in each"
                " of the last %d %s, at %s/s (%s/min, %s over %.1f s observed)",
                group[0].where,
                group[0].observations,
                what,
                format_bytes(rate),
                format_bytes(rate * 60),
                format_bytes(sum(c.growth_bytes for c in group)),
                group[0].observed_seconds,
            )


def leak_profiles(
    candidates: List[LeakCandidate],
    start_unix_nano: int,
    end_unix_nano: int,
    attributes: Attributes = (),
) -> List[Profile]:
    """The growth of each candidate stack over the observations that flagged it."""
    if not candidates:
        return []
    attributes = tuple(sorted((*attributes, ("otelprof.profile", "leak_candidates"))))
    profiles = []
    for sample_type, values in (
        (INUSE_SPACE, [c.growth_bytes for c in candidates]),
        (INUSE_OBJECTS, [c.growth_objects for c in candidates]),
    ):
        samples = tuple(
            Sample(stack=c.stack, value=value) for c, value in zip(candidates, values) if value > 0
        )
        profiles.append(
            Profile(
                sample_type=sample_type,
                period_type=LEAK_PERIOD,
                period=1,
                start_unix_nano=start_unix_nano,
                duration_nano=max(0, end_unix_nano - start_unix_nano),
                samples=samples,
                attributes=attributes,
            )
        )
    return profiles


def format_bytes(value: Optional[float]) -> str:
    size = float(value or 0.0)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(size) < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"
