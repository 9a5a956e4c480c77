"""The Profiler: wires samplers, the export processor and the exporter; survives fork and exit."""

from __future__ import annotations

import atexit
import dataclasses
import logging
import os
import signal
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple

from opentelemetry.sdk.resources import Resource

from otelprof import _uwsgi
from otelprof._celery import connect_pool_child_shutdown
from otelprof.builder import build_request
from otelprof.config import ProfilerConfig, resolve_config
from otelprof.correlation import SpanCorrelator
from otelprof.export import create_exporter
from otelprof.export.base import ProfileExporter
from otelprof.model import Attributes, Profile, ValueType
from otelprof.processor import ExportProcessor
from otelprof.resource import (
    application_resource,
    detect_resource,
    merge_explicit,
    process_identity,
)
from otelprof.samplers.rate import RateController
from otelprof.samplers.stack import StackSampler, snapshot_to_profiles
from otelprof.version import __version__
from otelprof.windows.governor import AgentCpuMeter
from otelprof.windows.manager import WindowManager

if TYPE_CHECKING:
    from opentelemetry.proto.collector.profiles.v1development.profiles_service_pb2 import (
        ExportProfilesServiceRequest,
    )

_logger = logging.getLogger("otelprof")

SCOPE_NAME = "otelprof"

ProfileSource = Callable[[], List[Profile]]
"""Something besides the stack sampler that contributes profiles at each export."""

_LIVE: weakref.WeakSet[Profiler] = weakref.WeakSet()


