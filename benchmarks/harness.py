"""Runs workloads under configurations, interleaved, and measures CPU, wall and accuracy.

One run = one child process. Its CPU comes from ``os.wait4`` (user+sys of the child and every
descendant it reaped); the workload itself reports the CPU and wall of its work phase, its own
process total, and its children's (the load generator), so an out-of-process profiler's own CPU
is what is left over. Rounds go round-robin over the configurations (rotating the order each
round) so slow drifts in machine load hit every configuration alike.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from benchmarks import accuracy
from benchmarks.capture_server import CaptureServer
from benchmarks.configs import Config, RunContext

# The names workloads/_common.py reads (the workloads run as scripts, not from this package).
RESULT_ENV = "OTELPROF_BENCH_RESULT"
BARRIER_ENV = "OTELPROF_BENCH_BARRIER"
PR_SET_CHILD_SUBREAPER = 36
WORKLOADS_DIR = Path(__file__).resolve().parent / "workloads"


@dataclass(frozen=True)
class Workload:
    """A script with its arguments; ``modes`` non-empty makes it an accuracy workload."""

    name: str
    script: str
    args: Sequence[str] = ()
    modes: Sequence[str] = ()  # sample types with ground truth: "cpu", "wall"
    expected_seconds: float = 20.0

    def argv(self) -> List[str]:
        return [str(WORKLOADS_DIR / self.script), *self.args]


@dataclass
class Run:
    """What one run measured (seconds unless named otherwise)."""

    workload: str
    config: str
    mode: str
    round: int
    ok: bool = False
    error: Optional[str] = None
    cpu: float = 0.0  # whole run, every process except the load generator
    work_cpu: float = 0.0  # the target process during the work phase
    work_wall: float = 0.0
    # the work phase's user and system CPU seconds, context switches and page faults
    work_parts: Dict[str, float] = field(default_factory=dict)
    profiler_cpu: float = 0.0  # in-process profiler threads + any out-of-process profiler
    external_cpu: float = 0.0  # processes other than the target (py-spy; `otelprof run`'s parent)
    elapsed: float = 0.0  # harness clock, start to exit
    accuracy: Optional[Dict[str, Any]] = None
    extra: Dict[str, Any] = field(default_factory=dict)


def run_once(
    workload: Workload,
    config: Config,
    mode: str,
    round_number: int,
    capture: Optional[CaptureServer],
    python: str,
    keep_dir: Optional[Path] = None,
    base_env: Optional[Dict[str, str]] = None,
    reap_orphans: bool = True,
) -> Run:
    """Run ``workload`` once under ``config``; never raises for a failed run.

    ``reap_orphans=False`` when other runs go on at the same time (benchmarks/corun.py):
    waiting for any child would take theirs.
    """
    run = Run(workload=workload.name, config=config.name, mode=mode, round=round_number)
    out_dir = Path(tempfile.mkdtemp(prefix=f"otelprof-bench-{config.name}-"))
    run_id = f"bench-{os.getpid()}-{workload.name}-{config.name}-{mode}-{round_number}"
    ctx = RunContext(python, workload.argv(), out_dir, mode, run_id, capture)
    result_path = out_dir / "result.json"
    env = dict(os.environ)
    env.update(base_env or {})
    env.update(config.env(ctx))
    env[RESULT_ENV] = str(result_path)
    try:
        run = _measure(run, ctx, config, env, result_path, workload.expected_seconds, reap_orphans)
        if run.ok and config.read is not None and mode in workload.modes:
            truth = json.loads(result_path.read_text())["truth"][mode]
            run.accuracy = accuracy.evaluate(config.read(ctx), truth)
    except Exception as exc:  # one bad run must not lose the others
        run.ok, run.error = False, f"{type(exc).__name__}: {exc}"
    finally:
        if keep_dir is not None:
            shutil.copytree(out_dir, keep_dir / run_id, dirs_exist_ok=True)
        shutil.rmtree(out_dir, ignore_errors=True)
    return run


def _measure(
    run: Run,
    ctx: RunContext,
    config: Config,
    env: Dict[str, str],
    result_path: Path,
    expected_seconds: float,
    reap_orphans: bool = True,
) -> Run:
    argv = config.argv(ctx)
    log_path = ctx.out_dir / "output.log"
    started = time.perf_counter()
    with log_path.open("wb") as log:
        child = subprocess.Popen(
            argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        # A hung run is killed well after any plausible duration (tracing peers run ~40x slower).
        killer = threading.Timer(expected_seconds * 60 + 120, lambda: _kill_group(child.pid))
        killer.start()
        try:
            _, status, usage = os.wait4(child.pid, 0)
            total = usage.ru_utime + usage.ru_stime + (_reap_orphans() if reap_orphans else 0.0)
        finally:
            killer.cancel()
        child.returncode = os.waitstatus_to_exitcode(status)
    run.elapsed = time.perf_counter() - started
    if child.returncode != 0 or not result_path.exists():
        tail = log_path.read_text(errors="replace")[-600:].strip()
        run.error = f"exit {child.returncode}: {tail}"
        return run
    report = json.loads(result_path.read_text())
    children = report["children_cpu_seconds"]
    run.cpu = total - children
    run.work_cpu = report["work_cpu_seconds"]
    run.work_wall = report["work_wall_seconds"]
    run.work_parts = dict(report.get("work_parts", {}))
    own = report["process_cpu_seconds"] + children
    if total >= own or reap_orphans:
        run.external_cpu = max(0.0, total - own)
    else:
        # Not reaped by a launcher that exited first (py-spy can): its total is its own CPU.
        run.external_cpu = total
    run.profiler_cpu = report["background_cpu_seconds"] + (
        run.external_cpu if config.out_of_process else 0.0
    )
    run.extra = dict(report.get("extra", {}))
    run.extra["background_threads"] = report["background_threads"]
    run.extra["background_by_thread"] = report.get("background_by_thread", {})
    run.ok = True
    return run


def become_subreaper() -> bool:
    """Adopt orphaned descendants (Linux): a launcher that exits without reaping its child.

    py-spy sometimes exits without waiting for the program it ran; that program's CPU then
    never reaches py-spy's rusage. As a subreaper the harness inherits and reaps it itself.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def _reap_orphans() -> float:
    """Wait for every remaining child (adopted orphans); the CPU they used, in seconds."""
    spent = 0.0
    while True:
        try:
            _, _, usage = os.wait4(-1, 0)
        except ChildProcessError:
            return spent
        spent += usage.ru_utime + usage.ru_stime


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def interleave(
    workload: Workload,
    configs: Sequence[Config],
    rounds: int,
    mode: str,
    capture: Optional[CaptureServer],
    python: str,
    progress: Optional[Any] = None,
    keep_dir: Optional[Path] = None,
    base_env: Optional[Dict[str, str]] = None,
) -> List[Run]:
    """``rounds`` rounds; each runs every configuration once, the order rotated per round."""
    runs: List[Run] = []
    for number in range(rounds):
        shift = number % len(configs)
        for config in [*configs[shift:], *configs[:shift]]:
            run = run_once(workload, config, mode, number, capture, python, keep_dir, base_env)
            runs.append(run)
            if progress is not None:
                progress(run)
    return runs


def runs_to_json(runs: Sequence[Run]) -> List[Dict[str, Any]]:
    return [asdict(run) for run in runs]
