"""A wrapper around OpenTelemetry's runtime context that reports every attach and detach.

``opentelemetry.context.attach``/``detach`` look up the module global ``_RUNTIME_CONTEXT`` on
every call (whichever implementation ``OTEL_PYTHON_CONTEXT`` chose), so replacing that global
sees every span activation, whether the SDK was configured before or after the profiler started,
without touching the application's code.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar, Token
from typing import Any, Callable, Optional

from opentelemetry import context as otel_context
from opentelemetry.context.context import Context, _RuntimeContext
from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext

_logger = logging.getLogger("otelprof")

OnChange = Callable[[Context], None]
"""Called on the thread that changed it, with the context that is now current there."""

SPAN_KEY: str
"""The context key of the current span (what ``trace.get_current_span`` reads)."""
try:
    from opentelemetry.trace.propagation import _SPAN_KEY

    SPAN_KEY = _SPAN_KEY
except ImportError:  # pragma: no cover - every supported API version has it
    SPAN_KEY = "current-span"


class RecordingRuntimeContext(_RuntimeContext):
    """Delegates to the runtime context it replaced, then tells ``on_change`` what is current."""

    def __init__(self, inner: _RuntimeContext, on_change: OnChange) -> None:
        self.inner = inner
        self._on_change: Optional[OnChange] = on_change
        self._failed = False
        # An instrumented request changes and reads the context a dozen times or more, on the
        # application's threads. The stock runtime context is one ContextVar call per method,
        # so its ContextVar's methods (C) are called directly: the hook then adds no Python
        # frame to any of these calls, and none at all to ``get_current``. Any other runtime
        # context is delegated to as it is.
        variable = _stock_variable(inner)
        if variable is not None:
            self._set: Callable[[Context], Token[Context]] = variable.set
            self._reset: Callable[[Token[Context]], object] = variable.reset
            self.get_current = variable.get  # type: ignore[method-assign]
        else:
            self._set = inner.attach
            self._reset = inner.detach
            self.get_current = inner.get_current  # type: ignore[method-assign]

    def attach(self, context: Context) -> Token[Context]:
        token = self._set(context)
        on_change = self._on_change
        if on_change is not None:
            try:
                on_change(context)
            except Exception:
                self._fail()
        return token

    def get_current(self) -> Context:
        return self.inner.get_current()

    def detach(self, token: Token[Context]) -> None:
        # A failing reset (a token from another context) raises as it always did; nothing changed.
        self._reset(token)
        on_change = self._on_change
        if on_change is not None:
            try:
                on_change(self.get_current())
            except Exception:
                self._fail()

    def disable(self) -> None:
        self._on_change = None

    def _fail(self) -> None:
        if not self._failed:
            self._failed = True
            _logger.exception("otelprof: recording the active span failed (logged once)")


def _stock_variable(runtime: _RuntimeContext) -> Optional[ContextVar[Context]]:
    """The ContextVar of OpenTelemetry's own contextvars runtime context (not a subclass's)."""
    if type(runtime) is not ContextVarsRuntimeContext:
        return None
    variable = getattr(runtime, "_current_context", None)
    return variable if isinstance(variable, ContextVar) else None


def install(on_change: OnChange) -> RecordingRuntimeContext:
    """Route every context change in the process through ``on_change`` until :func:`uninstall`."""
    current: _RuntimeContext = otel_context._RUNTIME_CONTEXT
    wrapper = RecordingRuntimeContext(current, on_change)
    otel_context._RUNTIME_CONTEXT = wrapper
    return wrapper


def uninstall(wrapper: RecordingRuntimeContext) -> None:
    """Stop reporting; unlink the wrapper unless something wrapped it since (then inert)."""
    wrapper.disable()
    if otel_context._RUNTIME_CONTEXT is wrapper:
        otel_context._RUNTIME_CONTEXT = wrapper.inner


def current_context() -> Context:
    """The calling thread's current OpenTelemetry context."""
    return otel_context.get_current()


def context_variable() -> Optional[ContextVar[Any]]:
    """The ``ContextVar`` holding the OpenTelemetry context, when the runtime context is the
    standard contextvars one (so another thread can read it out of an asyncio task's context).
    """
    runtime: Any = otel_context._RUNTIME_CONTEXT
    while isinstance(runtime, RecordingRuntimeContext):
        runtime = runtime.inner
    variable = getattr(runtime, "_current_context", None)
    return variable if isinstance(variable, ContextVar) else None
