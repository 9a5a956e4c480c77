"""The way back from profiles to traces: a span processor that summarises each span's profile on it.

When a span ends it gets ``otelprof.cpu_time_ns`` (exact from the thread CPU clock when it
started and ended on one thread outside an event loop; a sampled estimate for asyncio spans),
and a local root span gets ``otelprof.hot_functions`` (where its samples spent the most time)
and, optionally, ``pyroscope.profile.id`` for Grafana's traces-to-profiles. Every callback does
a few dictionary operations at most; nothing here waits.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import weakref
from asyncio import _get_running_loop as get_running_loop
from operator import attrgetter, itemgetter, methodcaller
from types import CodeType
from typing import Any, Callable, Dict, Hashable, List, Optional, Set, Tuple

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.trace import SpanContext, TraceFlags
from opentelemetry.util.types import AttributeValue

from otelprof._unpatched import get_ident
from otelprof.frames import function_name

__all__ = [
    "CPU_TIME_ATTRIBUTE",
    "CPU_TIME_SOURCE_ATTRIBUTE",
    "HOT_FUNCTIONS_ATTRIBUTE",
    "PYROSCOPE_PROFILE_ID_ATTRIBUTE",
    "ProfilingSpanProcessor",
    "SpanAccounting",
    "processor_for",
    "set_ending_attributes",
]

_logger = logging.getLogger("otelprof")

CPU_TIME_ATTRIBUTE = "otelprof.cpu_time_ns"
CPU_TIME_SOURCE_ATTRIBUTE = "otelprof.cpu_time.source"
"""``thread_clock`` (exact) or ``sampled`` (estimate from the samples taken in the span)."""
HOT_FUNCTIONS_ATTRIBUTE = "otelprof.hot_functions"
PYROSCOPE_PROFILE_ID_ATTRIBUTE = "pyroscope.profile.id"

HOT_FUNCTION_COUNT = 5
MAX_LIVE_SPANS = 100_000
MAX_FUNCTIONS_PER_ROOT = 256


# What is tracked about one live span, as a list (one per span in flight, made on every span
# start: a list display costs a fraction of a Python __init__, which matters on a request path
# where each extra call costs a microsecond or more). Positions:
_ROOT = 0  # local root span id, or None when the root is unknown
_THREAD = 1  # ident of the thread that started it (synchronous spans), else 0
_CPU_START = 2  # that thread's CPU clock at the start, ns, or -1
_SAMPLED_CPU = 3  # asyncio spans: CPU of the samples taken in them, ns; else None
_SPAN = 4  # local roots only: the live span, for its name; else None
_LEAF_WALL = 5  # local roots with samples: leaf code -> wall ns of those samples; else None
_PARENT = 6  # the local parent's state, if tracked


def _sdk_layout_is_known() -> bool:
    """Whether SDK spans keep their context and parent in ``_context`` and ``_parent``, and a
    ``SpanContext`` is the tuple ``(trace_id, span_id, is_remote, trace_flags, ...)``."""
    try:
        context = SpanContext(0xA, 0xB, True, TraceFlags(TraceFlags.SAMPLED))
        span = ReadableSpan(name="probe", context=context, parent=context)
        return (
            span._context is context
            and span._parent is context
            and context[:4] == (0xA, 0xB, True, TraceFlags.SAMPLED)
        )
    except Exception:
        return False


SpanGetters = Tuple[
    Callable[[Any], Any],
    Callable[[Any], Any],
    Callable[[Any], int],
    Callable[[Any], bool],
    Callable[[Any], int],
]


def span_getters(fast: bool) -> SpanGetters:
    """(span -> its SpanContext, span -> its parent's, and from a SpanContext: span id,
    is_remote, trace flags). ``fast``: C getters reading the SDK's fields; else the public API.
    """
    if fast:
        return (
            attrgetter("_context"),
            attrgetter("_parent"),
            itemgetter(1),
            itemgetter(2),
            itemgetter(3),
        )
    return (
        methodcaller("get_span_context"),
        attrgetter("parent"),
        attrgetter("span_id"),
        attrgetter("is_remote"),
        attrgetter("trace_flags"),
    )


# The span processor reads a span's ids a few times per span. Through the public API each read
# is a Python call (``get_span_context()``, then a property per field); on an instrumented
# request those calls cost more than the bookkeeping itself. So, where the SDK's layout is the
# known one (checked once, here), they are read with C getters; else through the public API.
FAST_SPAN_ACCESS = _sdk_layout_is_known()
_context_of, _parent_of, _span_id, _is_remote, _flags = span_getters(FAST_SPAN_ACCESS)

_SAMPLED = TraceFlags.SAMPLED
_IGNORE: Callable[[Any], object] = id
"""A do-nothing callable implemented in C: bound as ``on_end`` once ``_on_ending`` does the work
(the SDK calls every processor's ``on_end``; a Python no-op costs about a microsecond there)."""


def set_ending_attributes(span: Any, attributes: Dict[str, AttributeValue]) -> bool:
    """Add attributes to a span inside ``_on_ending``; False when the SDK no longer allows it.

    The specification says the span is still writable in OnEnding, but SDK 1.44-1.45 freeze
    it first (opentelemetry-python#5614). The exported span shares the attribute container, so
    writing into it reaches every exporter, frozen or not. The values are already in the SDK's
    cleaned form (int, str, tuple of str), so they go in with one locked update (``__setitem__``
    re-validates each value and costs ~2 us apiece); the length limit is applied here, and a
    full container is left alone rather than evicting the application's own attributes.
    """
    bounded = getattr(span, "_attributes", None)
    if not isinstance(bounded, BoundedAttributes):
        # Not the SDK's container: only the public API is left, on a span still recording.
        if span.is_recording():
            span.set_attributes(attributes)
            return True
        return False
    store = getattr(bounded, "_dict", None)
    size = len(store) if isinstance(store, dict) else len(bounded)  # (its __len__ is Python)
    if bounded.maxlen is not None and size + len(attributes) > bounded.maxlen:
        return False
    if bounded.max_value_len is not None:
        attributes = {k: _fit(v, bounded.max_value_len) for k, v in attributes.items()}
    lock = getattr(bounded, "_lock", None)
    if isinstance(store, dict) and lock is not None:
        with lock:
            store.update(attributes)
        return True
    if not hasattr(bounded, "_immutable"):
        return False
    immutable = bounded._immutable
    bounded._immutable = False
    try:
        for key, value in attributes.items():
            bounded[key] = value
    finally:
        bounded._immutable = immutable
    return True


def _fit(value: AttributeValue, max_length: int) -> AttributeValue:
    if isinstance(value, str):
        return value[:max_length]
    if isinstance(value, tuple):
        return tuple(v[:max_length] if isinstance(v, str) else v for v in value)
    return value


def describe(code: CodeType) -> str:
    """``function (dir/file.py:line)``: the last two path parts keep it short yet findable."""
    path = code.co_filename.replace(os.sep, "/")
    short = "/".join(path.rsplit("/", 2)[-2:])
    return f"{function_name(code)} ({short}:{code.co_firstlineno})"


def _span_clock(name: str, native: bool) -> Callable[[], int]:
    """The clock of ``otelprof.cpu_time_ns`` (OTEL_PYTHON_PROFILER_SPAN_CPU_CLOCK).

    ``thread``: ``time.thread_time_ns``. ``task``: ``otelprof._native.span_clock_ns``, which
    moves a long-lived thread onto a perf task-clock event that does not make the scheduler
    preempt it early (see the C source); where the extension has none (not Linux, not built,
    ``native`` off) the thread clock, said once.
    """
    if name == "task":
        try:
            if native:
                from otelprof._native import span_clock_ns

                clock: Callable[[], int] = span_clock_ns
                return clock
        except ImportError:
            pass
        _logger.warning(
            "otelprof: OTEL_PYTHON_PROFILER_SPAN_CPU_CLOCK=task needs the C extension on Linux;"
            " using the thread CPU clock"
        )
    return time.thread_time_ns


def _gevent_hub() -> Any:
    """gevent's hub of the calling thread, if it made one here, else None. Its greenlets share
    the thread as asyncio tasks share a loop's, so a span's thread CPU time would include
    theirs. (The C hooks' ``other_scheduler`` is the same.)"""
    try:
        return sys.modules["gevent._hub_local"].get_hub_if_exists()
    except Exception:
        return None


def _native_hooks() -> Optional[Callable[..., Any]]:
    """``otelprof._native.SpanHooks`` where it can stand in for the Python hooks below: the
    extension was built and the SDK's span layout is the one it reads."""
    if not FAST_SPAN_ACCESS:
        return None
    try:
        from otelprof._native import SpanHooks
    except ImportError:
        return None
    return SpanHooks


class SpanAccounting:
    """Live span bookkeeping shared by the span processor and the sampler's observer.

    ``on_start`` and ``on_ending`` run on the application's request path, once per span. Where
    the C extension is built they are its ``SpanHooks`` methods (``native=False``: never), which
    do the common case (a span started and ended on one thread outside an event loop) and hand
    everything else to ``_finish`` here; the Python methods below are the same logic, whole.
    """

    def __init__(
        self,
        *,
        span_attributes: bool = True,
        pyroscope_profile_id: bool = False,
        cpu_clock: str = "thread",
        thread_cpu_ns: Optional[Callable[[], int]] = None,
        native: bool = True,
    ) -> None:
        self.span_attributes = span_attributes
        self.pyroscope_profile_id = pyroscope_profile_id
        if thread_cpu_ns is None:
            thread_cpu_ns = _span_clock(cpu_clock, native)
        self._thread_cpu_ns = thread_cpu_ns
        self._live: Dict[int, List[Any]] = {}
        self._descriptions: Dict[CodeType, str] = {}
        self._untracked = 0
        self._write_failures = 0
        self._ending_seen = False
        self._on_first_ending: Optional[Callable[[], None]] = None
        hooks_type = _native_hooks() if native else None
        self._hooks: Any = None
        if hooks_type is not None:
            self._hooks = hooks_type(
                live=self._live,
                clock=thread_cpu_ns,
                running_loop=get_running_loop,  # the C side checks for gevent itself
                bounded_type=BoundedAttributes,
                slow_end=self._finish,
                write=self._write,
                on_error=_log_once,
                max_live=MAX_LIVE_SPANS,
                span_attributes=span_attributes,
                pyroscope=pyroscope_profile_id,
            )
            # What the span processor binds (instance attributes shadow the methods).
            self.on_start = self._hooks.on_start  # type: ignore[method-assign]
            self.on_ending = self._hooks.on_ending  # type: ignore[method-assign]

    @property
    def native(self) -> bool:
        """True: ``on_start``/``on_ending`` are the C extension's."""
        return self._hooks is not None

    @property
    def on_first_ending(self) -> Optional[Callable[[], None]]:
        """Called once, at the first ``_on_ending`` (the processor learns the SDK calls it)."""
        if self._hooks is not None:
            first: Optional[Callable[[], None]] = self._hooks.first_ending
            return first
        return self._on_first_ending

    @on_first_ending.setter
    def on_first_ending(self, callback: Optional[Callable[[], None]]) -> None:
        if self._hooks is not None:
            self._hooks.first_ending = callback
        else:
            self._on_first_ending = callback

    @property
    def untracked(self) -> int:
        """Spans not tracked because too many were live at once."""
        return self._untracked + (self._hooks.untracked if self._hooks is not None else 0)

    @property
    def write_failures(self) -> int:
        """Spans whose attributes could not be written (their container was full)."""
        native = self._hooks.write_failures if self._hooks is not None else 0
        return self._write_failures + native

    # -- span lifecycle (application threads) ---------------------------------------------------

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        """``SpanProcessor.on_start`` (bound straight onto the processor: one call less)."""
        try:
            span_context = _context_of(span)
            if not _flags(span_context) & _SAMPLED:
                return
            live = self._live
            if len(live) >= MAX_LIVE_SPANS:
                self._untracked += 1  # spans that never end: stop tracking rather than grow
                return
            span_id: int = _span_id(span_context)
            parent = _parent_of(span)
            if parent is None or _is_remote(parent):
                # (the leaf map is made by the sampler, for the few roots a sample lands in:
                # one allocation less per request, and fewer young objects for the GC)
                state: List[Any] = [span_id, 0, -1, None, span, None, None]
            else:
                parent_state = live.get(_span_id(parent))
                root_id = parent_state[_ROOT] if parent_state is not None else None
                state = [root_id, 0, -1, None, None, None, parent_state]
            if self.span_attributes:
                scheduler = get_running_loop()
                if scheduler is None and "gevent._hub_local" in sys.modules:
                    scheduler = _gevent_hub()
                if scheduler is None:
                    state[_THREAD] = get_ident()
                    state[_CPU_START] = self._thread_cpu_ns()
                else:
                    # Other tasks (or greenlets) run on this thread while the span waits: its
                    # thread CPU would include theirs, so the estimate comes from the samples
                    # taken in the span.
                    state[_SAMPLED_CPU] = 0
            live[span_id] = state
        except Exception:
            _log_once("on_start")

    def on_ending(self, span: Any) -> None:
        """``SpanProcessor._on_ending``: the span can still get attributes."""
        if not self._ending_seen:
            self._ending_seen = True
            if self._on_first_ending is not None:
                self._on_first_ending()
        try:
            attributes = self._end(span)
            if attributes:
                self._write(span, attributes)
        except Exception:
            _log_once("_on_ending")

    def on_end(self, span: Any) -> None:
        """``SpanProcessor.on_end``: bookkeeping only, for an SDK without ``_on_ending``."""
        seen = self._hooks.ending_seen if self._hooks is not None else self._ending_seen
        if not seen:
            try:
                self._end(span)
            except Exception:
                _log_once("on_end")

    def _finish(self, span: Any, state: List[Any]) -> None:
        """What the C hooks leave to Python: a span's end from its (already removed) state."""
        attributes = self._end(span, state)
        if attributes:
            self._write(span, attributes)

    def _write(self, span: Any, attributes: Dict[str, AttributeValue]) -> None:
        if not set_ending_attributes(span, attributes):
            self._write_failures += 1

    def _end(
        self, span: Any, state: Optional[List[Any]] = None
    ) -> Optional[Dict[str, AttributeValue]]:
        """Forget a span that ends; the attributes it gets, if any."""
        if state is None:
            state = self._live.pop(_span_id(_context_of(span)), None)
            if state is None:
                return None  # not sampled, or started before the processor was attached
        cpu = state[_SAMPLED_CPU]
        if cpu is not None:
            source = "sampled"
        elif state[_CPU_START] >= 0 and state[_THREAD] == get_ident():
            cpu = self._thread_cpu_ns() - state[_CPU_START]
            cpu = cpu if cpu > 0 else 0
            source = "thread_clock"
        # (ended on another thread: no single thread clock covers it, so no CPU time)
        root_span = state[_SPAN]
        if cpu is None and root_span is None:
            return None
        attributes: Dict[str, AttributeValue] = {}
        if cpu is not None:
            attributes[CPU_TIME_ATTRIBUTE] = cpu
            attributes[CPU_TIME_SOURCE_ATTRIBUTE] = source
            # An asyncio span's estimate covers its descendants too: its own samples were
            # charged to it, its children's to the children, whose totals flow up here.
            parent = state[_PARENT]
            if parent is not None and parent[_SAMPLED_CPU] is not None:
                parent[_SAMPLED_CPU] += cpu
        if root_span is not None:
            leaf_wall = state[_LEAF_WALL]
            if self.span_attributes and leaf_wall:
                attributes[HOT_FUNCTIONS_ATTRIBUTE] = self._hot_functions(leaf_wall)
            if self.pyroscope_profile_id:
                attributes[PYROSCOPE_PROFILE_ID_ATTRIBUTE] = f"{state[_ROOT]:016x}"
        return attributes

    def _hot_functions(self, leaf_wall: Dict[CodeType, int]) -> Tuple[str, ...]:
        ranked = sorted(leaf_wall.items(), key=lambda item: -item[1])[:HOT_FUNCTION_COUNT]
        names = []
        for code, _ in ranked:
            text = self._descriptions.get(code)
            if text is None:
                if len(self._descriptions) >= 10_000:
                    self._descriptions.clear()
                text = self._descriptions[code] = describe(code)
            names.append(text)
        return tuple(names)

    # -- read by the sampler and the collect step ------------------------------------------------

    def observe(self, tag: Hashable, leaf: Optional[CodeType], cpu_ns: int, wall_ns: int) -> None:
        """The sampler's observer: charge one sample to its span and its local root."""
        span_id = getattr(tag, "span_id", 0)
        if not span_id:
            return
        try:
            self._charge(tag, span_id, leaf, cpu_ns, wall_ns)
        except Exception:  # an exception here would stop the sampler thread
            _log_once("observe")

    def _charge(
        self, tag: Hashable, span_id: int, leaf: Optional[CodeType], cpu_ns: int, wall_ns: int
    ) -> None:
        live = self._live
        state = live.get(span_id)
        if state is not None and state[_SAMPLED_CPU] is not None:
            state[_SAMPLED_CPU] += cpu_ns
        root_id = getattr(tag, "root_id", 0)
        root = live.get(root_id) if root_id else None
        if root is not None and leaf is not None and root[_SPAN] is not None:
            leaf_wall = root[_LEAF_WALL]
            if leaf_wall is None:
                root[_LEAF_WALL] = {leaf: wall_ns}
            else:
                previous = leaf_wall.get(leaf)
                if previous is not None:
                    leaf_wall[leaf] = previous + wall_ns
                elif len(leaf_wall) < MAX_FUNCTIONS_PER_ROOT:
                    leaf_wall[leaf] = wall_ns

    def root_of(self, span_id: int) -> Optional[int]:
        state = self._live.get(span_id)
        return state[_ROOT] if state is not None else None

    def live_root(self, root_id: int) -> Any:
        state = self._live.get(root_id)
        return state[_SPAN] if state is not None else None

    def clear(self) -> None:
        self._live.clear()


class ProfilingSpanProcessor(SpanProcessor):
    """Added once to an SDK ``TracerProvider``; a profiler binds its accounting to it.

    Binding puts the accounting's methods on the instance, so the SDK calls them directly; the
    class's own methods are the no-ops left when no profiler is bound.
    """

    def __init__(self) -> None:
        self.target: Optional[SpanAccounting] = None

    def bind(self, target: SpanAccounting) -> None:
        self.target = target
        self.on_start = target.on_start  # type: ignore[method-assign]
        self._on_ending = target.on_ending  # type: ignore[method-assign]
        self.on_end = target.on_end  # type: ignore[method-assign]
        target.on_first_ending = self._ending_is_called

    def _ending_is_called(self) -> None:
        # This SDK calls _on_ending, which does all the work: on_end need not even be a call
        # into Python.
        if self.target is not None:
            self.on_end = _IGNORE  # type: ignore[method-assign, assignment]

    def unbind(self) -> None:
        if self.target is not None:
            self.target.on_first_ending = None
        self.target = None
        for name in ("on_start", "_on_ending", "on_end"):
            self.__dict__.pop(name, None)

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        pass

    def _on_ending(self, span: Any) -> None:
        pass

    def on_end(self, span: Any) -> None:
        pass

    def shutdown(self) -> None:
        self.unbind()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


_FAILED: Set[str] = set()
_PROCESSORS: weakref.WeakKeyDictionary[TracerProvider, ProfilingSpanProcessor] = (
    weakref.WeakKeyDictionary()
)


def _log_once(where: str) -> None:
    if where not in _FAILED:
        _FAILED.add(where)
        _logger.exception("otelprof: span processor %s failed (logged once)", where)


def processor_for(provider: TracerProvider) -> ProfilingSpanProcessor:
    """The provider's profiling span processor, added on first use (processors can't be removed,
    so one is reused across profiler restarts)."""
    processor = _PROCESSORS.get(provider)
    if processor is None:
        processor = _PROCESSORS[provider] = ProfilingSpanProcessor()
        provider.add_span_processor(processor)
    return processor
