"""The agent's own threads: started as named daemons and left out of every profile."""

from __future__ import annotations

import gc
import logging
import os
import sys
import threading
from typing import Callable, Optional, Set, Tuple

_logger = logging.getLogger("otelprof")

AGENT_THREAD_IDENTS: Set[int] = set()
"""``threading.get_ident()`` of every live agent thread; the sampler skips these."""


AGENT_THREAD_MARK = "_otelprof_agent_thread"


def is_agent_thread(ident: int, thread: Optional[threading.Thread]) -> bool:
    """Whether ``ident`` (with its Thread, if any) is one of the agent's threads, also before it
    has registered itself."""
    return ident in AGENT_THREAD_IDENTS or bool(getattr(thread, AGENT_THREAD_MARK, False))


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
    # Marked before it runs: a precise window may see the thread's first Python call before
    # the thread has put its ident in AGENT_THREAD_IDENTS (see is_agent_thread).
    setattr(thread, AGENT_THREAD_MARK, True)
    thread.start()
    registered.wait(5.0)
    return thread


class gc_held_off:
    """Holds the cyclic GC off while other threads' frames are read, then restores it.

    Reading ``f_back`` of another thread's frame may create the caller's frame object
    (``sys._current_frames()`` creates one per thread). Before Python 3.12 that allocation can
    run a collection on the spot, and with it gc callbacks and finalizers: Python code that may
    hand the GIL to the thread being read, which can then return from the very frame whose object
    is half made, and the reader writes freed memory: a segfault (tests/agent/test_sampler.py
    makes it happen every time; reported against Sentry's and ddtrace's samplers too).
    ``sys._current_frames()`` also holds the thread-list lock while it allocates, which a thread
    starting or exiting waits for while holding the GIL a callback handed over: a deadlock.

    The agent's threads may hold it at once (sampler and exporter): the first one in turns the
    GC off if it was on, the last one out turns it back on, and a fork child never inherits a
    hold (no thread there would release it). An application that toggles the GC from another
    thread during a hold (a sampler tick, ~0.1 ms) can have its choice undone: the lesser evil.
    """

    __slots__ = ()

    def __enter__(self) -> None:
        global _gc_holders, _gc_restore
        with _gc_lock:
            if _gc_holders == 0:
                _gc_restore = gc.isenabled()
                if _gc_restore:
                    gc.disable()
            _gc_holders += 1

    def __exit__(self, *exc_info: object) -> None:
        global _gc_holders
        with _gc_lock:
            _gc_holders -= 1
            if _gc_holders == 0 and _gc_restore:
                gc.enable()


_gc_lock = threading.Lock()
_gc_holders = 0
_gc_restore = False


def _gc_hold_after_fork_in_child() -> None:
    # The holding thread does not exist in the child: give the GC back.
    global _gc_lock, _gc_holders
    _gc_lock = threading.Lock()
    if _gc_holders:
        _gc_holders = 0
        if _gc_restore:
            gc.enable()


# The thread that called fork() and survived it in the child, with its real kernel thread id.
# CPython keeps the parent's value in that Thread's ``native_id`` (3.10 to 3.13 at least), so a
# per-thread CPU clock derived from it names a thread of another process: every read fails, and
# a gunicorn worker (forked from the master's main thread) would show no CPU at all.
_fork_survivor: Optional[Tuple[int, int]] = None


def _note_fork_survivor() -> None:
    global _fork_survivor
    _fork_survivor = (threading.get_ident(), threading.get_native_id())


def native_id_of(ident: int, thread: Optional[threading.Thread]) -> Optional[int]:
    """The kernel thread id of the thread ``ident`` (``None`` when unknown), right after a fork
    too; ``thread`` is its ``threading.Thread`` if it has one."""
    survivor = _fork_survivor
    if survivor is not None and survivor[0] == ident:
        return survivor[1]
    return getattr(thread, "native_id", None)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_gc_hold_after_fork_in_child)
    os.register_at_fork(after_in_child=_note_fork_survivor)


def live_thread_idents() -> Set[int]:
    """The idents of every thread running Python code now, threads not made by ``threading``
    included (read with the GC held off: see :class:`gc_held_off`)."""
    with gc_held_off():
        return set(sys._current_frames())
