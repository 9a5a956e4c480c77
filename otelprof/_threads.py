"""The agent's own threads: started as named daemons and left out of every profile."""

from __future__ import annotations

import gc
import logging
import os
import sys
import threading
from typing import Callable, Dict, List, Optional, Set, Tuple

from otelprof import _unpatched

_logger = logging.getLogger("otelprof")

AGENT_THREAD_IDENTS: Set[int] = set()
"""The OS thread ident (``otelprof._unpatched.get_ident()``) of every live agent thread; the
sampler skips these."""


AGENT_THREAD_MARK = "_otelprof_agent_thread"

_running: Set[AgentThread] = set()  # started and not yet ended (in this process)


def running_agent_threads() -> List[AgentThread]:
    """The agent's threads that are running now (threading.enumerate() lists them only by a
    stand-in it cannot join: see start_agent_thread)."""
    return [thread for thread in list(_running) if thread.is_alive()]


def is_agent_thread(ident: int, thread: Optional[threading.Thread]) -> bool:
    """Whether ``ident`` (with its Thread, if any) is one of the agent's threads, also before it
    has registered itself."""
    return ident in AGENT_THREAD_IDENTS or bool(getattr(thread, AGENT_THREAD_MARK, False))


class AgentThread:
    """One of the agent's threads: a real OS thread, also where gevent patched
    ``threading`` (see :mod:`otelprof._unpatched`), with what the agent asks of a Thread."""

    __slots__ = ("_done", "_pid", "ident", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self.ident: Optional[int] = None  # the OS thread's ident, once it runs
        self._pid = os.getpid()
        self._done = _unpatched.allocate_lock()
        self._done.acquire()  # held while the thread runs

    def is_alive(self) -> bool:
        # A fork child has none of its parent's threads (and the lock stays held there).
        return self._pid == os.getpid() and self._done.locked()

    def is_current(self) -> bool:
        return self.ident == _unpatched.get_ident()

    def join(self, timeout: Optional[float] = None) -> None:
        if self._pid != os.getpid():
            return
        if self._done.acquire(True, -1 if timeout is None else max(0.0, timeout)):
            self._done.release()


def start_agent_thread(name: str, target: Callable[[], None]) -> AgentThread:
    """Start ``target`` on a daemon OS thread that the profiler does not profile.

    The ident is registered by the thread itself before ``target`` runs, so no sample is ever
    taken of it; it is removed when ``target`` returns or raises. The thread is started with
    the interpreter's own ``start_new_thread``, not ``threading.Thread``: after gevent's
    ``patch_all()`` a Thread is a greenlet, and a Thread started before it ends with a
    traceback (threading looks its ident up with the patched ``get_ident``).
    """
    thread = AgentThread(name)
    registered = _unpatched.Event()
    _running.add(thread)

    def run() -> None:
        ident = _unpatched.get_ident()
        AGENT_THREAD_IDENTS.add(ident)
        thread.ident = ident
        named = _name_current_thread(name)
        registered.set()
        try:
            target()
        except BaseException:  # never let an agent failure reach the host's excepthook
            _logger.exception("otelprof: thread %s stopped on an unexpected error", name)
        finally:
            AGENT_THREAD_IDENTS.discard(ident)
            _forget_thread_name(named)
            _running.discard(thread)
            thread._done.release()

    try:
        _unpatched.start_new_thread(run)
    except BaseException:  # "can't start new thread": the caller's to handle, as with Thread
        _running.discard(thread)
        thread._done.release()
        raise
    registered.wait(5.0)
    return thread


def _name_current_thread(name: str) -> Optional[threading.Thread]:
    """Give the calling agent thread its name where ``threading`` (and logging's
    ``%(threadName)s``) looks it up: ``threading.current_thread()`` registers a stand-in Thread
    for a thread it did not start; it gets the agent's name and mark."""
    try:
        thread = threading.current_thread()
        thread.name = name
        setattr(thread, AGENT_THREAD_MARK, True)
        _disarm_stand_in_cleanup()
        return thread
    except Exception:
        return None


class _NoCleanup:
    """What 3.13's per-thread stand-in cleanup becomes on an agent thread (see below)."""


def _disarm_stand_in_cleanup() -> None:
    """Python 3.13 ties the stand-in to a thread-local whose ``__del__`` takes threading's lock
    to remove it from ``threading._active`` when the thread ends. An agent thread that ends
    during finalization (past a stop deadline at exit) ran it after threading's globals were
    cleared: "Exception ignored in _DeleteDummyThreadOnDel.__del__" on stderr. The agent removes
    its stand-ins itself (:func:`_forget_thread_name`, which survives that), so that object is
    made inert."""
    info = getattr(threading, "_thread_local_info", None)
    cleanup = getattr(info, "_track_dummy_thread_ref", None)
    if cleanup is not None and type(cleanup).__name__ == "_DeleteDummyThreadOnDel":
        cleanup.__class__ = _NoCleanup


def _forget_thread_name(thread: Optional[threading.Thread]) -> None:
    """Take the stand-in out of threading's table as the thread ends: threading keeps it
    forever otherwise, and a later thread with the same ident would be named (and left out of
    profiles) as this agent thread."""
    if thread is None:
        return
    try:
        active = threading._active  # type: ignore[attr-defined]
        with threading._active_limbo_lock:  # type: ignore[attr-defined]
            for key in [key for key, value in active.items() if value is thread]:
                del active[key]
    except Exception:
        pass


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


_gc_lock = _unpatched.allocate_lock()
_gc_holders = 0
_gc_restore = False


def application_gc_enabled() -> bool:
    """Whether the application has the cyclic GC on, looking through an agent thread's hold."""
    with _gc_lock:
        return _gc_restore if _gc_holders else gc.isenabled()


def _forget_threads_after_fork_in_child() -> None:
    _running.clear()  # the parent's threads do not exist here


def _gc_hold_after_fork_in_child() -> None:
    # The holding thread does not exist in the child: give the GC back.
    global _gc_lock, _gc_holders
    _gc_lock = _unpatched.allocate_lock()
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
    _fork_survivor = (_unpatched.get_ident(), _unpatched.get_native_id())


def _main_thread_ident() -> Optional[int]:
    """The OS ident of the main thread when this module is imported on it (None otherwise, and
    then :func:`unlisted_thread` cannot find the main thread that gevent re-keyed)."""
    if threading.current_thread() is threading.main_thread():
        return _unpatched.get_ident()
    # After eventlet's monkey_patch() the main thread's current_thread() is a green stand-in;
    # on Linux the main thread is the one whose kernel thread id is the process id.
    try:
        if _unpatched.get_native_id() == os.getpid():
            return _unpatched.get_ident()
    except Exception:
        pass
    return None


_main_ident = _main_thread_ident()


def _note_main_thread_after_fork() -> None:
    global _main_ident
    _main_ident = _unpatched.get_ident()  # the forking thread is the child's main thread


def unlisted_thread(ident: int) -> Optional[threading.Thread]:
    """The Thread of OS thread ``ident`` when ``threading._active`` has no entry for it: the
    main thread after gevent's ``patch_all()``, which re-keys it under its greenlet's id."""
    return threading.main_thread() if ident == _main_ident else None


def thread_of(ident: int) -> Optional[threading.Thread]:
    """The Thread of OS thread ``ident`` (``threading._active`` keyed by OS idents, or the main
    thread gevent re-keyed); None for a thread ``threading`` did not start."""
    active: Dict[int, threading.Thread] = threading._active  # type: ignore[attr-defined]
    return active.get(ident) or unlisted_thread(ident)


def native_id_of(ident: int, thread: Optional[threading.Thread]) -> Optional[int]:
    """The kernel thread id of the thread ``ident`` (``None`` when unknown), right after a fork
    too; ``thread`` is its ``threading.Thread`` if it has one."""
    survivor = _fork_survivor
    if survivor is not None and survivor[0] == ident:
        return survivor[1]
    return getattr(thread, "native_id", None)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_threads_after_fork_in_child)
    os.register_at_fork(after_in_child=_gc_hold_after_fork_in_child)
    os.register_at_fork(after_in_child=_note_fork_survivor)
    os.register_at_fork(after_in_child=_note_main_thread_after_fork)


def live_thread_idents() -> Set[int]:
    """The idents of every thread running Python code now, threads not made by ``threading``
    included (read with the GC held off: see :class:`gc_held_off`)."""
    with gc_held_off():
        return set(sys._current_frames())
