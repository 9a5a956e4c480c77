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

Stack samples per second taken of every thread, in hertz: the maximum rate. Default ``100``;
accepted range 1 to 1000. Each sample is weighted by the measured time since the previous one,
so a lower rate costs less and stays unbiased, only coarser. Unless
:envvar:`OTEL_PYTHON_PROFILER_ADAPTIVE_RATE` is ``false``, the agent samples more slowly (down
to 10 Hz) while that is what keeps its CPU within
:envvar:`OTEL_PYTHON_PROFILER_OVERHEAD_BUDGET`.
"""

OTEL_PYTHON_PROFILER_ADAPTIVE_RATE = "OTEL_PYTHON_PROFILER_ADAPTIVE_RATE"
"""
.. envvar:: OTEL_PYTHON_PROFILER_ADAPTIVE_RATE

``true`` (default): once a second the agent compares its own threads' CPU with the
application's and lowers the sampling rate (never below 10 Hz) when it is above its share of
the overhead budget, raising it back up to :envvar:`OTEL_PYTHON_PROFILER_SAMPLING_RATE` when
there is room; each halving or doubling is logged. ``false``: always sample at that rate.
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

# --- windows, GC and the overhead governor (docs/windows.md) -----------------------------------

OTEL_PYTHON_PROFILER_PRECISE_WINDOW = "OTEL_PYTHON_PROFILER_PRECISE_WINDOW"
"""
.. envvar:: OTEL_PYTHON_PROFILER_PRECISE_WINDOW

Length in seconds of the scheduled precise (yappi) windows: exact per-function times and call
counts. ``0`` disables the scheduled ones (on-demand windows still work). Default ``0.5``; range
0 to 3600; at most one window per :envvar:`OTEL_PYTHON_PROFILER_PRECISE_INTERVAL`.
"""

OTEL_PYTHON_PROFILER_PRECISE_INTERVAL = "OTEL_PYTHON_PROFILER_PRECISE_INTERVAL"
"""
.. envvar:: OTEL_PYTHON_PROFILER_PRECISE_INTERVAL

Seconds per scheduling interval of precise windows: at most one window per interval, placed at a
random offset inside it. Default ``600``; range 1 to 86400; not shorter than the window.
"""

OTEL_PYTHON_PROFILER_PRECISE_CLOCK = "OTEL_PYTHON_PROFILER_PRECISE_CLOCK"
"""
.. envvar:: OTEL_PYTHON_PROFILER_PRECISE_CLOCK

Clock of precise windows: ``wall`` (default; elapsed time, coroutine-aware for asyncio) or
``cpu`` (CPU time; measured to cost about four times more on call-heavy code).
"""

OTEL_PYTHON_PROFILER_MEMORY_WINDOW = "OTEL_PYTHON_PROFILER_MEMORY_WINDOW"
"""
.. envvar:: OTEL_PYTHON_PROFILER_MEMORY_WINDOW

Length in seconds of the scheduled memory (tracemalloc) windows. ``0`` disables the scheduled
ones. Default ``0.5``; range 0 to 3600; at most one window per
:envvar:`OTEL_PYTHON_PROFILER_MEMORY_INTERVAL`. tracemalloc slows allocation-heavy code more
than tenfold, so memory windows are short and rare by default.
"""

OTEL_PYTHON_PROFILER_MEMORY_INTERVAL = "OTEL_PYTHON_PROFILER_MEMORY_INTERVAL"
"""
.. envvar:: OTEL_PYTHON_PROFILER_MEMORY_INTERVAL

Seconds per scheduling interval of memory windows. Default ``3600``; range 1 to 86400.
"""

OTEL_PYTHON_PROFILER_MEMORY_TRACEBACK_DEPTH = "OTEL_PYTHON_PROFILER_MEMORY_TRACEBACK_DEPTH"
"""
.. envvar:: OTEL_PYTHON_PROFILER_MEMORY_TRACEBACK_DEPTH

Frames tracemalloc keeps per allocation during memory windows (its cost grows with the depth:
measured 12x at depth 1, 32x at 8, 57x at 16 on allocation-bound code). Default ``8``; range 1
to 100. When the application already runs tracemalloc, its own depth is used.
"""

