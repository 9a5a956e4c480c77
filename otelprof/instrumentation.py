"""Zero-code start under ``opentelemetry-instrument`` when ``OTEL_PYTHON_PROFILER_ENABLED=true``."""

from __future__ import annotations

import os

from otelprof import environment_variables as ev
from otelprof.config import env_bool


def post_instrument() -> None:
    """The ``opentelemetry_post_instrument`` entry point: runs after the SDK is configured.

    Starting here, not earlier, means the application's TracerProvider (its resource and span
    processors) already exists when the profiler looks for it.
    """
    if env_bool(os.environ, ev.OTEL_PYTHON_PROFILER_ENABLED, False):
        from otelprof._autostart import autostart

        autostart()
