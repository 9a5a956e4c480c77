"""Which span each thread and asyncio task is in, as the sampler sees it.

Two ways to know it. Where the optional C extension is available (``thread_state``), the
sampler reads each thread's current context straight from its interpreter state: nothing runs
on the application's threads. Otherwise each thread writes its own entry whenever its current
OpenTelemetry context changes (the context hook), kept to a few dictionary operations: it
stores the span object itself. Either way, turning a span into a sample tag (its link, local
root, attributes) happens on the sampler thread, once per span, and only for spans that a
sample actually lands in: most short spans never meet a sample.
"""

from __future__ import annotations

from asyncio import AbstractEventLoop
from asyncio import _get_running_loop as get_running_loop
from typing import Any, Callable, Dict, Optional, Set, Tuple

from opentelemetry.context.context import Context

from otelprof._unpatched import get_ident
from otelprof.correlation.context_hook import SPAN_KEY, context_variable, current_context
from otelprof.correlation.tags import BoundedNames, SpanTag, span_tag
from otelprof.correlation.tasks import TaskSpans, current_task
from otelprof.correlation.thread_state import ThreadContext
from otelprof.model import SampleTag

MAX_CACHED_TAGS = 20_000
_MISSING = object()

RootOf = Callable[[int], Optional[int]]
"""The local root span id of a live span, when the span processor saw it start."""
RootSpanOf = Callable[[int], Any]
"""The live local root span object with this id, when the span processor saw it start."""


