"""Wires span correlation into a profiler: context hook, tagger, span processor, endpoints."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, Callable, Hashable, Optional

from opentelemetry.context import Context

from otelprof._threads import live_thread_idents
from otelprof.correlation import context_hook
from otelprof.correlation.active import ActiveSpans
from otelprof.correlation.endpoints import Endpoints
from otelprof.correlation.tags import BoundedNames
from otelprof.correlation.thread_state import native_thread_context
from otelprof.model import SampleTag
from otelprof.samplers.stack import StackSnapshot

if TYPE_CHECKING:
    from otelprof.config import ProfilerConfig

_logger = logging.getLogger("otelprof")

PROVIDER_CHECK_SECONDS = 1.0


class SpanCorrelator:
    """Ties samples to spans and spans back to their samples, for one profiler.

    ``start()`` hooks asyncio's task creation (to learn which thread runs which loop) and, unless
    each thread's context can be read from its interpreter state (``thread_state``), OpenTelemetry's
    runtime context; it attaches a span processor to the application's SDK ``TracerProvider``
    (now, or as soon as one shows up); ``tag``/``observe`` are the sampler's hooks; ``collect``
    adds endpoints. ``native=False``: the pure-Python paths even where the C extension exists.
    """

    def __init__(
        self,
        *,
        span_attributes: bool = True,
        span_cpu_clock: str = "thread",
        max_endpoints: int = 100,
        max_task_names: int = 100,
        pyroscope_profile_id: bool = False,
        tracer_provider: Any = None,
        clock: Callable[[], float] = time.monotonic,
        native: bool = True,
        thread_cpu_ns: Optional[Callable[[], int]] = None,
    ) -> None:
        from otelprof.spans import SpanAccounting

        self.endpoints = Endpoints(max_endpoints)
        self.accounting = SpanAccounting(
            span_attributes=span_attributes,
            pyroscope_profile_id=pyroscope_profile_id,
            cpu_clock=span_cpu_clock,
            thread_cpu_ns=thread_cpu_ns,
            native=native,
        )
        # Pyroscope joins a root span to samples by their link's span id (pyroscope.profile.id):
        # then samples link to their local root, and a per-request attribute would split series.
        self.active = ActiveSpans(
            link_to_root=pyroscope_profile_id,
            root_attribute=not pyroscope_profile_id,
            task_names=BoundedNames(max_task_names),
            root_of=self.accounting.root_of,
            root_span_of=self.accounting.live_root,
            on_new_span=self._on_new_span,
            thread_context=native_thread_context() if native else None,
        )
        self._clock = clock
        self._tracer_provider = tracer_provider  # None: the global one, whenever it is set
        self._started = False
        self._hook: Optional[context_hook.RecordingRuntimeContext] = None
        self._processor: Any = None
        self._next_provider_check = 0.0

    @classmethod
    def from_config(cls, config: ProfilerConfig) -> SpanCorrelator:
        return cls(
            span_attributes=config.span_attributes,
            span_cpu_clock=config.span_cpu_clock,
            max_endpoints=config.max_endpoints,
            max_task_names=config.max_task_names,
            pyroscope_profile_id=config.pyroscope_profile_id,
            native=config.native,
        )

    @property
    def tag(self) -> Callable[[int], Optional[Hashable]]:
        """The sampler's tagger (thread ident -> sample tag)."""
        return self.active.tag

    @property
    def observe(self) -> Callable[..., None]:
        """The sampler's observer (charges samples to live spans)."""
        return self.accounting.observe

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Install the hooks; a failure is logged and profiling goes on without spans."""
        if self._started:
            return
        self._started = True
        try:
            if not self.active.reads_thread_state:
                self._hook = context_hook.install(self.active.record)
                # The thread starting the profiler may already be inside a span.
                self.active.record(context_hook.current_context())
            self.active.tasks.hook_task_creation(self.active.creator_span, self.active.saw_loop)
            if not self.install_span_processor() and self.active.reads_thread_state:
                # The application sets its TracerProvider later (``otelprof run`` starts first).
                # Until its first span, a hook only watches for it, so the processor is there
                # for that request's child spans, as with the full hook; then it goes.
                self._hook = context_hook.install(self._watch_for_first_span)
        except Exception:
            _logger.exception("otelprof: span correlation is off (could not install its hooks)")
            self.stop()

    def stop(self) -> None:
        self._started = False
        try:
            hook, self._hook = self._hook, None
            if hook is not None:
                context_hook.uninstall(hook)
            self.active.tasks.unhook_task_creation()
            processor, self._processor = self._processor, None
            if processor is not None and processor.target is self.accounting:
                processor.unbind()
            self.active.clear()
            self.accounting.clear()
        except Exception:
            _logger.exception("otelprof: error while removing the span correlation hooks")

    def reset_after_fork(self) -> None:
        """In a fork child only the forking thread survives; the hooks stay installed."""
        try:
            self.active.prune(live_thread_idents())
        except Exception:
            _logger.exception("otelprof: span correlation reset after fork failed")

    # -- the span processor ------------------------------------------------------------------

    def install_span_processor(self) -> bool:
        """Attach to the application's SDK TracerProvider if there is one (True once attached)."""
        if self._processor is not None:
            return True
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider

        from otelprof.spans import processor_for

        provider = self._tracer_provider or trace.get_tracer_provider()
        if not isinstance(provider, TracerProvider):
            return False
        processor = processor_for(provider)
        processor.bind(self.accounting)
        self._processor = processor
        self.active.on_new_span = None
        hook = self._hook
        if hook is not None and self.active.reads_thread_state:
            self._hook = None  # only watched for the provider: nothing left for it to do
            context_hook.uninstall(hook)
        _logger.debug("otelprof: span processor attached to the application's TracerProvider")
        return True

    def _watch_for_first_span(self, context: Context) -> None:
        if context.get(context_hook.SPAN_KEY) is not None:
            self._on_new_span()

    def _on_new_span(self) -> None:
        # A sampled span appeared while no processor is attached: the application may have set
        # its TracerProvider after the profiler started. Look again, at most once a second.
        now = self._clock()
        if now < self._next_provider_check or not self._started:
            return
        self._next_provider_check = now + PROVIDER_CHECK_SECONDS
        try:
            self.install_span_processor()
        except Exception:
            _logger.debug("otelprof: could not attach the span processor", exc_info=True)

    # -- collection (export thread) --------------------------------------------------------------

    def endpoint_tag(self, tag: Hashable) -> Hashable:
        """A sample tag with its endpoint added, for samples recorded outside the stack sampler
        (the ``[gc]`` frames); the tag as it is on any error."""
        try:
            return self.endpoints.tag(tag)
        except Exception:
            _logger.debug("otelprof: adding an endpoint failed", exc_info=True)
            return tag

    def window_tag(self, span: Any) -> Optional[SampleTag]:
        """The tag of a precise window's span, endpoint included (asked at the window's end)."""
        tag = self.active.tag_of_span(span)
        if tag is None:
            return None
        with_endpoint = self.endpoint_tag(tag)
        return with_endpoint if isinstance(with_endpoint, SampleTag) else tag

    def collect(self, snapshot: StackSnapshot) -> StackSnapshot:
        """Upkeep, then the endpoint of each sample's local root span added to its tag."""
        try:
            self.active.prune(live_thread_idents())
            if self._processor is None and self._started:
                self.install_span_processor()
            return self.endpoints.rewrite(snapshot)
        except Exception:
            _logger.exception("otelprof: adding endpoints failed; samples keep their span links")
            return snapshot
