"""The agent's own threads and the real-lock Event they wait on (``otelprof._unpatched``)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from typing import List

import pytest

from otelprof import _unpatched
from otelprof._threads import AGENT_THREAD_IDENTS, running_agent_threads, start_agent_thread


def test_event_wait_times_out_until_set_and_passes_every_waiter_once_set() -> None:
    event = _unpatched.Event()
    assert not event.is_set()
    assert event.wait(0) is False
    assert event.wait(0.01) is False
    passed: List[bool] = []
    started = threading.Barrier(4)

    def waiter() -> None:
        started.wait()
        passed.append(event.wait(30))

    waiters = [threading.Thread(target=waiter) for _ in range(3)]
    for thread in waiters:
        thread.start()
    started.wait()
    event.set()
    event.set()  # twice is harmless
    for thread in waiters:
        thread.join(30)
    assert passed == [True, True, True]
    assert event.is_set() and event.wait() is True and event.wait(0) is True


def test_event_clear_makes_waits_time_out_again() -> None:
    event = _unpatched.Event()
    event.set()
    event.clear()
    event.clear()  # twice is harmless
    assert not event.is_set()
    assert event.wait(0.01) is False
    event.set()
    assert event.wait(0) is True


def test_an_agent_thread_runs_as_a_named_os_thread_and_leaves_no_trace() -> None:
    release = _unpatched.Event()
    seen: List[object] = []

    def target() -> None:
        seen.append((_unpatched.get_ident(), threading.current_thread().name))
        release.wait(30)

    thread = start_agent_thread("otelprof-test-thread", target)
    try:
        assert thread.is_alive() and thread in running_agent_threads()
        assert thread.ident in AGENT_THREAD_IDENTS
        # threading (and logging's %(threadName)s) knows it by its name while it runs.
        assert "otelprof-test-thread" in [t.name for t in threading.enumerate()]
        assert not thread.is_current()
    finally:
        release.set()
        thread.join(30)
    assert not thread.is_alive() and thread not in running_agent_threads()
    assert thread.ident not in AGENT_THREAD_IDENTS
    assert seen and seen[0] == (thread.ident, "otelprof-test-thread")
    # Its stand-in is gone from threading's table: a later thread reusing the ident must not
    # be taken for an agent thread.
    assert "otelprof-test-thread" not in [t.name for t in threading.enumerate()]


def test_an_agent_thread_that_raises_logs_and_ends(caplog) -> None:  # type: ignore[no-untyped-def]
    def target() -> None:
        raise RuntimeError("boom")

    thread = start_agent_thread("otelprof-test-raises", target)
    thread.join(30)
    assert not thread.is_alive()
    assert "otelprof-test-raises stopped on an unexpected error" in caplog.text


def test_a_fork_child_has_none_of_the_parents_agent_threads() -> None:
    release = _unpatched.Event()
    thread = start_agent_thread("otelprof-test-fork", lambda: release.wait(30) and None)
    try:
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: report and leave without running the parent's atexit
            try:
                thread.join(30)  # returns at once: the thread is not in this process
                report = f"{thread.is_alive()} {len(running_agent_threads())}"
                os.write(write, report.encode())
            finally:
                os._exit(0)
        os.close(write)
        with os.fdopen(read) as pipe:
            report = pipe.read()
        os.waitpid(pid, 0)
        assert report == "False 0"
        assert thread.is_alive()  # the parent's is untouched
    finally:
        release.set()
        thread.join(30)


def test_a_thread_that_cannot_start_is_not_left_running(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    def refuse(function: object) -> int:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(_unpatched, "start_new_thread", refuse)
    before = running_agent_threads()
    with pytest.raises(RuntimeError, match="can't start new thread"):
        start_agent_thread("otelprof-test-refused", lambda: None)
    assert running_agent_threads() == before


def _python(code: str) -> subprocess.CompletedProcess[str]:
    """``code`` run by a fresh interpreter: for what only a process of its own can show."""
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60
    )


def test_the_main_thread_is_known_when_otelprof_is_imported_after_eventlet_patched() -> None:
    # Under eventlet the main thread's current_thread() is a green stand-in, and threading
    # lists it under a greenlet's id: without knowing the OS main thread, Python 3.10 (which
    # has no other way to its kernel thread id) sampled it with no CPU at all.
    code = (
        "import warnings; warnings.simplefilter('ignore');"
        "import eventlet; eventlet.monkey_patch();"
        "from otelprof import _threads, _unpatched;"
        "raise SystemExit(0 if _threads._main_ident == _unpatched.get_ident() else 1)"
    )
    assert _python(code).returncode == 0


def test_an_agent_thread_resolves_names_without_starting_threads_under_gevent() -> None:
    # gevent's default resolver runs getaddrinfo in native threads it starts on first use; at
    # exit (the last export) Python 3.12+ refuses to start one, and the profiles were lost.
    code = """
import os
from gevent import monkey
monkey.patch_all()
import socket
from otelprof import _unpatched
from otelprof._threads import start_agent_thread

result = {}
def resolve():
    _unpatched.blocking_name_resolution()
    before = len(os.listdir("/proc/self/task"))
    socket.getaddrinfo("127.0.0.1", 4318)
    result["started"] = len(os.listdir("/proc/self/task")) - before

thread = start_agent_thread("otelprof-test", resolve)
thread.join(60)
raise SystemExit(0 if result == {"started": 0} else f"threads started: {result}")
"""
    result = _python(code)
    assert result.returncode == 0, result.stderr


def test_an_agent_thread_ending_late_in_finalization_leaves_no_error_behind() -> None:
    # Python 3.13 ties the stand-in Thread that threading.current_thread() makes for a thread
    # it did not start to a thread-local whose __del__ takes threading's lock when the thread
    # ends. An agent thread that ends during finalization (a gunicorn gevent worker's, past its
    # stop deadline) ran it after threading's globals were cleared: "Exception ignored in
    # _DeleteDummyThreadOnDel.__del__". Simulated here by clearing the lock before it ends.
    code = """
import threading
from otelprof._threads import start_agent_thread

def end_as_in_finalization():
    threading._active_limbo_lock = None

start_agent_thread("otelprof-test", end_as_in_finalization).join(60)
"""
    result = _python(code)
    assert result.returncode == 0 and "Exception ignored" not in result.stderr, result.stderr
