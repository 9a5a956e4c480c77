"""The interpreter's own thread primitives, as they were before gevent (or eventlet) patched them.

``gevent.monkey.patch_all()`` (gunicorn's gevent worker, Celery's gevent pool, Locust) turns
``threading.Thread`` into a greenlet, ``threading.get_ident()`` into a greenlet id and locks and
events into cooperative ones that only the hub of the calling thread can wake. The agent's
threads must stay real threads (a sampler greenlet would run only when the application yields,
and never while it computes), wait on real locks, and name threads by the ids the interpreter
uses for them (``sys._current_frames()``, the C walk), whenever the patching happens: before the
agent starts (the usual first line of a gevent program) or after (``otelprof run`` and
``opentelemetry-instrument`` start the agent before the program's first line runs).

Waits that the *application* makes on the agent (``force_flush()``, ``precise()``) keep the
patched primitives on purpose: a greenlet waiting on a real lock would stop every greenlet of
its thread.
"""

from __future__ import annotations

import _thread
import sys
from typing import Any, Callable, Optional


def _original(name: str) -> Any:
    """``_thread.<name>`` as the interpreter made it, also after gevent or eventlet patched it."""
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None:
        try:
            return monkey.get_original("_thread", name)
        except Exception:  # an old or odd gevent: fall through to what _thread has now
            pass
    patcher = sys.modules.get("eventlet.patcher")
    if patcher is not None:  # eventlet.monkey_patch() does the same to _thread
        try:
            return getattr(patcher.original("_thread"), name)
        except Exception:
            pass
    return getattr(_thread, name)


# Taken when this module is first imported: the originals if nothing was patched yet (the
# common case), and the ones gevent or eventlet saved if it patched first.
get_ident: Callable[[], int] = _original("get_ident")
"""The calling OS thread's ident (the key of ``sys._current_frames()``), never a greenlet id."""
get_native_id: Callable[[], int] = _original("get_native_id")
"""The calling thread's kernel thread id."""
allocate_lock: Callable[[], Any] = _original("allocate_lock")
"""A lock that blocks the OS thread (``_thread.LockType``), never a greenlet-cooperative one."""
_start_new_thread: Callable[..., int] = _original("start_new_thread")


def start_new_thread(function: Callable[[], None]) -> int:
    """Run ``function`` on a new OS thread; returns the new thread's ident."""
    return _start_new_thread(function, ())


class Event:
    """``threading.Event`` on a real lock, for the agent's threads to wait on.

    The gate lock is held while the event is clear; a waiter acquires it (blocking its OS
    thread, with the GIL released) and hands it straight back, so every waiter passes once it
    is set.
    """

    __slots__ = ("_flag", "_gate", "_mutex")

    def __init__(self) -> None:
        self._mutex = allocate_lock()
        self._gate = allocate_lock()
        self._gate.acquire()
        self._flag = False

    def is_set(self) -> bool:
        return self._flag

    def set(self) -> None:
        with self._mutex:
            if not self._flag:
                self._flag = True
                self._gate.release()

    def clear(self) -> None:
        with self._mutex:
            if self._flag:
                self._flag = False
                # A waiter that just passed the gate hands it back at once: this does not wait
                # on anything but that.
                self._gate.acquire()

    def wait(self, timeout: Optional[float] = None) -> bool:
        """True once set; False when ``timeout`` seconds passed first (as threading.Event)."""
        if self._flag:
            return True
        if timeout is None:
            passed = self._gate.acquire()
        else:
            passed = self._gate.acquire(True, max(0.0, timeout))
        if passed:
            self._gate.release()
        return passed or self._flag


def threads_are_green() -> bool:
    """Whether gevent or eventlet patched ``threading``: then many greenlets take turns on each
    OS thread (a precise window's yappi must then follow greenlets, not threads)."""
    monkey = sys.modules.get("gevent.monkey")
    try:
        if monkey is not None and monkey.is_module_patched("threading"):
            return True
    except Exception:  # an old or odd gevent
        pass
    patcher = sys.modules.get("eventlet.patcher")
    try:
        return bool(patcher is not None and patcher.is_monkey_patched("thread"))
    except Exception:
        return False


def blocking_name_resolution() -> None:
    """Under gevent, make the calling agent thread resolve host names by blocking (only ever
    called on an agent thread: on an application's thread it would block all its greenlets).

    With ``socket`` patched, a connection made on an agent thread (the HTTP exporter's) goes
    through a gevent hub of that thread, whose default resolver runs ``getaddrinfo`` in a pool
    of native threads, started on first use. At exit, where the last export happens, Python
    3.12+ refuses to start threads ("can't create new thread at interpreter shutdown"), so the
    last profiles were lost. An agent thread has no greenlets to run while it waits, so blocking
    costs it nothing. Cheap to call before every connection: the patching may come later.
    """
    monkey = sys.modules.get("gevent.monkey")
    if monkey is None:
        return
    try:
        if not monkey.is_module_patched("socket"):
            return
        import importlib

        resolver_class = importlib.import_module("gevent.resolver.blocking").Resolver
        hub = importlib.import_module("gevent").get_hub()
        if not isinstance(hub.resolver, resolver_class):
            hub.resolver = resolver_class(hub)
    except Exception:  # an old or odd gevent: its default resolver then
        pass