class Profiler:
    """Always-on profiling of this process; ``with Profiler(...):`` or ``start()``/``stop()``.

    Settings are keyword arguments of :func:`otelprof.config.resolve_config` (explicit values
    win over the environment); a bad explicit value raises :class:`~otelprof.config.ConfigError`
    here. Once constructed, nothing the profiler does raises into the application.
    """

    def __init__(
        self,
        config: Optional[ProfilerConfig] = None,
        *,
        exporter: Optional[ProfileExporter] = None,
        resource: Optional[Resource] = None,
        **settings: Any,
    ) -> None:
        if config is None:
            config = resolve_config(**settings)
        elif settings:
            config = config.replace(**settings)
        self.config = config
        self._own_exporter = exporter is None
        self.exporter = exporter if exporter is not None else create_exporter(config)
        self._explicit_resource = resource
        self._resource: Optional[Resource] = resource
        self._lock = threading.RLock()
        self._sources: List[ProfileSource] = []
        self._started = False
        self._atexit_registered = False
        # Under uWSGI: None until start() asks; True once this process may run the agent's
        # threads (a worker), False while they wait for a worker (see otelprof._uwsgi).
        self._uwsgi_worker: Optional[bool] = None
        self.correlation = SpanCorrelator.from_config(config)
        self.sampler = StackSampler(
            interval_seconds=1.0 / config.sampling_rate_hz,
            rate=_rate_controller(config),
            max_depth=config.max_stack_depth,
            tagger=self.correlation.tag,
            observer=self.correlation.observe,
            native=config.native,
        )
        self.windows = WindowManager(
            config,
            tagger=lambda: self.sampler.tagger,
            span_to_tag=self.correlation.window_tag,  # windows' spans read as samples'
        )
        self.processor = ExportProcessor(
            collect=self.collect,
            exporter=self.exporter,
            interval_seconds=config.export_interval_seconds,
            queue_size=config.queue_size,
            timeout_seconds=config.exporter.timeout_seconds,
        )

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Profiler:
        """Start sampling and exporting; calling it again is harmless."""
        with self._lock:
            if self._started:
                return self
            if self._wait_for_uwsgi_worker():
                return self
            try:
                if self._resource is None and self._explicit_resource is None:
                    self._resource = self._detect_resource()
                self.correlation.start()
                self.sampler.start()
                self.processor.start()
            except Exception:
                _logger.exception("otelprof: could not start the profiler; the application runs on")
                self.sampler.stop()
                self.correlation.stop()
                return self
            self._started = True
            _LIVE.add(self)
            if not self._atexit_registered:
                atexit.register(self._at_exit)
                self._register_multiprocessing_hook()
                if self._uwsgi_worker is None:  # uWSGI handles its workers' signals itself
                    install_sigterm_flush(self)
                self._atexit_registered = True
            # At every start, fork children included: Celery is usually imported after the
            # profiler started (otelprof run) but before the pool forks its children.
            connect_pool_child_shutdown(_stop_live_profilers)
            # Last: a whole-run precise window (otelprof run --precise) opens here, and what the
            # agent itself imports and sets up above must not be recorded as the program's.
            try:
                self.windows.start()
            except Exception:
                _logger.exception("otelprof: could not start precise/memory windows; sampling on")
            _logger.debug("otelprof: profiling at %g Hz", self.config.sampling_rate_hz)
        return self

    def _wait_for_uwsgi_worker(self) -> bool:
        """True when this is a uWSGI process that forks workers: they start the agent instead."""
        if self._uwsgi_worker is not None:
            return not self._uwsgi_worker
        if not _uwsgi.running_in_uwsgi():
            return False
        self._uwsgi_worker = False
        # Started by now when this is a worker already; else by each worker's post-fork hook.
        _uwsgi.defer_to_workers(self._start_in_uwsgi_worker)
        return True

    def _start_in_uwsgi_worker(self) -> None:
        if self._uwsgi_worker is not False:  # stopped before the worker was forked
            return
        self._uwsgi_worker = True
        self.start()

    def stop(self, timeout_seconds: Optional[float] = None) -> None:
        """Stop sampling, export what was collected (within the deadline), release resources."""
        with self._lock:
            if self._uwsgi_worker is False:
                self._uwsgi_worker = None  # its workers are not to start it any more
            if not self._started:
                return
            self._started = False
            _LIVE.discard(self)
        timeout = (
            self.config.shutdown_timeout_seconds if timeout_seconds is None else timeout_seconds
        )
        # One deadline for the whole stop, not one per stage.
        deadline = time.monotonic() + timeout
        try:
            self.sampler.stop()
            self.windows.stop(timeout)  # its last window's profiles go out with the final export
            self.processor.shutdown(max(0.0, deadline - time.monotonic()))
            self.correlation.stop()  # after the final collect, which still adds endpoints
        except Exception:
            _logger.exception("otelprof: error while stopping the profiler")

    @property
    def running(self) -> bool:
        return self._started

    def force_flush(self, timeout_seconds: float = 10.0) -> bool:
        """Export what has been collected so far; True when it was all sent in time."""
        try:
            return self.processor.force_flush(timeout_seconds)
        except Exception:
            _logger.exception("otelprof: flush failed")
            return False

    def __enter__(self) -> Profiler:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def add_source(self, source: ProfileSource) -> None:
        """Add profiles from another engine (precise or memory windows) to every export."""
        self._sources.append(source)

    # -- collection (runs on the exporter thread) ------------------------------------------------

    @property
    def resource(self) -> Resource:
        """The explicit resource, else the application's SDK resource, else the detected one.

        Looked up at every export because the application may configure its TracerProvider
        after the profiler started (``otelprof run`` starts before the program's code).
        """
        if self._explicit_resource is not None:
            return self._explicit_resource
        app = application_resource()
        if app is not None:
            return merge_explicit(app, self.config.service_name, self.config.resource_attributes)
        if self._resource is None:
            self._resource = self._detect_resource()
        return self._resource

    def _detect_resource(self) -> Resource:
        # Detection uses a thread pool, which cannot start once the interpreter is exiting:
        # it runs at start() (and after fork), never first at exit.
        return detect_resource(self.config.service_name, self.config.resource_attributes)

    def collect(self) -> Optional[ExportProfilesServiceRequest]:
        """Drain every source into one request (None when nothing at all was recorded)."""
        snapshot = self.correlation.collect(self.sampler.drain())
        # The period in force when collected: with an adaptive rate, the interval now in use.
        period = int(self.sampler.current_interval_seconds * 1e9)
        profiles = snapshot_to_profiles(snapshot, period) if snapshot.ticks else []
        for source in list(self._sources):
            try:
                profiles.extend(source())
            except Exception:
                _logger.exception("otelprof: a profile source failed; its data is skipped")
        profiles = self.windows.contribute(profiles, period, self.correlation.endpoint_tag)
        if not profiles:
            return None
        return build_request(merge_profiles(profiles), self.resource, SCOPE_NAME, __version__)

    # -- process events ------------------------------------------------------------------------

    def _at_exit(self) -> None:
        self.stop()

    def _after_fork_in_child(self) -> None:
        """The child inherits no threads: start fresh ones and drop the parent's data."""
        try:
            self.sampler.reset_after_fork()
            self.windows.reset_after_fork()
            self.correlation.reset_after_fork()
            exporter = create_exporter(self.config) if self._own_exporter else self.exporter
            self.exporter = exporter
            self.processor.reset_after_fork(exporter)
            # A forked worker is a new service instance (and pid) unless the application's
            # own resource says otherwise; detection itself is not safe to rerun here.
            if self._resource is not None:
                self._resource = self._resource.merge(Resource(process_identity()))
            self._lock = threading.RLock()
            self._started = False
            self.start()
        except Exception:
            _logger.exception("otelprof: could not restart profiling in the forked child")

    def _register_multiprocessing_hook(self) -> None:
        # multiprocessing's fork children leave through os._exit(), skipping atexit; its own
        # finalizers do run, so register one in each child (the registry is cleared at fork).
        try:
            from multiprocessing import util
        except ImportError:
            return

        def child_hook(profiler: Profiler) -> None:
            util.Finalize(profiler, profiler.stop, exitpriority=100)

        util.register_after_fork(self, child_hook)


