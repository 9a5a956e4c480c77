"""Run a fault app bare and under ``otelprof run``; time its exit and read what the probe saw."""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import IO, Any, Callable, Dict, List, Optional, Sequence, Tuple

from tests.agent.e2e import OTELPROF, child_env

APPS = pathlib.Path(__file__).parent / "apps"
PROBE = [sys.executable, "-m", "tests.faults.probe"]

# The agent's deadline in these tests, and the exporter timeout that must not replace it: an
# agent waiting on its exporter's own timeout instead of the deadline would take 30 s to exit.
SHUTDOWN_TIMEOUT_SECONDS = 1.0
EXPORTER_TIMEOUT_MILLIS = 30_000
# Generous on purpose: this is a deadline property (does the agent stop waiting?), not speed.
# It covers interpreter teardown and a loaded 2-core machine, and stays far below 30 s.
EXIT_SLACK_SECONDS = 6.0
QUEUE_SIZE = 2

# Small and quick: an export every 0.1 s fills a 2-request queue within a second.
FAST_AGENT_ENV = {
    "OTEL_PYTHON_PROFILER_EXPORT_INTERVAL": "0.1",
    "OTEL_PYTHON_PROFILER_QUEUE_SIZE": str(QUEUE_SIZE),
    "OTEL_PYTHON_PROFILER_SHUTDOWN_TIMEOUT": str(SHUTDOWN_TIMEOUT_SECONDS),
    "OTEL_EXPORTER_OTLP_PROFILES_TIMEOUT": str(EXPORTER_TIMEOUT_MILLIS),
    "OTEL_PYTHON_PROFILER_LOG_LEVEL": "warning",
}


@dataclass
class AppRun:
    """A finished run: output, exit status, and seconds from its last stdout line to exit."""

    stdout: str
    stderr: str
    returncode: int
    exit_seconds: float
    events: List[Dict[str, Any]] = field(default_factory=list)

    @property
    def pid(self) -> int:
        """The app's process id (fork children write events too, under their own pid)."""
        started = [e for e in self.events if e["event"] == "started"]
        assert len(started) == 1, f"the probe did not start once: {self.events}\n{self.stderr}"
        return int(started[0]["pid"])

    @property
    def stats(self) -> Dict[str, Any]:
        """The app process's summary, written once the agent's processor has shut down."""
        pid = self.pid
        found = [e for e in self.events if e["event"] == "stats" and e["pid"] == pid]
        assert len(found) == 1, f"expected one stats event, got {found}; stderr:\n{self.stderr}"
        return found[0]

    @property
    def exports(self) -> List[Dict[str, Any]]:
        pid = self.pid
        return [e for e in self.events if e["event"] == "export" and e["pid"] == pid]


def _pump(stream: IO[str], lines: queue.Queue[Tuple[float, Optional[str]]]) -> None:
    for line in stream:
        lines.put((time.monotonic(), line))
    lines.put((time.monotonic(), None))


