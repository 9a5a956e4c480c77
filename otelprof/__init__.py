"""otelprof: continuous profiling for Python services, exported as OpenTelemetry profiles."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any, Optional

from otelprof.config import ConfigError, ProfilerConfig
from otelprof.version import __version__

if TYPE_CHECKING:
    from otelprof.profiler import Profiler
    from otelprof.windows.handle import WindowHandle

__all__ = [
    "ConfigError",
    "Profiler",
    "ProfilerConfig",
    "__version__",
    "get_profiler",
    "memory",
    "precise",
    "start",
    "stop",
]

_logger = logging.getLogger("otelprof")
_lock = threading.Lock()
_global: Optional[Profiler] = None


def start(**settings: Any) -> Profiler:
    """Start the process-wide profiler (idempotent: a second call returns the running one).

    Keyword arguments are the settings of :class:`Profiler` (``sampling_rate_hz``,
    ``endpoint``, ``protocol``, ``output_dir``, ``service_name``, ...); a bad explicit value
    raises :class:`ConfigError`.
    """
    global _global
    with _lock:
        if _global is not None and _global.running:
            if settings:
                _logger.warning("otelprof: already running; new settings ignored")
            return _global
        from otelprof.profiler import Profiler

        _global = Profiler(**settings)
        return _global.start()


def stop(timeout_seconds: Optional[float] = None) -> None:
    """Stop the process-wide profiler, flushing what it collected."""
    global _global
    with _lock:
        profiler, _global = _global, None
    if profiler is not None:
        profiler.stop(timeout_seconds)


def precise(seconds: Optional[float] = 5.0) -> WindowHandle:
    """Open a precise (yappi) window now: exact per-function times and call counts.

    Works with the profiler from :func:`start` (the profiles go out with the next export) and
    without one (read ``handle.profiles`` after ``handle.wait()``). ``with otelprof.precise(None):``
    covers exactly the block. Windows never overlap: a request waits for an open window to end.

    Returns once the window has opened (yappi runs), at most 10 s after the call; after that the
    handle is ``pending`` and the window opens later. Raises TypeError or ValueError for a bad
    ``seconds`` (not None or a number greater than 0 and at most 86400).
    """
    from otelprof.windows import PRECISE, request_window

    return request_window(PRECISE, seconds)


def memory(seconds: Optional[float] = 5.0) -> WindowHandle:
    """Open a memory (tracemalloc) window now: allocations and live-heap growth by stack.

    As :func:`precise`: returns once tracing is on (at most 10 s after the call), and raises
    TypeError or ValueError for a bad ``seconds``.
    """
    from otelprof.windows import MEMORY, request_window

    return request_window(MEMORY, seconds)


def get_profiler() -> Optional[Profiler]:
    """The process-wide profiler started by :func:`start`, if any."""
    return _global


def __getattr__(name: str) -> Any:
    # The agent (OpenTelemetry SDK, protobuf) loads on first use, not on ``import otelprof``:
    # ``otelprof run`` and ``otelprof top`` start in a fraction of the time.
    if name == "Profiler":
        from otelprof.profiler import Profiler

        return Profiler
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
