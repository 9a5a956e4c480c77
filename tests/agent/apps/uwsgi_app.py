"""A Flask app for the uWSGI tests: ``GET /slow`` is slow because of ``slow_checksum``.

The OpenTelemetry SDK is set up as OpenTelemetry's uWSGI recipe says: in each worker, from a
``uwsgidecorators.postfork`` hook (directly with ``--lazy-apps``, where the app loads in each
worker already). With ``UWSGI_APP_STARTS_OTELPROF`` set the module also calls
``otelprof.start()`` (settings from the environment), after the app's hook was registered.
Each request waits at a barrier until ``BARRIER_PARTIES`` requests are in (files in
``BARRIER_DIR``), so concurrent requests are spread over the workers, and computes until this
worker's sampler has ticked three times inside ``slow_checksum``.
"""

import hashlib
import os
import pathlib
import threading
import time

import uwsgi  # type: ignore[import-not-found]
from flask import Flask
from opentelemetry import trace
from opentelemetry.instrumentation.flask import FlaskInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from uwsgidecorators import postfork  # type: ignore[import-not-found]

import otelprof


def init_tracing() -> None:
    trace.set_tracer_provider(TracerProvider())


# Under opentelemetry-instrument the SDK and the Flask instrumentation are there already.
INSTRUMENTED = isinstance(trace.get_tracer_provider(), TracerProvider)
if INSTRUMENTED:
    pass
elif uwsgi.opt.get("lazy-apps"):
    init_tracing()
else:
    postfork(init_tracing)

if os.environ.get("UWSGI_APP_STARTS_OTELPROF"):
    otelprof.start()

app = Flask(__name__)
if not INSTRUMENTED:
    FlaskInstrumentor().instrument_app(app)
application = app

DEADLINE_SECONDS = 30.0


def _ticks() -> int:
    profiler = otelprof.get_profiler()
    return profiler.sampler._interval.ticks if profiler is not None else 0


def slow_checksum() -> bool:
    """Whether the sampler ticked three times while this ran (False: gave up at the deadline)."""
    start, deadline = _ticks(), time.monotonic() + DEADLINE_SECONDS
    digest = b""
    while _ticks() < start + 3:
        if time.monotonic() > deadline:
            return False
        for i in range(2000):
            digest = hashlib.sha256(digest + str(i).encode()).digest()
    return True


def _barrier() -> None:
    directory = pathlib.Path(os.environ["BARRIER_DIR"])
    parties = int(os.environ.get("BARRIER_PARTIES", "1"))
    (directory / f"{os.getpid()}-{threading.get_ident()}").touch()
    deadline = time.monotonic() + DEADLINE_SECONDS
    while len(list(directory.iterdir())) < parties and time.monotonic() < deadline:
        time.sleep(0.01)  # polling a condition with a deadline, not a timing assumption


@app.route("/slow")
def slow() -> str:
    _barrier()
    ticked = slow_checksum()
    trace_id = trace.get_current_span().get_span_context().trace_id
    return f"pid={os.getpid()} trace={trace_id:032x} ticked={ticked}\n"
