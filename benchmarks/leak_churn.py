"""What the leak detector reports on a thread-per-request server, with and without a leak.

    python benchmarks/leak_churn.py              # 4 leak-free runs and 3 with a leak, 60 s each
    python benchmarks/leak_churn.py --windows 3 --runs 2 --leaky-runs 1 --seconds 30

Each run is a fresh process: a plain ``http.server.ThreadingHTTPServer`` (one thread per
request, a JSON body, a ``Date`` header) under ``otelprof.start()`` with memory windows of 1 s
every 3 s (about 20 a minute; the governor's budget raised so that it admits them all), served
by a load generator of 4 client threads in its own process. With ``--leak``, every request
also keeps a 2 KiB ``bytearray`` for good. The report lists, per run, the functions named in
the agent's "possible memory leak" lines and their rates. A leak-free run should name nothing;
a leaky run should name ``LeakyHandler.do_GET`` and nothing else. Never part of CI.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import List, Tuple

LEAK_LINE = re.compile(r"possible memory leak in (.+?) \((.+?)\): .* at ([0-9.]+ [KMG]?i?B/s)")
CLIENT = """
import sys, threading, time, urllib.request
port, seconds = int(sys.argv[1]), float(sys.argv[2])
end = time.monotonic() + seconds
def run():
    while time.monotonic() < end:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/item").read()
threads = [threading.Thread(target=run) for _ in range(4)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
"""
KEPT: List[bytearray] = []


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"path": self.path, "items": list(range(50))}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class LeakyHandler(Handler):
    def do_GET(self) -> None:
        KEPT.append(bytearray(2048))  # the bug: every request keeps 2 KiB
        super().do_GET()


def serve(seconds: float, leak: bool, output: str) -> None:
    """One run, in this process: the server, the agent, and the load generator as a child."""
    import otelprof

    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    server = ThreadingHTTPServer(("127.0.0.1", 0), LeakyHandler if leak else Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    otelprof.start(
        output_dir=output,
        memory_window_seconds=1.0,
        memory_interval_seconds=3.0,
        precise_window_seconds=0,
        overhead_budget=0.9,
    )
    port = server.server_address[1]
    subprocess.run([sys.executable, "-I", "-c", CLIENT, str(port), str(seconds)], check=True)
    otelprof.stop()
    server.shutdown()


def one_run(seconds: float, leak: bool, windows: int) -> List[Tuple[str, str]]:
    env = dict(os.environ, OTEL_PYTHON_PROFILER_LEAK_MIN_WINDOWS=str(windows))
    with tempfile.TemporaryDirectory() as output:
        command = [sys.executable, __file__, "--serve", str(seconds), "--output", output]
        if leak:
            command.append("--leak")
        result = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return [(m.group(1), m.group(3)) for m in LEAK_LINE.finditer(result.stderr)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=4, help="leak-free runs")
    parser.add_argument("--leaky-runs", type=int, default=3, help="runs with a leak")
    parser.add_argument("--seconds", type=float, default=60.0, help="load per run")
    parser.add_argument("--windows", type=int, default=5, help="LEAK_MIN_WINDOWS")
    parser.add_argument("--serve", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--leak", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        serve(args.serve, args.leak, args.output)
        return
    # Interleaved, so that slow drifts in the machine's load fall on both kinds alike.
    plan: List[bool] = []
    free, leaky = args.runs, args.leaky_runs
    while free or leaky:
        if free:
            plan.append(False)
            free -= 1
        if leaky:
            plan.append(True)
            leaky -= 1
    print("| run | leak | windows | named (rate) |\n|---|---|---|---|")
    for number, leak in enumerate(plan, 1):
        named = one_run(args.seconds, leak, args.windows)
        text = ", ".join(f"{function} ({rate})" for function, rate in named) or "nothing"
        print(f"| {number} | {'2 KiB/request' if leak else 'none'} | {args.windows} | {text} |")
        sys.stdout.flush()


if __name__ == "__main__":
    if __package__ in (None, ""):
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main()
