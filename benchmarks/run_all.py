"""Runs the overhead and accuracy benchmarks, prints markdown tables, writes JSON results.

    python benchmarks/run_all.py            # full: ~20 s per run, 5 overhead / 3 accuracy rounds
    python benchmarks/run_all.py --quick    # a few minutes, for checking the harness itself

Never part of CI and never a pass/fail gate: the verdict lines are for people reading them.
"""

from __future__ import annotations

import argparse
import atexit
import datetime
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Sequence

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import configs as configs_module
from benchmarks import report
from benchmarks.capture_server import CaptureServer
from benchmarks.harness import Run, Workload, become_subreaper, interleave, runs_to_json
from benchmarks.verdict import verdicts

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def overhead_workloads(scale: float) -> List[Workload]:
    """Fixed amounts of work (bare ~20 s at scale 1)."""
    return [
        Workload("web_service", "web_service.py", ("--scale", str(scale)), (), 20 * scale),
        Workload("call_heavy", "call_heavy.py", ("--scale", str(scale)), (), 20 * scale),
    ]


def accuracy_cases(seconds: float) -> List[tuple[Workload, str]]:
    """(workload, sample type) pairs with a measured ground truth."""
    args = ("--seconds", str(seconds))
    cpu_split = Workload("cpu_split", "cpu_split.py", args, ("cpu",), seconds)
    wall_split = Workload("wall_split", "wall_split.py", args, ("wall", "cpu"), seconds)
    return [(cpu_split, "cpu"), (wall_split, "wall"), (wall_split, "cpu")]


def machine() -> Dict[str, Any]:
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next(
                (ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), ""
            )
    except OSError:
        pass
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "loadavg_start": os.getloadavg(),
    }


