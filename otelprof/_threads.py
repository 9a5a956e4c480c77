"""The agent's own threads: started as named daemons and left out of every profile."""

from __future__ import annotations

import gc
import logging
import sys
import threading
from typing import Callable, Set

_logger = logging.getLogger("otelprof")

AGENT_THREAD_IDENTS: Set[int] = set()
"""``threading.get_ident()`` of every live agent thread; the sampler skips these."""


def start_agent_thread(name: str, target: Callable[[], None]) -> threading.Thread:
    """Start ``target`` on a daemon thread that the profiler does not profile.

    The ident is registered by the thread itself before ``target`` runs, so no sample is ever
    taken of it; it is removed when ``target`` returns or raises.
    """
    registered = threading.Event()

    def run() -> None:
        ident = threading.get_ident()
        AGENT_THREAD_IDENTS.add(ident)
        registered.set()
        try:
            target()
        except BaseException:  # never let an agent failure reach the host's excepthook
            _logger.exception("otelprof: thread %s stopped on an unexpected error", name)
        finally:
            AGENT_THREAD_IDENTS.discard(ident)

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    registered.wait(5.0)
    return thread


def live_thread_idents() -> Set[int]:
    """The idents of every thread running Python code now, threads not made by ``threading``
    included. ``sys._current_frames()`` is called with the cyclic GC held off: a collection
    inside it runs callbacks while it holds the thread-list lock, which a thread starting or
    exiting waits for with the GIL (a deadlock; see ``StackSampler.sample_once``)."""
    if not gc.isenabled():
        return set(sys._current_frames())
    gc.disable()
    try:
        return set(sys._current_frames())
    finally:
        gc.enable()
