"""The ``OTEL_PYTHON_PROFILER_*`` environment variables, each a documented constant."""

# Registered under the ``opentelemetry_environment_variables`` entry point group so that
# OpenTelemetry tooling can list them; the docs' configuration reference is generated from the
# docstrings below (see docs/configuration.md).

OTEL_PYTHON_PROFILER_ENABLED = "OTEL_PYTHON_PROFILER_ENABLED"
"""
.. envvar:: OTEL_PYTHON_PROFILER_ENABLED

Start the profiler when the application runs under ``opentelemetry-instrument``.
``true`` or ``false``; default ``false`` (``otelprof run`` always starts it).
"""

OTEL_PYTHON_PROFILER_SAMPLING_RATE = "OTEL_PYTHON_PROFILER_SAMPLING_RATE"
"""
.. envvar:: OTEL_PYTHON_PROFILER_SAMPLING_RATE

Stack samples per second taken of every thread, in hertz. Default ``100``; accepted range 1 to
1000. Each sample is weighted by the measured time since the previous one, so a lower rate
costs less and stays unbiased, only coarser.
"""

OTEL_PYTHON_PROFILER_EXPORT_INTERVAL = "OTEL_PYTHON_PROFILER_EXPORT_INTERVAL"
"""
.. envvar:: OTEL_PYTHON_PROFILER_EXPORT_INTERVAL

Seconds between two exports of the aggregated profile. Default ``10``; range 0.1 to 3600.
"""

OTEL_PYTHON_PROFILER_MAX_STACK_DEPTH = "OTEL_PYTHON_PROFILER_MAX_STACK_DEPTH"
"""
.. envvar:: OTEL_PYTHON_PROFILER_MAX_STACK_DEPTH

Deepest stack recorded, in frames. Deeper stacks keep their innermost frames and end in a
``[truncated]`` frame. Default ``128``; range 1 to 4096.
"""

OTEL_PYTHON_PROFILER_OUTPUT_DIR = "OTEL_PYTHON_PROFILER_OUTPUT_DIR"
"""
.. envvar:: OTEL_PYTHON_PROFILER_OUTPUT_DIR

When set, each export is written to this directory as ``*.otlp.pb`` (a serialized
``ExportProfilesServiceRequest``) instead of being sent over OTLP.
"""

OTEL_PYTHON_PROFILER_QUEUE_SIZE = "OTEL_PYTHON_PROFILER_QUEUE_SIZE"
"""
.. envvar:: OTEL_PYTHON_PROFILER_QUEUE_SIZE

Export requests kept while the endpoint is unreachable. When full, the oldest request is
dropped and counted in a warning. Default ``16``; range 1 to 10000.
"""

OTEL_PYTHON_PROFILER_SHUTDOWN_TIMEOUT = "OTEL_PYTHON_PROFILER_SHUTDOWN_TIMEOUT"
"""
.. envvar:: OTEL_PYTHON_PROFILER_SHUTDOWN_TIMEOUT

Seconds the profiler may spend at exit flushing the last profile. Default ``5``; range 0 to 600.
"""

OTEL_PYTHON_PROFILER_LOG_LEVEL = "OTEL_PYTHON_PROFILER_LOG_LEVEL"
"""
.. envvar:: OTEL_PYTHON_PROFILER_LOG_LEVEL

Level of the ``otelprof`` logger (``debug``, ``info``, ``warning``, ``error``). Default: left
to the application's logging configuration.
"""
