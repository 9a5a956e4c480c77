"""Start the profiler from the environment alone (otelprof run, opentelemetry-instrument)."""

from __future__ import annotations

import logging
import os

from otelprof import environment_variables as ev

_logger = logging.getLogger("otelprof")


def _configure_logging() -> None:
    raw = os.environ.get(ev.OTEL_PYTHON_PROFILER_LOG_LEVEL, "")
    level = raw.strip().upper()
    if not level:
        return
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        _logger.warning(
            "otelprof: ignoring %s=%r (supported: debug, info, warning, error, critical); "
            "the otelprof logger keeps the level it has (warnings and errors by default)",
            ev.OTEL_PYTHON_PROFILER_LOG_LEVEL,
            raw,
        )
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
