"""Which span each thread and asyncio task is in: written on context changes, read by the sampler.

The sampler thread cannot read another thread's contextvars, so each thread writes its own entry
whenever its current OpenTelemetry context changes. That write is kept to a few dictionary
operations: it stores the span object itself. Turning a span into a sample tag (its link, local
root, attributes) happens on the sampler thread, once per span, and only for spans that a sample
actually lands in: most short spans never meet a sample.
"""

from __future__ import annotations

import threading
from asyncio import AbstractEventLoop
from asyncio import _get_running_loop as get_running_loop
from typing import Any, Callable, Dict, Optional, Set

from opentelemetry.context.context import Context

from otelprof.correlation.context_hook import SPAN_KEY, context_variable, current_context
from otelprof.correlation.tags import BoundedNames, SpanTag, span_tag
from otelprof.correlation.tasks import TaskSpans, current_task
from otelprof.model import SampleTag

MAX_CACHED_TAGS = 50_000
_MISSING = object()

RootOf = Callable[[int], Optional[int]]
"""The local root span id of a live span, when the span processor saw it start."""


class ActiveSpans:
    """Per thread ident: the span current there; per thread running a loop: that loop."""

    def __init__(
        self,
        *,
        link_to_root: bool = False,
        root_attribute: bool = True,
        task_names: Optional[BoundedNames] = None,
        root_of: Optional[RootOf] = None,
        on_new_span: Optional[Callable[[], None]] = None,
    ) -> None:
        self.link_to_root = link_to_root
        self.root_attribute = root_attribute
        self.root_of = root_of
        self.on_new_span = on_new_span
        self._threads: Dict[int, Any] = {}  # ident -> span object
        self._loops: Dict[int, AbstractEventLoop] = {}
        self._tags: Dict[int, SpanTag] = {}  # span id -> tag, built once per sampled span
        self.tasks = TaskSpans(self.tag_of_span, context_variable(), task_names)

    # -- written on the application's threads ---------------------------------------------------

    def record(self, context: Context) -> None:
        """``context`` just became current on the calling thread (the context hook's callback)."""
        span = context.get(SPAN_KEY)
        if span is not None and self.on_new_span is not None:
            self.on_new_span()
        ident = threading.get_ident()
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
        ident = threading.get_ident()
        if self._loops.get(ident) is loop:
            return
        owner = getattr(loop, "_thread_id", None)  # set by run_forever; None before it starts
        if owner is None or owner == ident:
            self._loops[ident] = loop

    def creator_span(self) -> Any:
        """The span current on the calling thread (the one a task created here inherits)."""
        return current_context().get(SPAN_KEY)

    def forget_span(self, span_id: int) -> None:
        """The span ended: its cached tag is no longer needed."""
        self._tags.pop(span_id, None)

    # -- read on the sampler thread --------------------------------------------------------------

    def tag(self, ident: int) -> Optional[SampleTag]:
        """The sampler's tagger: the tag of whatever runs on thread ``ident`` right now."""
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

    def tag_of_span(self, span: Any) -> Optional[SpanTag]:
        """The tag of a sampled local span; None for remote, unsampled or invalid spans."""
        span_context = span.get_span_context()
        tag = self._tags.get(span_context.span_id)
        if tag is not None:
            return tag
        if span_context.is_remote or not span_context.trace_flags.sampled:
            return None
        span_id: int = span_context.span_id
        root = self.root_of(span_id) if self.root_of is not None else None
        if root is None:
            root = self._root_from_parent(span, span_id)
        tag = span_tag(span_context.trace_id, span_id, root, self.link_to_root, self.root_attribute)
        if len(self._tags) >= MAX_CACHED_TAGS:
            self._tags.clear()  # only when no span processor removes ended spans: stay bounded
        self._tags[span_id] = tag
        return tag

    def _root_from_parent(self, span: Any, span_id: int) -> Optional[int]:
        # Only for spans the span processor did not see start (it was attached later).
        parent: Any = getattr(span, "parent", _MISSING)
        if parent is _MISSING:
            return None  # not an SDK span: its parent is unknowable
        if parent is None or parent.is_remote:
            return span_id
        if self.root_of is not None:
            root = self.root_of(parent.span_id)
            if root is not None:
                return root
        parent_tag = self._tags.get(parent.span_id)
        if parent_tag is None or not parent_tag.root_id:
            return None
        return parent_tag.root_id

    # -- upkeep (export thread) -------------------------------------------------------------------

    def prune(self, live_idents: Set[int]) -> None:
        """Forget threads that exited and loops that closed."""
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
        self.tasks.clear()
