"""Start the profiler from the environment alone (otelprof run, opentelemetry-instrument)."""

from __future__ import annotations

import logging
import os

from otelprof import environment_variables as ev

_logger = logging.getLogger("otelprof")


def _configure_logging() -> None:
    level = os.environ.get(ev.OTEL_PYTHON_PROFILER_LOG_LEVEL, "").strip().upper()
    if not level:
        return
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        _logger.warning("otelprof: ignoring %s=%r", ev.OTEL_PYTHON_PROFILER_LOG_LEVEL, level)
        return
    _logger.setLevel(level)
    if not _logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        _logger.addHandler(handler)


def autostart() -> None:
    """Start the process-wide profiler; every failure is logged and swallowed."""
    try:
        _configure_logging()
        import otelprof

        otelprof.start()
    except Exception:
        _logger.exception("otelprof: could not start the profiler; the application runs on")
