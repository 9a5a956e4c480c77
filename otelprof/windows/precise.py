"""Precise windows: yappi's exact per-function times and call counts, as profiles of their own.

Representation (what yappi knows, nothing invented): yappi records, per function, its call count
and its own ("self") time, and per caller -> callee edge the same two numbers. A sample's stack
is therefore at most two frames deep, ``(callee, caller)`` leaf first, and holds the callee's
calls and self time when called from that caller; calls yappi saw without a profiled caller (a
thread's entry point, or a caller that was running when the window opened) keep a one-frame
stack ``(callee,)``. Summed per leaf function, the values are exact self times and call counts;
a function's "total" in a flame graph includes only its direct callees' self time. Frames carry
the function's first line (yappi does not know which line was executing).
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Tuple

from otelprof import _unpatched
from otelprof._threads import AGENT_THREAD_IDENTS, is_agent_thread, thread_of
from otelprof.model import (
    Attributes,
    Frame,
    Profile,
    Sample,
    SampleTag,
    SpanLink,
    Stack,
    ValueType,
)
from otelprof.windows.names import AGENT_DIR

_logger = logging.getLogger("otelprof")

SpanToTag = Callable[[Any], Optional[SampleTag]]
"""A span object -> the sample tag the stack sampler would give it (the span correlation's)."""

CALLS = ValueType("calls", "count")
PRECISE_PERIOD_NANOS = ValueType("precise", "nanoseconds")
PRECISE_PERIOD_COUNT = ValueType("precise", "count")
"""Period types of precise profiles: every call is recorded (period 1), and the distinct period
type keeps backends that name a profile after it (Pyroscope) from adding these exact values into
the stack sampler's ``cpu``/``wall`` series."""

# Positions in the tuples yappi's C extension hands to ``enum_func_stats`` callbacks (the layout
# yappi.YFuncStat reads too).
_NAME, _MODULE, _LINENO, _NCALL, _BUILTIN, _TTOT, _TSUB, _INDEX, _CHILDREN, _CTX, _TAG = (
    0,
    1,
    2,
    3,
    5,
    6,
    7,
    8,
    9,
    10,
    12,
)
_YAPPI_MODULES = ("yappi.py", "_yappi")
# Positions in the tuples of ``_yappi.enum_context_stats`` (what yappi's context stats read).
_CONTEXT_ID, _CONTEXT_TID = 1, 2


class WindowUnavailable(Exception):
    """The engine cannot open a window now; the message says why (logged, window skipped)."""


class SpanTags:
    """yappi's tag callback: the span active where a function is called, as its span id.

    The callback runs inside the calling thread (or asyncio task), so it reads OpenTelemetry's
    current context directly: no cross-thread table is needed, and tasks sharing a thread each
    get their own span. The tag is the 64-bit span id (0: no span); the span objects are kept
    until the window closes so that tags become the same sample tags (link, local root) the
    stack sampler gives (``span_to_tag``, the span correlation's), or plain links without it.
    """

    def __init__(self, span_to_tag: Optional[SpanToTag] = None) -> None:
        from opentelemetry import trace

        self._get_current_span = trace.get_current_span
        self._spans: Dict[int, Any] = {}
        self._span_to_tag = span_to_tag

    @staticmethod
    def tracing_configured() -> bool:
        """Only an SDK tracer provider makes spans worth the callback's cost on every call."""
        try:
            from opentelemetry import trace

            provider = trace.get_tracer_provider()
        except Exception:
            return False
        return type(provider).__name__ not in ("ProxyTracerProvider", "NoOpTracerProvider")

    def __call__(self) -> int:
        span = self._get_current_span()
        span_id: int = span.get_span_context().span_id
        if span_id and span_id not in self._spans:
            self._spans[span_id] = span
        return span_id

    def sample_tag(self, tag: int) -> Optional[SampleTag]:
        span = self._spans.get(tag)
        if span is None:
            return None
        if self._span_to_tag is not None:
            try:
                return self._span_to_tag(span)
            except Exception:
                _logger.debug("otelprof: span correlation failed for a precise window sample")
        context = span.get_span_context()
        if not context.trace_id:
            return None
        return SampleTag(link=SpanLink.from_ints(context.trace_id, context.span_id))


ThreadLabels = Dict[int, Tuple[int, str]]
"""yappi context id -> (thread.id, thread.name); contexts of agent threads are left out."""


def pits_to_profiles(
    pits: Sequence[Sequence[Any]],
    threads: ThreadLabels,
    tag_of: Callable[[int], Optional[SampleTag]],
    clock_type: str,
    start_unix_nano: int,
    duration_nano: int,
    attributes: Attributes = (),
) -> List[Profile]:
    """Turn yappi's per-(thread, tag, function) records into a time profile and a calls profile.

    The agent's own work is left out: records of agent threads (contexts not in ``threads``),
    of the agent's modules and of yappi's, and of any function whose every call came from a
    record left out (``Event.wait`` called by the agent's ``WindowHandle.wait``; transitively).
    Of a function called both by the application and by the agent, only the calls from the
    application (and those yappi saw without a caller) are kept.
    """
    by_index: Dict[int, Sequence[Any]] = {pit[_INDEX]: pit for pit in pits}
    left_out = {
        index
        for index, pit in by_index.items()
        if pit[_CTX] not in threads
        or pit[_BUILTIN]
        or pit[_MODULE].endswith(_YAPPI_MODULES)
        or pit[_MODULE].startswith(AGENT_DIR)  # the agent's own work in application threads
    }
    _leave_out_what_only_they_call(by_index, left_out)

    kept: Dict[int, Tuple[Frame, Attributes, Optional[SpanLink], int, int, int]] = {}
    in_c: Dict[int, float] = {}  # seconds each kept function spent in C functions it called
    for index, pit in by_index.items():
        if index in left_out:
            continue
        ctx = threads[pit[_CTX]]
        frame = Frame(pit[_NAME], pit[_MODULE], pit[_LINENO], pit[_LINENO])
        thread_attrs: Attributes = (("thread.id", ctx[0]), ("thread.name", ctx[1]))
        tag = tag_of(pit[_TAG]) if pit[_TAG] else None
        link = tag.link if tag is not None else None
        attrs = tuple(sorted(thread_attrs + (tag.attributes if tag is not None else ())))
        in_c[index] = _time_in_c(pit, index, by_index)
        own = pit[_TSUB] + in_c[index]
        kept[index] = (frame, attrs, link, pit[_NCALL], _nanos(own), index)

    totals: Dict[Tuple[Stack, Attributes, Optional[SpanLink]], List[int]] = {}
    seen_calls: Dict[int, int] = {}
    seen_nanos: Dict[int, int] = {}

    def add(stack: Stack, attrs: Attributes, link: Optional[SpanLink], calls: int, ns: int) -> None:
        entry = totals.setdefault((stack, attrs, link), [0, 0])
        entry[0] += calls
        entry[1] += ns

    for index, pit in by_index.items():
        caller = kept.get(index)
        for child_index, ncall, _nactual, ttot, tsub in pit[_CHILDREN]:
            callee = kept.get(child_index)
            if callee is None:
                continue
            # The callee's time in C, shared among its callers by their part of its total time.
            callee_total = by_index[child_index][_TTOT]
            share = ttot / callee_total if callee_total > 0 else 0.0
            nanos = _nanos(tsub + in_c[child_index] * min(1.0, max(0.0, share)))
            # Calls from a record left out are counted as seen but not added: the agent made
            # them, and they must not fall into the callee's caller-less remainder either.
            if caller is not None:
                add((callee[0], caller[0]), callee[1], callee[2], ncall, nanos)
            seen_calls[child_index] = seen_calls.get(child_index, 0) + ncall
            seen_nanos[child_index] = seen_nanos.get(child_index, 0) + nanos
    for index, (frame, attrs, link, ncall, nanos, _) in kept.items():
        calls_left = ncall - seen_calls.get(index, 0)
        nanos_left = nanos - seen_nanos.get(index, 0)
        if calls_left > 0 or nanos_left > 0:
            add((frame,), attrs, link, max(0, calls_left), max(0, nanos_left))

    time_type = ValueType(clock_type, "nanoseconds")
    profiles = []
    for column, sample_type, period_type in (
        (1, time_type, PRECISE_PERIOD_NANOS),
        (0, CALLS, PRECISE_PERIOD_COUNT),
    ):
        samples = tuple(
            Sample(stack=stack, value=values[column], attributes=attrs, link=link)
            for (stack, attrs, link), values in totals.items()
            if values[column] > 0
        )
        profiles.append(
            Profile(
                sample_type=sample_type,
                period_type=period_type,
                period=1,
                start_unix_nano=start_unix_nano,
                duration_nano=duration_nano,
                samples=samples,
                attributes=attributes,
            )
        )
    return profiles


def _time_in_c(pit: Sequence[Any], index: int, by_index: Dict[int, Sequence[Any]]) -> float:
    """Seconds a function spent in the C functions it called (``len``, ``sum``, I/O, ...).

    yappi keeps the time of C calls out of the caller's own time (``tsub``), as edges to C
    functions of which it enumerates no record when run without builtins (or records that are
    left out: a C function has no Python frame to show), so that time would vanish from the
    profile. It is added back to the caller's own time here: as in
    the stack sampler, whose leaf is the Python function that called into C. Without it a loop
    over ``sum(range(n))`` showed 5 % of its wall time. Whatever the total (``ttot``) holds
    beyond the own time and every callee's time is C time too. A call of itself is left out of
    the callees (recursion is inside ``ttot`` already); a negative rest (mutual recursion
    counts some callee time twice) is 0.
    """
    in_c = 0.0
    callees = 0.0
    for child_index, _ncall, _nactual, ttot, _tsub in pit[_CHILDREN]:
        if child_index == index:
            continue
        callees += float(ttot)
        child = by_index.get(child_index)
        if child is None or child[_BUILTIN]:  # yappi enumerates no record of a C function
            in_c += float(ttot)
    return in_c + max(0.0, float(pit[_TTOT]) - float(pit[_TSUB]) - callees)


def _leave_out_what_only_they_call(by_index: Dict[int, Sequence[Any]], left_out: Set[int]) -> None:
    """Add to ``left_out`` every record all of whose calls came from records left out.

    Repeated until nothing changes, so that what the agent's code calls, and what that calls
    in turn, goes too (yappi records one caller level; a function the application also called
    has calls from elsewhere and stays). Calls yappi saw without a caller count as elsewhere;
    a function's calls of itself count as coming from wherever its other calls came from.

    Calls from elsewhere are read on the edges, not as the function's call count minus the
    agent's edges: yappi counts a call on its edge when it starts and in the function's count
    when it returns, so a call of the agent's still running when the window closes (its join
    of the windows thread at exit) would otherwise cancel one of the application's.
    """
    recursive: Dict[int, int] = {}
    incoming: Dict[int, int] = {}
    for index, pit in by_index.items():
        for edge in pit[_CHILDREN]:
            child_index, ncall = edge[0], edge[1]
            if child_index == index:
                recursive[index] = recursive.get(index, 0) + ncall
            else:
                incoming[child_index] = incoming.get(child_index, 0) + ncall
    changed = True
    while changed:
        changed = False
        from_left_out: Dict[int, int] = {}
        for index in left_out:
            for edge in by_index[index][_CHILDREN]:
                child_index, ncall = edge[0], edge[1]
                if child_index != index:
                    from_left_out[child_index] = from_left_out.get(child_index, 0) + ncall
        for index, ncall in from_left_out.items():
            callee = by_index.get(index)
            if callee is None or index in left_out:
                continue
            into = incoming.get(index, 0)
            without_caller = max(0, callee[_NCALL] - recursive.get(index, 0) - into)
            if into - ncall + without_caller <= 0:
                left_out.add(index)
                changed = True


def _nanos(seconds: float) -> int:
    return round(seconds * 1e9)


class PreciseEngine:
    """Opens and closes yappi around one window, and always puts yappi back as it found it."""

    kind = "precise"

    def __init__(
        self,
        clock_type: str = "wall",
        tag_spans: bool = True,
        span_to_tag: Optional[SpanToTag] = None,
    ) -> None:
        self.clock_type = clock_type
        self.tag_spans = tag_spans
        self.span_to_tag = span_to_tag
        self._yappi: Any = None
        self._previous_clock: Optional[str] = None
        self._previous_thread_hook: Any = None
        self._tags: Optional[SpanTags] = None
        self._threads: Dict[int, Tuple[int, str]] = {}
        self._agent_threads: Set[int] = set()
        self._greenlets = False  # yappi's greenlet backend, chosen for this window
        self._lock = threading.RLock()
        self.running = False

    @property
    def cost_key(self) -> str:
        return f"precise:{self.clock_type}"

    def open(self) -> None:
        try:
            import yappi
        except ImportError as error:
            raise WindowUnavailable(f"yappi is not installed ({error})") from None
        if yappi.is_running():
            raise WindowUnavailable("the application is running yappi itself")
        if sys.getprofile() is not None:
            raise WindowUnavailable("another profiler is installed (sys.setprofile)")
        try:
            has_stats = len(yappi.get_thread_stats()) > 0
        except Exception:  # e.g. a greenlet context backend chosen by the application
            raise WindowUnavailable("yappi is configured by the application") from None
        if has_stats:
            raise WindowUnavailable("yappi holds the application's own statistics")
        self._yappi = yappi
        self._previous_clock = str(yappi.get_clock_type()).lower()
        self._previous_thread_hook = getattr(threading, "getprofile", lambda: None)()
        try:
            if self._previous_clock != self.clock_type:
                yappi.set_clock_type(self.clock_type)
            self._greenlets = _unpatched.threads_are_green()
            if self._greenlets:
                # Resets the context callbacks: ours are set after it. The greenlets' own
                # contexts keep the span tags right too (each greenlet has its own context).
                yappi.set_context_backend("greenlet")
            self._tags = None
            if self.tag_spans and sys.maxsize > 2**32 and SpanTags.tracing_configured():
                self._tags = SpanTags(self.span_to_tag)
                yappi.set_tag_callback(self._tags)
            # yappi names a context after the thread's class; ask the thread itself instead, once,
            # so threads that end before the window closes keep their name and native id.
            self._threads = {}
            self._agent_threads = set()
            yappi.set_context_name_callback(self._context_name)
            self.running = True
            yappi.start(builtins=False, profile_threads=True)
        except Exception:
            self.restore()
            raise

    def _context_name(self) -> str:
        ident = _unpatched.get_ident()  # as in AGENT_THREAD_IDENTS (gevent patches threading's)
        thread: Optional[threading.Thread]
        if self._greenlets:
            # One context per greenlet, named after the OS thread it runs on, as the stack
            # sampler names it (current_thread() would make a stand-in Thread per greenlet).
            thread = thread_of(ident)
            name = thread.name if thread is not None else f"Thread-{ident}"
        else:
            thread = threading.current_thread()
            name = thread.name
        self._threads[ident] = (_unpatched.get_native_id(), name)
        if is_agent_thread(ident, thread):
            # Remembered now: an agent thread that ends before the window closes (the sampler,
            # stopped first at exit under ``otelprof run --precise``) is gone from the set then.
            self._agent_threads.add(ident)
        return name

    def close(
        self, start_unix_nano: int, duration_nano: int, attributes: Attributes = ()
    ) -> List[Profile]:
        """Stop yappi, read what it recorded, restore it; returns the window's profiles.

        Only the reading happens with yappi's statistics alive, under the engine's lock (a
        ``restore()`` from another thread waits for it instead of freeing them mid-read); the
        conversion runs after yappi is back as it was.
        """
        with self._lock:
            yappi = self._yappi
            if yappi is None:
                return []
            try:
                yappi.stop()
                pits = _enumerate_pits(yappi)
                threads = _thread_labels(
                    _contexts(yappi, self._greenlets), self._threads, self._agent_threads
                )
                tags = self._tags
            finally:
                self._restore()
        tag_of = tags.sample_tag if tags is not None else (lambda tag: None)
        return pits_to_profiles(
            pits,
            threads,
            tag_of,
            self.clock_type,
            start_unix_nano,
            duration_nano,
            (*attributes, ("otelprof.window.clock", self.clock_type)),
        )

    def should_close(self) -> Optional[str]:
        return None

    def restore(self) -> None:
        """Idempotent, from any thread: yappi stopped, no callbacks, no statistics, its clock."""
        with self._lock:
            self._restore()

    def _restore(self) -> None:
        yappi, self._yappi = self._yappi, None
        self.running = False
        if yappi is None:
            return
        steps: List[Callable[[], object]] = [
            yappi.stop,
            lambda: yappi.set_tag_callback(None),
            lambda: yappi.set_context_name_callback(None),
            yappi.clear_stats,
        ]
        if self._greenlets:
            self._greenlets = False
            steps.append(lambda: yappi.set_context_backend("native_thread"))
        if self._previous_clock is not None and self._previous_clock != self.clock_type:
            previous = self._previous_clock
            steps.append(lambda: yappi.set_clock_type(previous))
        hook = self._previous_thread_hook
        if hook is not None:
            steps.append(lambda: threading.setprofile(hook))
        for step in steps:
            try:
                step()
            except Exception:
                _logger.exception("otelprof: could not fully restore yappi")
        self._tags = None


def _enumerate_pits(yappi: Any) -> List[Sequence[Any]]:
    """Every (context, tag, function) record, unmerged.

    ``yappi.get_func_stats()`` merges records of one function across threads and tags and then
    drops the caller -> callee edges that point at the records it merged away; the extension's
    own enumerator (what ``get_func_stats`` calls) hands over each record with its edges intact.
    """
    pits: List[Sequence[Any]] = []
    try:
        import _yappi  # type: ignore[import-not-found]

        _yappi.enum_func_stats(pits.append, {})
    except Exception:
        # Fall back to the public, merged view: exact per-function values, fewer edges.
        pits = [
            (s.name, s.module, s.lineno, s.ncall, s.nactualcall, s.builtin, s.ttot, s.tsub,
             s.index, [(c.index, c.ncall, c.nactualcall, c.ttot, c.tsub) for c in s.children],
             s.ctx_id, s.ctx_name, s.tag)
            for s in yappi.get_func_stats()
        ]  # fmt: skip
    return pits


def _contexts(yappi: Any, greenlets: bool) -> List[Tuple[int, int, str]]:
    """(context id, OS thread ident, name) of every context yappi recorded: one per thread, or
    one per greenlet with the ident of the thread it ran on (which yappi's public greenlet
    stats leave out, so they are read from the extension, as yappi itself reads them)."""
    if not greenlets:
        return [(stat.id, stat.tid, str(stat.name)) for stat in yappi.get_thread_stats()]
    import _yappi

    rows: List[Sequence[Any]] = []
    _yappi.enum_context_stats(rows.append)
    return [(row[_CONTEXT_ID], row[_CONTEXT_TID], str(row[0])) for row in rows]


def _thread_labels(
    contexts: Sequence[Tuple[int, int, str]],
    seen: Dict[int, Tuple[int, str]],
    agent_threads: Set[int],
) -> ThreadLabels:
    """yappi contexts of application threads -> (native thread id, thread name).

    Agent threads are those that were agent threads when yappi first saw them, or are now (one
    started during the window registers itself after its first Python call).
    """
    labels: ThreadLabels = {}
    for context_id, tid, name in contexts:
        if tid in agent_threads or tid in AGENT_THREAD_IDENTS:
            continue
        labels[context_id] = seen.get(tid, (tid, name))
    return labels
