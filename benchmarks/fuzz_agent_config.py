"""Coverage-guided fuzzing of the agent's configuration parsing with atheris, for a fixed budget.

Targets (one byte of each input picks one; see ``tests/faults/config_oracle.py``):
``resolve_config`` from environment dicts, ``resolve_config`` with explicit arguments,
``parse_headers``, and ``otelprof run``'s option splitting and parsing (exec replaced by a
sentinel). Invariant: the environment and header text never raise; explicit arguments raise
only ``ConfigError``; ``otelprof run`` ends in ``SystemExit(0|2)``, 127 or the exec; whatever
resolves is a usable configuration.

    pip install -e '.[fuzz]'
    .venv/bin/python benchmarks/fuzz_agent_config.py --seconds 300

libFuzzer stops at the first failing input; this script then records it (decoded, as a JSON
case ready for ``tests/faults/corpus/``), adds its signature to the known ones so the next run
looks for a *different* bug, and restarts with the rest of the budget. It reports the inputs
tried, executions per second, coverage, and every distinct failure found.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make `tests` importable
    sys.path.insert(0, str(ROOT))

KNOWN_ENV = "FUZZ_KNOWN_SIGNATURES"


def worker(libfuzzer_args: List[str]) -> None:
    """Inside one libFuzzer process: instrument otelprof, then fuzz the oracle's check."""
    import atheris  # type: ignore[import-untyped]

    with atheris.instrument_imports(include=["otelprof"]):
        # Imported here to be instrumented: their branches are the coverage being maximised.
        import otelprof.cli
        import otelprof.config  # noqa: F401
    from tests.faults import config_oracle

    known = set(json.loads(pathlib.Path(os.environ[KNOWN_ENV]).read_text()))

    def test_one_input(data: bytes) -> None:
        case = config_oracle.decode(data)
        problem = config_oracle.problem_of(case)
        if problem is not None and problem[0] not in known:
            raise config_oracle.InvariantViolation(
                f"{problem[0]} | {problem[1]} | case: {config_oracle.to_json(case)}"
            )

    atheris.Setup([sys.argv[0], *libfuzzer_args], test_one_input)
    atheris.Fuzz()


_RUNS = re.compile(
    r"#(\d+)\s+(?:INITED|NEW|REDUCE|pulse|DONE|RELOAD)\s.*?cov: (\d+).*?exec/s: (\d+)"
)
_DONE = re.compile(r"Done (\d+) runs in (\d+) second")


def run_worker(
    seconds: int, corpus: pathlib.Path, artifacts: pathlib.Path, known_file: pathlib.Path
) -> Dict[str, Any]:
    """One libFuzzer process; returns runs, coverage and the failing input, if any."""
    before = set(artifacts.iterdir())
    args = [
        sys.executable,
        str(pathlib.Path(__file__).resolve()),
        "--worker",
        f"-max_total_time={seconds}",
        "-timeout=10",  # an input taking 10 s is a hang: reported like a crash
        "-rss_limit_mb=2048",
        "-max_len=512",
        "-print_final_stats=1",
        f"-artifact_prefix={artifacts}/",
        str(corpus),
    ]
    env = dict(os.environ, **{KNOWN_ENV: str(known_file)})
    env["PYTHONPATH"] = str(ROOT)
    started = time.monotonic()
    result = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - started
    log = result.stderr + "\n" + result.stdout  # atheris prints the exception on stdout
    runs = 0
    coverage = 0
    for match in _RUNS.finditer(log):
        runs = max(runs, int(match.group(1)))
        coverage = max(coverage, int(match.group(2)))
    done = _DONE.search(log)
    if done:
        runs = int(done.group(1))
    new = sorted(set(artifacts.iterdir()) - before)
    failure = None
    for line in log.splitlines():
        if "InvariantViolation:" in line or "Uncaught Python exception" in line:
            failure = line
    violation = re.search(r"InvariantViolation: (.*?) \| (.*?) \| case: (.*)", log)
    return {
        "runs": runs,
        "coverage": coverage,
        "seconds": elapsed,
        "returncode": result.returncode,
        "artifact": str(new[0]) if new else None,
        "signature": violation.group(1) if violation else None,
        "detail": violation.group(2) if violation else failure,
        "case": json.loads(violation.group(3)) if violation else None,
        "log_tail": "\n".join(log.splitlines()[-25:]),
    }


def seed_corpus(corpus: pathlib.Path) -> int:
    """Start from the regression corpus (tests/faults/corpus), spelled as fuzzer inputs."""
    from tests.faults import config_oracle

    seeded = 0
    for path in sorted((ROOT / "tests" / "faults" / "corpus").glob("*.json")):
        case = json.loads(path.read_text())["case"]
        try:
            data = config_oracle.encode(case)
        except ValueError:
            continue
        (corpus / f"seed-{path.stem}").write_bytes(data)
        seeded += 1
    return seeded


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        worker(argv[1:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=300, help="total budget (default 300)")
    parser.add_argument("--corpus", help="libFuzzer corpus directory (default: a temporary one)")
    parser.add_argument("--out", default="benchmarks/results/fuzz_agent_config", help="reports")
    parser.add_argument("--max-failures", type=int, default=30)
    args = parser.parse_args(argv)

    try:
        import atheris  # noqa: F401
    except ImportError:
        sys.stderr.write("atheris is not installed: pip install -e '.[fuzz]'\n")
        return 2

    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        corpus = pathlib.Path(args.corpus or pathlib.Path(tmp) / "corpus")
        corpus.mkdir(parents=True, exist_ok=True)
        seeded = seed_corpus(corpus)
        artifacts = pathlib.Path(tmp) / "artifacts"
        artifacts.mkdir()
        known_file = pathlib.Path(tmp) / "known.json"
        known: List[str] = []
        failures: List[Dict[str, Any]] = []
        total_runs = 0
        coverage = 0
        deadline = time.monotonic() + args.seconds
        while (remaining := int(deadline - time.monotonic())) > 0:
            known_file.write_text(json.dumps(known))
            outcome = run_worker(remaining, corpus, artifacts, known_file)
            total_runs += outcome["runs"]
            coverage = max(coverage, outcome["coverage"])
            if outcome["returncode"] == 0:
                break  # the budget ran out with no new failure
            if outcome["signature"] is None:
                # A crash outside the oracle (timeout, out of memory, the interpreter itself).
                failures.append({"signature": "libFuzzer: " + str(outcome["detail"]), **outcome})
                print(outcome["log_tail"], file=sys.stderr)
                break
            known.append(outcome["signature"])
            failures.append(outcome)
            print(f"found: {outcome['signature']}: {outcome['detail']}", flush=True)
            if len(failures) >= args.max_failures:
                break
        corpus_size = len(list(corpus.iterdir()))

    report = {
        "budget_seconds": args.seconds,
        "inputs_tried": total_runs,
        "executions_per_second": round(total_runs / max(args.seconds, 1)),
        "coverage_edges": coverage,
        "seed_inputs": seeded,
        "corpus_inputs": corpus_size,
        "distinct_failures": len(failures),
        "failures": [
            {"signature": f["signature"], "detail": f["detail"], "case": f["case"]}
            for f in failures
        ],
    }
    (out / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=True) + "\n")
    print(
        f"\n{total_runs} inputs in {args.seconds} s ({report['executions_per_second']}/s), "
        f"coverage {coverage} edges, corpus {corpus_size} inputs ({seeded} seeds), "
        f"{len(failures)} distinct failure(s)"
    )
    for failure in failures:
        print(f"  - {failure['signature']}")
    print(f"report: {out / 'report.json'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
