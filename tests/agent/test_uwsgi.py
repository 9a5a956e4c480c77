"""Under a uWSGI that runs without Python threads (before 2.0.27, without --enable-threads).

uWSGI 2.0.27 and newer always enable threads, so a real uwsgi from the dev extra cannot show
this case; the ``uwsgi`` module here stands in for uWSGI's, with the two attributes the agent
reads (``has_threads``, ``worker_id``). tests/agent/test_uwsgi_e2e.py runs the real thing.
"""

from __future__ import annotations

import logging
import sys
import threading
import types

from otelprof.export.memory import InMemoryProfileExporter
from otelprof.profiler import Profiler


def _uwsgi_module(has_threads: int, worker_id: int) -> types.ModuleType:
    module = types.ModuleType("uwsgi")
    module.has_threads = has_threads  # type: ignore[attr-defined]
    module.worker_id = lambda: worker_id  # type: ignore[attr-defined]
    return module


def test_threads_disabled_one_warning_names_the_flag_and_nothing_starts(monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "uwsgi", _uwsgi_module(has_threads=0, worker_id=0))
    before = threading.active_count()
    profiler = Profiler(exporter=InMemoryProfileExporter())
    with caplog.at_level(logging.WARNING, logger="otelprof"):
        profiler.start()
        profiler.start()
    try:
        assert not profiler.running
        assert threading.active_count() == before
        warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(warnings) == 1, warnings
        assert "--enable-threads" in warnings[0]
    finally:
        profiler.stop()


def test_a_uwsgi_worker_starts_at_once(monkeypatch):
    # --lazy-apps, or otelprof.start() in a module loaded in the worker: no fork follows.
    monkeypatch.setitem(sys.modules, "uwsgi", _uwsgi_module(has_threads=1, worker_id=1))
    profiler = Profiler(exporter=InMemoryProfileExporter())
    try:
        assert profiler.start().running
    finally:
        profiler.stop()
    assert not profiler.running
