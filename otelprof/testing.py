"""Helpers for users' own tests: profile a block of code and look at what would be exported."""

from __future__ import annotations

import contextlib
from typing import Any, Iterator, List

from otelprof.conformance import check_request
from otelprof.export.memory import InMemoryProfileExporter
from otelprof.profiler import Profiler

__all__ = ["CapturedProfiles", "capture_profiles", "check_request"]


class CapturedProfiles:
    """The requests a :func:`capture_profiles` block produced (filled when the block exits)."""

    def __init__(self, exporter: InMemoryProfileExporter, profiler: Profiler) -> None:
        self._exporter = exporter
        self._profiler = profiler

    @property
    def profiler(self) -> Profiler:
        """The profiler running the block (e.g. to wait for its sampler's ticks)."""
        return self._profiler

    @property
    def requests(self) -> List[object]:
        return list(self._exporter.get_finished_requests())


@contextlib.contextmanager
def capture_profiles(**settings: Any) -> Iterator[CapturedProfiles]:
    """Run the block under a profiler whose exports stay in memory.

    >>> with capture_profiles(sampling_rate_hz=200) as captured:
    ...     work()
    >>> captured.requests  # ExportProfilesServiceRequest messages
    """
    exporter = InMemoryProfileExporter()
    settings.setdefault("export_interval_seconds", 3600.0)
    profiler = Profiler(exporter=exporter, **settings)
    captured = CapturedProfiles(exporter, profiler)
    profiler.start()
    try:
        yield captured
    finally:
        profiler.stop()