class RunningApp:
    """A started app; its stdout lines are timestamped as they arrive."""

    def __init__(
        self, args: Sequence[str], env: Dict[str, str], probe_file: Optional[pathlib.Path]
    ) -> None:
        self.probe_file = probe_file
        self.process = subprocess.Popen(
            list(args),
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its own process group: kill() reaches forked children
        )
        self._lines: queue.Queue[Tuple[float, Optional[str]]] = queue.Queue()
        self._stdout: List[str] = []
        self._last_line_at = time.monotonic()
        self._eof = False
        self._stderr: List[str] = []
        assert self.process.stdout is not None and self.process.stderr is not None
        threading.Thread(target=_pump, args=(self.process.stdout, self._lines), daemon=True).start()
        self._stderr_thread = threading.Thread(
            target=lambda: self._stderr.extend(self.process.stderr or ()), daemon=True
        )
        self._stderr_thread.start()

    def _take(self, timeout_seconds: float) -> bool:
        """Move one line (or EOF) from the reader; False when none came in time."""
        try:
            at, line = self._lines.get(timeout=timeout_seconds)
        except queue.Empty:
            return False
        if line is None:
            self._eof = True
        else:
            self._stdout.append(line)
            self._last_line_at = at
        return True

    def wait_for_line(self, text: str, timeout_seconds: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_seconds
        while text + "\n" not in self._stdout:
            remaining = deadline - time.monotonic()
            if self._eof or remaining <= 0 or not self._take(remaining):
                self.kill()
                raise AssertionError(f"{text!r} never printed; stdout: {self._stdout}")

    def events(self) -> List[Dict[str, Any]]:
        if self.probe_file is None or not self.probe_file.exists():
            return []
        text = self.probe_file.read_text(encoding="utf-8")
        return [json.loads(line) for line in text.splitlines() if line.endswith("}")]

    def wait_for_events(
        self, predicate: Callable[[List[Dict[str, Any]]], bool], timeout_seconds: float = 30.0
    ) -> None:
        """Poll the probe's file until ``predicate`` holds (a deadline, never a fixed sleep)."""
        deadline = time.monotonic() + timeout_seconds
        while not predicate(self.events()):
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.kill()
                raise AssertionError(f"probe condition not reached; events: {self.events()}")
            time.sleep(0.01)

    def finish(self, timeout_seconds: float = 60.0, signal_number: Optional[int] = None) -> AppRun:
        """Cue the app to end (close stdin, or send ``signal_number``), read to EOF, and time
        the exit after the last line."""
        assert self.process.stdin is not None
        if signal_number is not None:
            self.process.send_signal(signal_number)
        else:
            self.process.stdin.close()
        deadline = time.monotonic() + timeout_seconds
        while not self._eof:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._take(remaining):
                self.kill()
                raise AssertionError(f"app did not finish; stdout so far: {self._stdout}")
        try:
            returncode = self.process.wait(max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("the app never exited after its last line") from None
        exited_at = time.monotonic()
        self._stderr_thread.join(10)
        return AppRun(
            stdout="".join(self._stdout),
            stderr="".join(self._stderr),
            returncode=returncode,
            exit_seconds=exited_at - self._last_line_at,
            events=self.events(),
        )

    def kill(self) -> None:
        """End the app and anything it forked (a failed test must not leave processes behind)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)


def start_bare(app: str, env: Optional[Dict[str, str]] = None) -> RunningApp:
    """The app with no agent at all, the reference for its output.

    Started through the probe too (which then does nothing, not even import otelprof), so
    both runs have the same launcher frames under the app's ``main``.
    """
    return RunningApp([*PROBE, str(APPS / app)], env or child_env(), None)


def start_profiled(
    app: str,
    tmp_path: pathlib.Path,
    otelprof_args: Sequence[str] = (),
    env: Optional[Dict[str, str]] = None,
) -> RunningApp:
    """The app under ``otelprof run``, wrapped by the probe (which leaves its output alone)."""
    probe_file = tmp_path / f"probe-{time.monotonic_ns()}.jsonl"
    full_env = child_env(**FAST_AGENT_ENV)
    full_env.update(env or {})
    full_env["FAULT_PROBE_FILE"] = str(probe_file)
    args = [*OTELPROF, "run", *otelprof_args, "--", *PROBE, str(APPS / app)]
    return RunningApp(args, full_env, probe_file)


def run_bare(app: str, env: Optional[Dict[str, str]] = None, timeout: float = 60.0) -> AppRun:
    return start_bare(app, env).finish(timeout)


def assert_exit_within_deadline(run: AppRun, deadline_seconds: float) -> None:
    """The process ended within the agent's deadline (plus slack) after the app's last line."""
    limit = deadline_seconds + EXIT_SLACK_SECONDS
    assert run.exit_seconds < limit, (
        f"exit took {run.exit_seconds:.2f}s after the last line (deadline {deadline_seconds}s "
        f"+ {EXIT_SLACK_SECONDS}s slack); stderr:\n{run.stderr}"
    )


def free_port() -> int:
    """A loopback port nothing listens on (bound, then closed): connecting is refused."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def no_agent_traceback(stderr: str) -> bool:
    """True when stderr carries no traceback and no agent error (warnings are expected)."""
    return "Traceback" not in stderr and " ERROR " not in stderr and "Exception" not in stderr
