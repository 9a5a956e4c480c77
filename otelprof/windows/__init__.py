"""Bounded precise (yappi) and memory (tracemalloc) windows, on schedule or on demand."""

from __future__ import annotations

import atexit
import threading
from typing import TYPE_CHECKING, Optional

from otelprof.windows.handle import WindowHandle, window_seconds
from otelprof.windows.scheduler import MEMORY, ON_DEMAND, PRECISE

if TYPE_CHECKING:
    from otelprof.windows.manager import WindowManager

__all__ = ["MEMORY", "PRECISE", "WindowHandle", "request_window"]

_lock = threading.Lock()
_standalone: Optional[WindowManager] = None


def request_window(kind: str, seconds: Optional[float]) -> WindowHandle:
    """Open a ``precise`` or ``memory`` window on the running profiler, or standalone.

    Returns once the window has opened (yappi or tracemalloc runs), or, if it has not within
    ``OPEN_TIMEOUT_SECONDS`` (10 s; the window open before it runs on), with the handle pending.
    With ``otelprof.start()`` running, the window's profiles go out with the next export (and
    into the handle). Without one, a standalone runner executes the window and the handle is the
    only place its profiles go. ``seconds=None`` keeps it open until ``handle.close()`` (or the
    end of a ``with`` block). Raises TypeError for a ``seconds`` that is neither None nor a
    number, ValueError for one not greater than 0 and at most 86400.
    """
    import otelprof

    seconds = window_seconds(seconds)  # a bad argument raises here, before any runner starts
    profiler = otelprof.get_profiler()
    if profiler is not None and profiler.running:
        handle = profiler.windows.request(kind, seconds, ON_DEMAND)
    else:
        handle = _standalone_manager().request(kind, seconds, ON_DEMAND)
    # Return once the engine runs, so that what the caller does next is measured; the wait is
    # bounded (a window still open before this one, a stuck runner) and the handle then says
    # "pending" until it opens.
    handle.wait_opened()
    return handle


def _standalone_manager() -> WindowManager:
    global _standalone
    with _lock:
        if _standalone is None:
            from otelprof.config import resolve_config
            from otelprof.windows.manager import WindowManager

            _standalone = WindowManager(resolve_config(), standalone=True)
            atexit.register(_standalone.stop)
        return _standalone
