"""Shared by the window tests: an injected clock and profile readers."""

from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

from otelprof.export.memory import InMemoryProfileExporter
from otelprof.model import Profile


def start_without_scheduled_windows() -> InMemoryProfileExporter:
    """Start the process-wide profiler with only on-demand windows and no export before the
    test ends; returns its exporter."""
    import otelprof

    exporter = InMemoryProfileExporter()
    otelprof.start(
        exporter=exporter,
        export_interval_seconds=3600,
        precise_window_seconds=0,
        memory_window_seconds=0,
    )
    return exporter


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def profile_of(profiles: Sequence[Profile], sample_type: str) -> Profile:
    matches = [p for p in profiles if p.sample_type.type == sample_type]
    assert len(matches) == 1, [p.sample_type for p in profiles]
    return matches[0]


def by_leaf(profile: Profile) -> Dict[str, int]:
    """Leaf function name -> summed value."""
    out: Dict[str, int] = {}
    for sample in profile.samples:
        name = sample.stack[0].function
        out[name] = out.get(name, 0) + sample.value
    return out


def by_stack_names(profile: Profile) -> Dict[Tuple[str, ...], int]:
    out: Dict[Tuple[str, ...], int] = {}
    for sample in profile.samples:
        key = tuple(frame.function for frame in sample.stack)
        out[key] = out.get(key, 0) + sample.value
    return out


def functions(profile: Profile) -> List[str]:
    return sorted({frame.function for sample in profile.samples for frame in sample.stack})
