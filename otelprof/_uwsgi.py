"""Under uWSGI: the agent's threads start in each worker, never in the process that forks them.

uWSGI loads Python (and often the application) in its master, then forks the workers from C
without Python's fork hooks (``os.register_at_fork`` handlers do not run there). Agent threads
started before that fork are gone in the worker while the agent believes they run, and a fork
taken while one of them held the GIL leaves the worker waiting for a GIL nobody will release:
it hangs before serving a single request. So in a uWSGI process that is not a worker yet, the
agent starts nothing and hands its start to uWSGI's post-fork hook, which runs in every worker
(and in the only process when there is no master). See docs/troubleshooting.md, "uWSGI".
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import threading
from types import ModuleType
from typing import Any, Callable, Optional

from otelprof import _threads

_logger = logging.getLogger("otelprof")

THREADS_DISABLED = (
    "otelprof: uWSGI runs with Python threads disabled, so the profiler's threads cannot sample "
    "its workers: profiling is off. Start uWSGI with --enable-threads (or --threads N), or use "
    "uWSGI 2.0.27 or newer, where threads are on by default"
)


def running_in_uwsgi() -> bool:
    """Whether this interpreter is embedded in uWSGI (also before its ``uwsgi`` module exists).

    ``otelprof run`` and ``opentelemetry-instrument`` start the agent while uWSGI is still
    initialising Python: the ``uwsgi`` module comes later (Python < 3.12), so the executable
    is what tells.
    """
    if "uwsgi" in sys.modules or "uwsgi" in sys.builtin_module_names:
        return True
    try:
        executable = os.readlink("/proc/self/exe")
    except OSError:
        return False
    return "uwsgi" in os.path.basename(executable)


def _uwsgi_api() -> Optional[Any]:
    """uWSGI's ``uwsgi`` module once uWSGI has filled it in (None before, or outside uWSGI)."""
    module = sys.modules.get("uwsgi")
    return module if hasattr(module, "worker_id") else None


def defer_to_workers(start_in_worker: Callable[[], None]) -> None:
    """Have ``start_in_worker`` called where it is safe: in this process if it is a uWSGI worker
    already, else in each worker after uWSGI forked it. Nothing here raises."""
    api = _uwsgi_api()
    if api is None:  # too early to ask uWSGI anything (otelprof run, opentelemetry-instrument)
        _decide_when_uwsgi_is_ready(start_in_worker)
        return
    _decide(api, start_in_worker)


def _decide(api: Any, start_in_worker: Callable[[], None]) -> None:
    try:
        threads = bool(getattr(api, "has_threads", True))
        worker_id = int(api.worker_id())
        if not threads:
            if worker_id <= 1:  # once per uWSGI instance, not once per worker
                _logger.warning(THREADS_DISABLED)
            return
        if worker_id > 0:  # a worker (or the only process, after its post-fork hook)
            _start_here(start_in_worker)
            return
        _add_post_fork_hook(api, lambda: _start_here(start_in_worker))
        _logger.debug("otelprof: uWSGI master: profiling starts in each worker after its fork")
    except Exception:
        _logger.exception("otelprof: could not set up profiling for uWSGI workers")


def _start_here(start_in_worker: Callable[[], None]) -> None:
    # uWSGI forked this worker without Python's fork hooks, so the thread that survived the fork
    # (the main thread: uWSGI runs its post-fork hook and loads apps there) still carries the
    # master's kernel thread id, and its CPU clock would read nothing: note the real one.
    if threading.current_thread() is threading.main_thread():
        _threads._note_fork_survivor()
    start_in_worker()


def _add_post_fork_hook(api: Any, hook: Callable[[], None]) -> None:
    """Run ``hook`` in every worker, alongside the application's own post-fork hooks.

    ``uwsgidecorators`` replaces ``uwsgi.post_fork_hook`` with its chain when first imported,
    so a hook set directly would be lost as soon as the application imports it (what
    OpenTelemetry's uWSGI recipe does). Joining its chain keeps both; a hook the application had
    already set stays first in it.
    """
    safe_hook = _swallowing(hook)
    previous_hook = getattr(api, "post_fork_hook", None)
    previous_spooler = getattr(api, "spooler", None)
    decorators = _import_uwsgidecorators()
    if decorators is None:  # not installed, or no master process (it refuses to load then)
        api.post_fork_hook = _chain(previous_hook, safe_hook)
        return
    if previous_spooler is not None:  # importing uwsgidecorators replaces the spooler too
        api.spooler = previous_spooler
    chain = decorators.postfork_chain
    if previous_hook is not None and previous_hook is not decorators.postfork_chain_hook:
        chain.append(previous_hook)
    chain.append(safe_hook)


def _import_uwsgidecorators() -> Optional[ModuleType]:
    try:
        return importlib.import_module("uwsgidecorators")
    except Exception:  # ImportError, or its "you have to enable the uWSGI master" Exception
        return None


def _swallowing(hook: Callable[[], None]) -> Callable[[], None]:
    # uwsgidecorators' chain stops at the first exception: ours must never cost the app its hooks.
    def run() -> None:
        try:
            hook()
        except Exception:
            _logger.exception("otelprof: could not start profiling in the uWSGI worker")

    return run


def _chain(first: Optional[Callable[[], None]], then: Callable[[], None]) -> Callable[[], None]:
    if first is None:
        return then

    def run() -> None:
        try:
            first()
        finally:
            then()

    return run


def _decide_when_uwsgi_is_ready(start_in_worker: Callable[[], None]) -> None:
    """Decide at the first Python call once uWSGI filled in its module.

    That is the application's module in the master, or with ``--lazy-apps`` uWSGI's own
    post-fork work in each worker (it reseeds ``random``). An import hook would miss it when
    every module the app imports is loaded already (under ``opentelemetry-instrument``, the
    instrumentations import Flask or Django first). The profile function is removed at once;
    it is only ever set on the thread that initialises Python, which is the one uWSGI forks.
    """
    if sys.getprofile() is not None:  # someone profiles this interpreter: leave it alone
        _logger.warning(
            "otelprof: a profile function is set while uWSGI starts; not profiling its workers"
        )
        return

    def probe(frame: Any, event: str, arg: Any) -> None:
        api = _uwsgi_api()
        if api is not None:
            sys.setprofile(None)
            _decide(api, start_in_worker)

    sys.setprofile(probe)