OTEL_PYTHON_PROFILER_MEMORY_OVERHEAD_CAP_MIB = "OTEL_PYTHON_PROFILER_MEMORY_OVERHEAD_CAP_MIB"
"""
.. envvar:: OTEL_PYTHON_PROFILER_MEMORY_OVERHEAD_CAP_MIB

Most memory tracemalloc itself may use (``tracemalloc.get_tracemalloc_memory()``), in MiB; a
memory window that reaches it closes early. Default ``16``; range 1 to 4096.
"""

OTEL_PYTHON_PROFILER_MEMORY_SNAPSHOT_INTERVAL = "OTEL_PYTHON_PROFILER_MEMORY_SNAPSHOT_INTERVAL"
"""
.. envvar:: OTEL_PYTHON_PROFILER_MEMORY_SNAPSHOT_INTERVAL

Seconds between heap snapshots under ``otelprof run --memory`` (each one feeds the leak
detector and the exported memory profiles). Default ``10``; range 0.1 to 3600.
"""

OTEL_PYTHON_PROFILER_LEAK_MIN_WINDOWS = "OTEL_PYTHON_PROFILER_LEAK_MIN_WINDOWS"
"""
.. envvar:: OTEL_PYTHON_PROFILER_LEAK_MIN_WINDOWS

Successive memory windows (or snapshots) in which a stack's live bytes must have grown before it
is reported as a leak candidate. Default ``5``; range 2 to 100. At 3, a leak-free server that
starts a thread per request had its thread and connection churn reported in 2 of 4 one-minute
runs of 1 s windows every 3 s; at 5, in none of 7 (see the leak report in docs/windows.md).
"""

OTEL_PYTHON_PROFILER_LEAK_MIN_RATE = "OTEL_PYTHON_PROFILER_LEAK_MIN_RATE"
"""
.. envvar:: OTEL_PYTHON_PROFILER_LEAK_MIN_RATE

Slowest growth, in bytes per second, reported as a leak candidate. Default ``1024``.
"""

OTEL_PYTHON_PROFILER_OVERHEAD_BUDGET = "OTEL_PYTHON_PROFILER_OVERHEAD_BUDGET"
"""
.. envvar:: OTEL_PYTHON_PROFILER_OVERHEAD_BUDGET

Share of the process's CPU the agent may spend (its own threads plus the slowdown of open
windows), as a fraction: ``0.01`` (default) is 1%, over a sliding span of twice the longest
window interval (at least 600 s). The overhead governor shortens or skips scheduled windows to
stay inside it; on-demand windows always run, and count against it. Range 0 to 1.
"""

OTEL_PYTHON_PROFILER_WINDOW_SIGNAL = "OTEL_PYTHON_PROFILER_WINDOW_SIGNAL"
"""
.. envvar:: OTEL_PYTHON_PROFILER_WINDOW_SIGNAL

A signal (e.g. ``SIGUSR2``) that opens a precise window and then a memory window, each of its
configured length (``kill -USR2 <pid>``). Installed only when the application has no handler of
its own for that signal. Default: none.
"""

OTEL_PYTHON_PROFILER_GC = "OTEL_PYTHON_PROFILER_GC"
"""
.. envvar:: OTEL_PYTHON_PROFILER_GC

Charge time spent in the cyclic garbage collector to a ``[gc]`` frame on top of the stack that
triggered the collection, in the cpu and wall profiles. ``true`` (default) or ``false``.
"""

OTEL_PYTHON_PROFILER_WHOLE_RUN = "OTEL_PYTHON_PROFILER_WHOLE_RUN"
"""
.. envvar:: OTEL_PYTHON_PROFILER_WHOLE_RUN

``precise``: the whole program runs under yappi, its profile is exported at exit;
``memory``: the whole program runs under tracemalloc, with a heap snapshot (and leak check)
every :envvar:`OTEL_PYTHON_PROFILER_MEMORY_SNAPSHOT_INTERVAL`. Set by ``otelprof run --precise``
and ``otelprof run --memory``. Default: none (scheduled windows).
"""

