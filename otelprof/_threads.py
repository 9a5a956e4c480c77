"""The agent's own threads: started as named daemons and left out of every profile."""

from __future__ import annotations

import logging
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
