"""Flush the profiler in Celery's prefork pool children, which leave through ``os._exit``."""

from __future__ import annotations

import logging
import sys
from typing import Callable

_logger = logging.getLogger("otelprof")

# One receiver per process however often it is connected (each start and each fork child).
_DISPATCH_UID = "otelprof-flush-pool-child"


def connect_pool_child_shutdown(stop_all: Callable[[], None]) -> None:
    """Run ``stop_all`` when a Celery pool child is about to exit, if Celery is loaded.

    billiard's pool worker ends with ``os._exit`` inside its own loop: neither atexit nor
    multiprocessing's finalizers run there, so a child lost its last interval (with
    ``--max-tasks-per-child`` every task it ran). Celery's ``worker_process_shutdown`` signal
    is sent in the child just before that exit. Only looked up, never imported: an
    application that does not use Celery must not pay for importing it.
    """
    signals = sys.modules.get("celery.signals")
    if signals is None:
        return
    try:

        def on_pool_child_shutdown(exitcode: object = None, **_: object) -> None:
            # A negative code: the pool is terminating this child (a hard time limit, a
            # cold shutdown) and kills it outright moments later; a flush would only race
            # that kill and hold back the child's last message to the pool.
            if isinstance(exitcode, int) and exitcode < 0:
                return
            stop_all()

        signals.worker_process_shutdown.connect(
            on_pool_child_shutdown, weak=False, dispatch_uid=_DISPATCH_UID
        )
    except Exception:
        _logger.exception("otelprof: could not hook Celery's pool child shutdown")
