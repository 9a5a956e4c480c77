"""The span of the asyncio task a loop thread is running, as seen from the sampler thread.

A loop swaps contexts between task steps without any OpenTelemetry call, so the per-thread
record says nothing about which task runs. On Python 3.12+ the sampler reads the running task's
own context (``Task.get_context()``). Before 3.12 the task's context is out of reach, so spans are
recorded per task: at every attach/detach inside the task, and at ``create_task`` for the span a
new task inherits from its creator. ``create_task`` also tells which thread runs which loop, so
tasks get their names even in loops that never touch a span.
"""

from __future__ import annotations

import asyncio
import weakref
from asyncio import AbstractEventLoop
from contextvars import ContextVar
from typing import Any, Callable, Dict, List, Optional, Tuple

from otelprof.correlation.context_hook import SPAN_KEY
from otelprof.correlation.tags import TASK_NAME_ATTRIBUTE, BoundedNames, with_attribute
from otelprof.model import SampleTag

SpanToTag = Callable[[Any], Optional[SampleTag]]

MAX_NAMED_TAGS = 10_000

current_task: Callable[[AbstractEventLoop], Optional[asyncio.Task[Any]]] = asyncio.current_task
"""``asyncio.current_task(loop)``: the task running on ``loop``, from any thread (C dict lookup)."""

TASK_CONTEXT_READABLE = hasattr(asyncio.Task, "get_context")


class TaskSpans:
    """Resolves a running task to its sample tag (span link plus task name)."""

    def __init__(
        self,
        span_to_tag: SpanToTag,
        variable: Optional[ContextVar[Any]],
        names: Optional[BoundedNames],
    ) -> None:
        self._span_to_tag = span_to_tag
        self._variable = variable
        self._names = names if names is not None and names.limit > 0 else None
        self.read_context = TASK_CONTEXT_READABLE and variable is not None
        # id(task) -> [weak reference, span]; the reference's callback drops the entry when the
        # task is freed, before its id can be reused.
        self._records: Dict[int, List[Any]] = {}
        self._named: Dict[Tuple[Optional[SampleTag], int, str], SampleTag] = {}
        self._create_task: Optional[Callable[..., Any]] = None

    # -- written on the application's threads ---------------------------------------------------

    def record(self, task: asyncio.Task[Any], span: Any) -> None:
        """The span now current inside ``task`` (only needed when contexts can't be read)."""
        key = id(task)
        entry = self._records.get(key)
        if entry is not None:
            entry[1] = span
        elif span is not None:
            records = self._records
            self._records[key] = [weakref.ref(task, lambda _ref: records.pop(key, None)), span]

    def span_of_context(self, context: Any) -> Any:
        """The span current in a ``contextvars.Context`` (None when unreadable)."""
        if self._variable is None:
            return None
        otel = context.get(self._variable)
        return otel.get(SPAN_KEY) if otel is not None else None

    # -- read on the sampler thread --------------------------------------------------------------

    def tag(self, task: asyncio.Task[Any]) -> Optional[SampleTag]:
        if self.read_context:
            span = self.span_of_context(task.get_context())  # type: ignore[attr-defined]
        else:
            entry = self._records.get(id(task))
            span = entry[1] if entry is not None else None
        return self.named(task, self._span_to_tag(span) if span is not None else None)

    def named(self, task: asyncio.Task[Any], base: Optional[SampleTag]) -> Optional[SampleTag]:
        """``base`` (the tag of the task's span, if any) with the task's name added."""
        names = self._names
        if names is None:
            return base
        name = names.task_name(task.get_name())
        if name is None:
            return base
        # The span id is part of the key: tags that compare equal may stand for different spans.
        key = (base, getattr(base, "span_id", 0), name)
        tagged = self._named.get(key)
        if tagged is None:
            if len(self._named) >= MAX_NAMED_TAGS:
                self._named.clear()
            tagged = self._named[key] = with_attribute(base, TASK_NAME_ATTRIBUTE, name)
        return tagged

    # -- inheritance at task creation (before 3.12) ------------------------------------------------

    def hook_task_creation(
        self,
        creator_span: Callable[[], Any],
        saw_loop: Callable[[Any], None],
    ) -> None:
        """Learn the loop of the creating thread and, before 3.12, the span a new task inherits."""
        if self._create_task is not None:
            return
        loop_class: Any = asyncio.BaseEventLoop
        original = loop_class.create_task
        spans = self

        def create_task(loop: Any, coro: Any, *args: Any, **kwargs: Any) -> Any:
            task = original(loop, coro, *args, **kwargs)
            if spans._create_task is not None:
                try:
                    saw_loop(loop)
                    if not spans.read_context:
                        context = kwargs.get("context")
                        span = creator_span() if context is None else spans.span_of_context(context)
                        if span is not None:
                            spans.record(task, span)
                except Exception:  # never let bookkeeping break the application's task
                    pass
            return task

        create_task.__wrapped__ = original  # type: ignore[attr-defined]
        self._create_task = create_task
        loop_class.create_task = create_task

    def unhook_task_creation(self) -> None:
        hook, self._create_task = self._create_task, None
        loop_class: Any = asyncio.BaseEventLoop
        if hook is not None and loop_class.create_task is hook:
            loop_class.create_task = hook.__wrapped__  # type: ignore[attr-defined]

    def clear(self) -> None:
        self._records.clear()
        self._named.clear()