# --- span correlation (docs/correlation.md) ----------------------------------------------------

OTEL_PYTHON_PROFILER_SPAN_ATTRIBUTES = "OTEL_PYTHON_PROFILER_SPAN_ATTRIBUTES"
"""
.. envvar:: OTEL_PYTHON_PROFILER_SPAN_ATTRIBUTES

Add profile summaries to the application's spans when they end: ``otelprof.cpu_time_ns`` (and
``otelprof.cpu_time.source``) on every sampled span, ``otelprof.hot_functions`` on local root
spans. ``true`` (default) or ``false``. Needs an OpenTelemetry SDK ``TracerProvider``.
"""

OTEL_PYTHON_PROFILER_SPAN_CPU_CLOCK = "OTEL_PYTHON_PROFILER_SPAN_CPU_CLOCK"
"""
.. envvar:: OTEL_PYTHON_PROFILER_SPAN_CPU_CLOCK

The clock behind ``otelprof.cpu_time_ns`` on synchronous spans, read when a span starts and
ends. ``thread`` (default): the thread's CPU clock (``CLOCK_THREAD_CPUTIME_ID``), exact. Reading
it brings the scheduler's accounting of the thread up to date, and a thread past its time slice
is then preempted at once: on CPUs with more runnable threads than they can run, that means
more context switches. ``task``: after a thread's first 64 reads, a perf ``task-clock`` event
of its own (Linux, where perf events are allowed; the C extension), continuing the same count
without touching the scheduler; it also counts interrupt and steal time spent while the thread
was on its CPU (measured 1-10 % more on a busy machine). Worth it for pools of long-lived
threads on oversubscribed CPUs (docs/benchmarks.md, a 4-thread waitress service, two runs:
context switches +15.8/+15.9 % -> +6.7/+4.5 %, CPU +3.6/+4.4 % -> +2.1/+3.4 %); threads that
serve one request keep the CPU clock.
"""

OTEL_PYTHON_PROFILER_NATIVE = "OTEL_PYTHON_PROFILER_NATIVE"
"""
.. envvar:: OTEL_PYTHON_PROFILER_NATIVE

Use the package's optional C extension (``otelprof._native``) where it was built (CPython with
a GIL): the sampler reads the span each thread is in from the thread's interpreter state, so
nothing of the agent runs when the application makes a span current; the span processor's
per-span bookkeeping runs as C; and the sampler walks stacks in C (Python 3.11+; on 3.11-3.13
from the interpreter frames, making no frame objects). ``true``
(default) or ``false``: the pure-Python paths (a hook on OpenTelemetry's runtime context, the
span processor and the stack walk in Python), as where it is not built.
"""

OTEL_PYTHON_PROFILER_MAX_ENDPOINTS = "OTEL_PYTHON_PROFILER_MAX_ENDPOINTS"
"""
.. envvar:: OTEL_PYTHON_PROFILER_MAX_ENDPOINTS

Distinct values of the ``otelprof.endpoint`` sample attribute (the local root span's name, or
``METHOD /route``); later names are reported as ``other``. ``0`` turns the attribute off.
Default ``100``; range 0 to 10000.
"""

OTEL_PYTHON_PROFILER_MAX_TASK_NAMES = "OTEL_PYTHON_PROFILER_MAX_TASK_NAMES"
"""
.. envvar:: OTEL_PYTHON_PROFILER_MAX_TASK_NAMES

Distinct values of the ``asyncio.task.name`` sample attribute (unnamed ``Task-<n>`` tasks get
none); later names are reported as ``other``. ``0`` turns the attribute off. Default ``100``;
range 0 to 10000.
"""

OTEL_PYTHON_PROFILER_PYROSCOPE_PROFILE_ID = "OTEL_PYTHON_PROFILER_PYROSCOPE_PROFILE_ID"
"""
.. envvar:: OTEL_PYTHON_PROFILER_PYROSCOPE_PROFILE_ID

Grafana Pyroscope mode: local root spans get ``pyroscope.profile.id`` (their span id) and every
sample links to its local root span instead of the innermost active span, which is what
Grafana's traces-to-profiles joins on. ``true`` or ``false`` (default).
"""
