"""Precise windows in gevent and eventlet programs: yappi follows the greenlets.

Greenlets take turns on one OS thread. With yappi's default (one context per thread), each
greenlet's calls and returns landed on one shared call stack: in the program below 398 of the
400 calls of ``spin`` were charged to ``worker_b`` and ``worker_b`` was "called" by ``sleep``.
The window now runs yappi's greenlet backend there (one context per greenlet) and puts the
default back afterwards. Each program runs in a process of its own: monkey patching is for good.
"""

from __future__ import annotations

import json
import pathlib
import sys
from typing import Dict

import pytest

from tests.agent.e2e import child_env, run

CALLS_EACH = 60

PROGRAM = """
import json, sys
LIBRARY = sys.argv[1]
if LIBRARY == "gevent":
    from gevent import monkey
    monkey.patch_all()
    import gevent
    yield_now, spawn = (lambda: gevent.sleep(0)), gevent.spawn
    def join_all(greenlets):
        gevent.joinall(greenlets)
else:
    import eventlet
    eventlet.monkey_patch()
    yield_now, spawn = (lambda: eventlet.sleep(0)), eventlet.spawn
    def join_all(greenlets):
        for greenlet in greenlets:
            greenlet.wait()

import threading
import _yappi
import yappi
import otelprof

CALLS = int(sys.argv[2])

def spin(n):
    total = 0
    for i in range(n):
        total += i
    return total

def worker_a():
    for _ in range(CALLS):
        spin(2000)
        yield_now()

def worker_b():
    for _ in range(CALLS):
        spin(2000)
        yield_now()

with otelprof.precise(None) as window:
    join_all([spawn(worker_a), spawn(worker_b)])

edges, threads = {}, set()
for profile in window.profiles:
    if profile.sample_type.type != "calls":
        continue
    for sample in profile.samples:
        edge = "<".join(frame.function for frame in sample.stack)
        edges[edge] = edges.get(edge, 0) + sample.value
        threads.add(dict(sample.attributes)["thread.name"])
print(json.dumps({
    "edges": edges,
    "threads": sorted(threads),
    "backend": _yappi.get_context_backend(),
    "running": yappi.is_running(),
}))
"""


@pytest.mark.parametrize("library", ["gevent", "eventlet"])
def test_each_greenlet_has_its_own_call_stack(library: str, tmp_path: pathlib.Path) -> None:
    script = tmp_path / "program.py"
    script.write_text(PROGRAM)
    result = run([sys.executable, str(script), library, str(CALLS_EACH)], env=child_env())
    assert result.returncode == 0, result.stderr
    # yappi's greenlet callbacks left installed print "greenlet is being finalized" at exit.
    assert "Traceback" not in result.stderr and "Exception ignored" not in result.stderr, (
        result.stderr
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    edges: Dict[str, int] = report["edges"]
    spin_callers = {edge: calls for edge, calls in edges.items() if edge.startswith("spin<")}
    assert spin_callers == {"spin<worker_a": CALLS_EACH, "spin<worker_b": CALLS_EACH}, edges
    for worker in ("worker_a", "worker_b"):
        assert edges[f"<lambda><{worker}"] == CALLS_EACH, edges  # its yields, each its own
        # Called once, by the greenlet's runner (eventlet's GreenThread.main; gevent's
        # Greenlet.run is C, so no caller), never "by" the yield it came back from.
        called = {edge: calls for edge, calls in edges.items() if edge.split("<")[0] == worker}
        assert sum(called.values()) == 1, edges
        assert not [edge for edge in called if edge.endswith(("<sleep", "<<lambda>"))], edges
    # Samples keep the OS thread's name, as the stack sampler's do, not a stand-in per greenlet.
    assert report["threads"] == ["MainThread"]
    assert report["backend"] == "NATIVE_THREAD" and report["running"] is False