def _rate_controller(config: ProfilerConfig) -> Optional[RateController]:
    if not config.adaptive_rate:
        return None
    meter = AgentCpuMeter()
    if not meter.available:  # no per-thread CPU clocks: nothing to steer by
        return None
    return RateController(config.sampling_rate_hz, config.overhead_budget, meter.delta_seconds)


def merge_profiles(profiles: List[Profile]) -> List[Profile]:
    """One profile per (sample type, period type, period, attributes).

    Backends show one flame graph per profile type, so e.g. the ``[gc]`` samples of the GC
    source must land in the same ``cpu`` profile as the stack sampler's. A source measuring
    the same thing differently (a precise window) marks its profiles with an attribute and
    so stays a profile of its own instead of being counted twice.
    """
    groups: Dict[Tuple[ValueType, ValueType, int, Attributes], List[Profile]] = {}
    for profile in profiles:
        key = (profile.sample_type, profile.period_type, profile.period, profile.attributes)
        groups.setdefault(key, []).append(profile)
    merged = []
    for group in groups.values():
        if len(group) == 1:
            merged.append(group[0])
            continue
        start = min(p.start_unix_nano for p in group)
        end = max(p.start_unix_nano + p.duration_nano for p in group)
        merged.append(
            dataclasses.replace(
                group[0],
                start_unix_nano=start,
                duration_nano=end - start,
                samples=tuple(s for p in group for s in p.samples),
            )
        )
    return merged


def install_sigterm_flush(profiler: Profiler) -> None:
    """Flush on SIGTERM when the application left SIGTERM at its default (die at once).

    A default SIGTERM ends the process without running atexit, losing the last interval: the
    usual fate of a plain script stopped by a supervisor. We only step in where nobody else
    handles the signal, and then die of the same signal, so the exit status is unchanged. An
    application that installs its own handler later simply replaces ours.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    try:
        if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
            return

        def flush_and_die(signum: int, frame: object) -> None:
            try:
                profiler.stop()
            finally:
                signal.signal(signum, signal.SIG_DFL)
                os.kill(os.getpid(), signum)

        signal.signal(signal.SIGTERM, flush_and_die)
    except (ValueError, OSError):  # no signals here (embedded interpreter, odd platform)
        return


def _stop_live_profilers() -> None:
    for profiler in list(_LIVE):
        profiler.stop()


def _after_fork_in_child() -> None:
    for profiler in list(_LIVE):
        profiler._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
