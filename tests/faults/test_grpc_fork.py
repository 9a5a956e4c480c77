"""gRPC and fork: a child forked while the exporter is inside a call must not crash using gRPC."""

from __future__ import annotations

import ast
import copy
import threading

import pytest

from otelprof.config import resolve_config
from otelprof.export import _grpc_fork
from otelprof.export._grpc_fork import ForkGuard
from otelprof.export.otlp_grpc import OTLPGrpcProfileExporter
from tests.agent.e2e import child_env, run
from tests.export.servers import RecordingGrpcServer, make_request
from tests.faults.harness import APPS, PROBE

FORKS = 150  # without the guard, about 1 child in 75 died of SIGSEGV here


@pytest.mark.timeout(120)
def test_children_forked_during_exports_survive_using_grpc() -> None:
    with RecordingGrpcServer() as server:
        result = run(
            [*PROBE, str(APPS / "grpc_fork_app.py"), server.endpoint, str(FORKS)],
            env=child_env(),
            timeout=100,
        )
    assert result.returncode == 0, result.stderr
    outcomes = ast.literal_eval(result.stdout.split("children ", 1)[1])
    # Every child exported, or (fork during a call that outlived the wait) declined to: none
    # was killed by a signal, none failed otherwise.
    assert set(outcomes) <= {0, 5}, result.stdout
    assert sum(outcomes.values()) == FORKS
    # gRPC complains of every fork it sees during a call; only declined children may have one.
    assert result.stderr.count("skipping fork() handlers") <= outcomes.get(5, 0), result.stderr


def _call_in_flight(guard: ForkGuard) -> tuple:
    inside, release = threading.Event(), threading.Event()

    def call() -> None:
        with guard.call():
            inside.set()
            release.wait(30)

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    assert inside.wait(10)
    return thread, release


def test_a_fork_without_a_call_in_flight_leaves_the_child_free_to_use_grpc() -> None:
    guard = ForkGuard()
    guard.before_fork()
    guard.after_fork_in_child()
    assert not guard.unsafe
    with guard.call():  # the child's gate is a fresh, free one
        pass


def test_a_child_forked_during_a_hung_call_is_marked_unsafe() -> None:
    guard = ForkGuard()
    thread, release = _call_in_flight(guard)
    try:
        guard.before_fork()  # gives up after FORK_WAIT_SECONDS
        assert guard._stuck  # a later fork will not wait for the same call again
        child = copy.copy(guard)  # the child's memory is a copy of the parent's
        guard.after_fork_in_parent()
        child.after_fork_in_child()
        assert child.unsafe
        assert not guard.unsafe
    finally:
        release.set()
        thread.join(10)


def test_the_parent_gets_its_gate_back_after_fork() -> None:
    guard = ForkGuard()
    guard.before_fork()
    guard.after_fork_in_parent()
    thread, release = _call_in_flight(guard)  # would hang if the gate were still held
    release.set()
    thread.join(10)


def test_an_unsafe_process_refuses_grpc_exports(monkeypatch: pytest.MonkeyPatch) -> None:
    guard = ForkGuard()
    guard.unsafe = True
    monkeypatch.setattr("otelprof.export.otlp_grpc.GUARD", guard)
    exporter = OTLPGrpcProfileExporter(resolve_config({}, endpoint="http://127.0.0.1:9").exporter)
    result = exporter.export(make_request(), 1)
    assert result.status.name == "PERMANENT"
    assert "forked while an export was in flight" in result.message
    assert _grpc_fork.FORK_WAIT_SECONDS <= 1  # forks are never held up for long
