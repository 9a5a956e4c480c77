"""otelprof: continuous profiling for Python services, exported as OpenTelemetry profiles."""

from __future__ import annotations

import logging
import threading
from typing import Any, Optional

from otelprof.config import ConfigError, ProfilerConfig
from otelprof.profiler import Profiler
from otelprof.version import __version__

__all__ = [
    "ConfigError",
    "Profiler",
    "ProfilerConfig",
    "__version__",
    "get_profiler",
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
        _global = Profiler(**settings)
        return _global.start()


def stop(timeout_seconds: Optional[float] = None) -> None:
    """Stop the process-wide profiler, flushing what it collected."""
    global _global
    with _lock:
        profiler, _global = _global, None
    if profiler is not None:
        profiler.stop(timeout_seconds)


def get_profiler() -> Optional[Profiler]:
    """The process-wide profiler started by :func:`start`, if any."""
    return _global
