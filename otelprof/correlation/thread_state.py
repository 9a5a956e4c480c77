"""The context current on another thread, read from its interpreter state (``otelprof._native``).

Which span a thread is in lives in its current ``contextvars`` context, which only that thread
can read from Python. The optional C extension reads it from the sampler thread instead, so
span correlation needs no hook on the application's request path. Where it cannot be used
(not CPython, a free-threaded build, or the extension was not built because no C compiler was
at hand), the agent falls back to the context hook (``context_hook``).
"""

from __future__ import annotations

import sys
from contextvars import Context
from typing import Callable, Optional

ThreadContext = Callable[[int], Optional[Context]]
"""Thread ident -> the context current on that thread now (None: none yet, or no such thread)."""


def native_thread_context() -> Optional[ThreadContext]:
    """The native reader, or None where it is not available or not safe to use."""
    if sys.implementation.name != "cpython":
        return None
    gil_enabled: Optional[Callable[[], bool]] = getattr(sys, "_is_gil_enabled", None)
    if gil_enabled is not None and not gil_enabled():
        return None  # it relies on the GIL (the extension leaves it out of such builds anyway)
    try:
        from otelprof._native import thread_context
    except ImportError:
        return None
    reader: ThreadContext = thread_context
    return reader