def otelprof_source(rev: str | None) -> Dict[str, Any]:
    """Which otelprof the runs use; with ``rev``, a pinned copy of that commit's package.

    Other people keep editing the work tree while a 30-minute benchmark runs; a pinned copy
    (first on PYTHONPATH, so `python -m otelprof` and the profiled child both import it) keeps
    every otelprof run on the same code.
    """
    repo = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, check=False)
        return done.stdout.decode().strip()

    if rev is None:
        dirty = bool(git("status", "--porcelain", "--", "otelprof"))
        return {"commit": git("rev-parse", "HEAD"), "work_tree_dirty": dirty, "env": {}}
    commit = git("rev-parse", "--verify", f"{rev}^{{commit}}")
    if not commit:
        sys.exit(f"--otelprof-at: no such commit {rev!r}")
    archive = subprocess.run(
        ["git", "-C", str(repo), "archive", commit, "otelprof"], capture_output=True, check=True
    ).stdout
    pinned = tempfile.mkdtemp(prefix=f"otelprof-{commit[:10]}-")
    atexit.register(shutil.rmtree, pinned, ignore_errors=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        if hasattr(tarfile, "data_filter"):  # 3.12+ (and late 3.9-3.11 patch releases)
            tar.extractall(pinned, filter="data")
        else:
            tar.extractall(pinned)  # our own repository's archive
    path = os.pathsep.join(p for p in (pinned, os.environ.get("PYTHONPATH", "")) if p)
    return {"commit": commit, "pinned_copy": pinned, "env": {"PYTHONPATH": path}}


def _select(names: str, default: Sequence[str]) -> List[str]:
    chosen = list(default) if names == "default" else names.split(",")
    if names == "all":
        chosen = list(configs_module.CONFIGS)
    for name in chosen:
        rated = configs_module.with_rate(name)
        if rated is not None:
            configs_module.CONFIGS[name] = rated
    unknown = [n for n in chosen if n not in configs_module.CONFIGS]
    if unknown:
        sys.exit(f"unknown configuration(s): {', '.join(unknown)}")
    return chosen


def _progress(run: Run) -> None:
    if run.ok:
        acc = f" max err {run.accuracy['max_error']:.2f} pts" if run.accuracy else ""
        print(
            f"  {run.workload:<12} {run.mode:<4} {run.config:<13} round {run.round}: "
            f"cpu {run.cpu:6.2f}s work {run.work_cpu:6.2f}s profiler {run.profiler_cpu:5.2f}s"
            f"{acc}",
            file=sys.stderr,
            flush=True,
        )
    else:
        print(
            f"  {run.workload} {run.config} round {run.round}: FAILED {run.error}", file=sys.stderr
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short runs, fewer rounds")
    parser.add_argument("--rounds", type=int, help="overhead rounds (default 5, quick 3)")
    parser.add_argument("--accuracy-rounds", type=int, help="(default 3, quick 1)")
    parser.add_argument("--scale", type=float, help="overhead work scale (default 1, quick 0.15)")
    parser.add_argument("--seconds", type=float, help="accuracy run length (default 20, quick 4)")
    parser.add_argument(
        "--configs", default="default", help="overhead configs, comma-separated, or 'all'"
    )
    parser.add_argument("--accuracy-configs", default="default")
    parser.add_argument("--only", choices=("overhead", "accuracy"))
    parser.add_argument("--workloads", help="comma-separated subset of workload names")
    parser.add_argument("--keep", type=Path, help="keep every run's output under this directory")
    parser.add_argument(
        "--otelprof-at", metavar="REV", help="run otelprof as of this git commit (a pinned copy)"
    )
    args = parser.parse_args(argv)
    rounds = args.rounds or (3 if args.quick else 5)
    accuracy_rounds = args.accuracy_rounds or (1 if args.quick else 3)
    scale = args.scale or (0.15 if args.quick else 1.0)
    seconds = args.seconds or (4.0 if args.quick else 20.0)
    wanted = set(args.workloads.split(",")) if args.workloads else None

    configs = configs_module.CONFIGS
    overhead_names = _select(args.configs, configs_module.DEFAULT_OVERHEAD)
    accuracy_names = _select(args.accuracy_configs, configs_module.DEFAULT_ACCURACY)
    missing = {n: r for n in {*overhead_names, *accuracy_names} if (r := configs[n].missing())}
    for name, reason in sorted(missing.items()):
        print(f"{name}: not available ({reason})", file=sys.stderr)
    python = sys.executable
    become_subreaper()
    source = otelprof_source(args.otelprof_at)
    base_env: Dict[str, str] = source.pop("env")
    results: Dict[str, Any] = {
        "machine": machine(),
        "command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])]),
        "settings": {
            "rounds": rounds,
            "accuracy_rounds": accuracy_rounds,
            "scale": scale,
            "seconds": seconds,
        },
        "otelprof": source,
        "missing": missing,
        "overhead": {},
        "accuracy": {},
        "runs": [],
    }
    markdown: List[str] = []
    with CaptureServer() as capture:
        if args.only != "accuracy":
            usable = [configs[n] for n in overhead_names if n not in missing]
            for workload in overhead_workloads(scale):
                if wanted and workload.name not in wanted:
                    continue
                print(f"overhead: {workload.name}, {rounds} rounds", file=sys.stderr)
                runs = interleave(
                    workload, usable, rounds, "cpu", capture, python, _progress, args.keep, base_env
                )
                summary = report.summarize_overhead(runs)
                results["overhead"][workload.name] = summary
                results["runs"].extend(runs_to_json(runs))
                gone = {n: missing[n] for n in overhead_names if n in missing}
                markdown.append(report.overhead_table(workload.name, summary, gone))
        if args.only != "overhead":
            usable = [configs[n] for n in accuracy_names if n not in missing]
            for workload, mode in accuracy_cases(seconds):
                if wanted and workload.name not in wanted:
                    continue
                print(
                    f"accuracy: {workload.name} ({mode}), {accuracy_rounds} rounds", file=sys.stderr
                )
                runs = interleave(
                    workload,
                    usable,
                    accuracy_rounds,
                    mode,
                    capture,
                    python,
                    _progress,
                    args.keep,
                    base_env,
                )
                summary = report.summarize_accuracy(runs)
                results["accuracy"][f"{workload.name}/{mode}"] = summary
                results["runs"].extend(runs_to_json(runs))
                gone = {n: missing[n] for n in accuracy_names if n in missing}
                title = f"{workload.name}: {mode} shares"
                markdown.append(report.accuracy_table(title, summary, gone))
        if capture.errors:
            results["capture_errors"] = capture.errors
    results["machine"]["loadavg_end"] = os.getloadavg()
    results["verdicts"] = verdicts(results)
    markdown.append("#### Targets\n\n" + "\n".join(f"- {v}" for v in results["verdicts"]) + "\n")
    RESULTS_DIR.mkdir(exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = RESULTS_DIR / f"bench-{stamp}{'-quick' if args.quick else ''}.json"
    out.write_text(json.dumps(results, indent=1))
    m = results["machine"]
    dirty = " + uncommitted changes" if source.get("work_tree_dirty") else ""
    print(
        f"### Results ({m['date']}, {m['cpus']} CPUs, {m['cpu_model']}, Python {m['python']}, "
        f"load {m['loadavg_start'][0]:.1f} -> {m['loadavg_end'][0]:.1f}, "
        f"otelprof {source['commit'][:10]}{dirty})\n"
    )
    print("\n".join(markdown))
    print(f"JSON: {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
