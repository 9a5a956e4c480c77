"""Run the shop under ``opentelemetry-instrument`` with the profiler, load it, and follow the
slowest span to the function that made it slow (the walkthrough of README.md, automated).

    python examples/slow_endpoint/demo.py [--requests N] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.request
from typing import Any, Dict, List, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))


def start_service(out_dir: str, spans_file: str) -> Tuple[subprocess.Popen[str], str]:
    env = dict(os.environ)
    env.update(
        OTEL_SERVICE_NAME="shop",
        OTEL_TRACES_EXPORTER="none",  # spans go to SPANS_FILE (or point this at your collector)
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
        OTEL_PYTHON_PROFILER_ENABLED="true",
        OTEL_PYTHON_PROFILER_OUTPUT_DIR=out_dir,
        OTEL_PYTHON_PROFILER_EXPORT_INTERVAL="2",
        SPANS_FILE=spans_file,
    )
    instrument = shutil.which("opentelemetry-instrument", path=os.path.dirname(sys.executable))
    command = [instrument or "opentelemetry-instrument", sys.executable, "app.py"]
    process = subprocess.Popen(command, cwd=HERE, env=env, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.startswith("listening on "):
        process.kill()
        raise SystemExit(f"the service did not start (said {line!r})")
    return process, line.split()[-1]


def load(base_url: str, requests: int) -> None:
    for number in range(requests):
        path = "/slow" if number % 5 == 0 else f"/fast/{number}"
        with urllib.request.urlopen(base_url + path, timeout=30) as response:
            response.read()


def read_spans(path: str) -> List[Dict[str, Any]]:
    with open(path, encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--out", help="directory for the .otlp.pb files (default: a temp dir)")
    args = parser.parse_args(argv)
    out_dir = args.out or tempfile.mkdtemp(prefix="shop-profiles-")
    os.makedirs(out_dir, exist_ok=True)
    spans_file = os.path.join(out_dir, "spans.jsonl")

    process, base_url = start_service(out_dir, spans_file)
    try:
        load(base_url, args.requests)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)

    roots = [s for s in read_spans(spans_file) if not s["parent_id"] or s["parent_is_remote"]]
    slowest = max(roots, key=lambda s: s["duration_ns"])
    print(f"slowest request: {slowest['name']}  {slowest['duration_ns'] / 1e6:.1f} ms")
    print(f"  trace_id {slowest['trace_id']}  span_id {slowest['span_id']}")
    for key, value in sorted(slowest["attributes"].items()):
        if key.startswith("otelprof."):
            print(f"  {key} = {value}")
    top = [sys.executable, "-m", "otelprof", "top", out_dir, "--limit", "5"]
    print("\n$ otelprof top", out_dir, "--trace-id", slowest["trace_id"], "--limit 5")
    subprocess.run([*top, "--trace-id", slowest["trace_id"]], check=False)
    print(f"\n$ otelprof top {out_dir} --endpoint 'GET /slow' --limit 5")
    subprocess.run([*top, "--endpoint", "GET /slow"], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