class ActiveSpans:
    """Per thread ident: the span current there; per thread running a loop: that loop."""

    def __init__(
        self,
        *,
        link_to_root: bool = False,
        root_attribute: bool = True,
        task_names: Optional[BoundedNames] = None,
        root_of: Optional[RootOf] = None,
        root_span_of: Optional[RootSpanOf] = None,
        on_new_span: Optional[Callable[[], None]] = None,
        thread_context: Optional[ThreadContext] = None,
    ) -> None:
        self.link_to_root = link_to_root
        self.root_attribute = root_attribute
        self.root_of = root_of
        self.root_span_of = root_span_of
        self.on_new_span = on_new_span
        self._threads: Dict[int, Any] = {}  # ident -> span object
        self._loops: Dict[int, AbstractEventLoop] = {}
        # span id -> tag, built once per sampled span. Two generations, turned over at each
        # collect: a span sampled in this or the last interval keeps its tag, older ones go
        # (tags hold their root span object, so the cache must not outlive the samples).
        self._tags: Dict[int, SpanTag] = {}
        self._old_tags: Dict[int, SpanTag] = {}
        variable = context_variable()
        self.tasks = TaskSpans(self.tag_of_span, variable, task_names)
        # Read each thread's context from its interpreter state (no hook needed), when there is
        # a reader and the OpenTelemetry context lives in a ContextVar it can look into.
        self._thread_context = thread_context if variable is not None else None
        if self._thread_context is not None:
            # A running task's context is its thread's current one: readable on any version.
            self.tasks.read_context = True

    @property
    def reads_thread_state(self) -> bool:
        """True: contexts are read from the threads' states; no context hook is needed."""
        return self._thread_context is not None

    # -- written on the application's threads ---------------------------------------------------

    def record(self, context: Context) -> None:
        """``context`` just became current on the calling thread (the context hook's callback)."""
        span = context.get(SPAN_KEY)
        if span is not None and self.on_new_span is not None:
            self.on_new_span()
        ident = get_ident()  # the OS thread's, as the sampler's (not a greenlet's)
        loop = get_running_loop()
        if loop is not None:
            if self._loops.get(ident) is not loop:
                self._loops[ident] = loop
            task = current_task(loop)
            if task is not None:
                if not self.tasks.read_context:
                    self.tasks.record(task, span)
                return
            # A loop callback outside any task: it runs in the thread's own slot.
        if span is None:
            self._threads.pop(ident, None)
        else:
            self._threads[ident] = span

    def saw_loop(self, loop: AbstractEventLoop) -> None:
        """``loop`` creates a task on the calling thread: it runs (or is about to run) here."""
        ident = get_ident()  # the OS thread's, as the sampler's (not a greenlet's)
        if self._loops.get(ident) is loop:
            return
        owner = getattr(loop, "_thread_id", None)  # set by run_forever; None before it starts
        if owner is None or owner == ident:
            self._loops[ident] = loop

    def creator_span(self) -> Any:
        """The span current on the calling thread (the one a task created here inherits)."""
        return current_context().get(SPAN_KEY)

    # -- read on the sampler thread --------------------------------------------------------------

    def tag(self, ident: int) -> Optional[SampleTag]:
        """The sampler's tagger: the tag of whatever runs on thread ``ident`` right now."""
        if self._thread_context is not None:
            return self._tag_from_thread_state(ident, self._thread_context)
        try:
            loop = self._loops.get(ident)
            if loop is not None:
                task = current_task(loop)
                # The ownership check covers a loop that a different thread now runs.
                if task is not None and getattr(loop, "_thread_id", ident) == ident:
                    return self.tasks.tag(task)
                # The loop is idle in its selector, or runs a plain callback, or has stopped.
            span = self._threads.get(ident)
            return self.tag_of_span(span) if span is not None else None
        except Exception:  # an exception here would stop the sampler thread
            return None

    def _tag_from_thread_state(
        self, ident: int, thread_context: ThreadContext
    ) -> Optional[SampleTag]:
        try:
            context = thread_context(ident)
            span = self.tasks.span_of_context(context) if context is not None else None
            if span is not None and self.on_new_span is not None:
                self.on_new_span()
            tag = self.tag_of_span(span) if span is not None else None
            loop = self._loops.get(ident)
            if loop is not None:
                task = current_task(loop)
                # While a task step runs, the thread's context is the task's own; between steps
                # (the loop waiting in its selector) it is the thread's, and no task is current.
                if task is not None and getattr(loop, "_thread_id", ident) == ident:
                    return self.tasks.named(task, tag)
            return tag
        except Exception:  # an exception here would stop the sampler thread
            return None

    def tag_of_span(self, span: Any) -> Optional[SpanTag]:
        """The tag of a sampled local span; None for remote, unsampled or invalid spans."""
        span_context = span.get_span_context()
        span_id: int = span_context.span_id
        tag = self._tags.get(span_id)
        if tag is not None:
            return tag
        tag = self._old_tags.get(span_id)
        if tag is None:
            if span_context.is_remote or not span_context.trace_flags.sampled:
                return None
            tag = self._new_tag(span, span_context.trace_id, span_id)
        if len(self._tags) >= MAX_CACHED_TAGS:
            self._tags.clear()  # a flood of spans within one interval: stay bounded
        self._tags[span_id] = tag
        return tag

    def _new_tag(self, span: Any, trace_id: int, span_id: int) -> SpanTag:
        root = self.root_of(span_id) if self.root_of is not None else None
        if root is None:
            # The span ended already (sampled between its end and the context switching
            # back) or started before the span processor was attached.
            root, root_span = self._root_from_parent(span, span_id)
        elif root == span_id:
            root_span = span
        else:
            root_span = self.root_span_of(root) if self.root_span_of is not None else None
        return span_tag(trace_id, span_id, root, self.link_to_root, self.root_attribute, root_span)

    def _root_from_parent(self, span: Any, span_id: int) -> Tuple[Optional[int], Any]:
        """(local root id, root span object), each None when unknown."""
        parent: Any = getattr(span, "parent", _MISSING)
        if parent is _MISSING:
            return None, None  # not an SDK span: its parent is unknowable
        if parent is None or parent.is_remote:
            return span_id, span
        if self.root_of is not None:
            root = self.root_of(parent.span_id)
            if root is not None:
                root_span = self.root_span_of(root) if self.root_span_of is not None else None
                return root, root_span
        parent_tag = self._tags.get(parent.span_id) or self._old_tags.get(parent.span_id)
        if parent_tag is None or not parent_tag.root_id:
            return None, None
        return parent_tag.root_id, parent_tag.root_span

    # -- upkeep (export thread) -------------------------------------------------------------------

    def prune(self, live_idents: Set[int]) -> None:
        """Forget threads that exited, loops that closed, tags not used for an interval."""
        self._old_tags, self._tags = self._tags, {}
        # list() copies in one step: other threads add entries while this runs.
        for ident in list(self._threads):
            if ident not in live_idents:
                self._threads.pop(ident, None)
        for ident, loop in list(self._loops.items()):
            if ident not in live_idents or loop.is_closed():
                self._loops.pop(ident, None)

    def clear(self) -> None:
        self._threads.clear()
        self._loops.clear()
        self._tags.clear()
        self._old_tags.clear()
        self.tasks.clear()
