"""`make demo`: profile the example shop end to end and show where its time goes.

The chain is the one a user deploys:

    shop (Flask + opentelemetry-instrument, otelprof agent, OTEL_PYTHON_PROFILER_ENABLED=true)
      --OTLP/gRPC-->  otelprof-collector (resource processor adds deployment.environment=demo)
      --file exporter-->  demo-output/collector/profiles.jsonl   -->  otelprof top

Everything binds to 127.0.0.1 on free ports and stops by itself. DEMO_SECONDS sets the load
duration (default 20).
"""

from __future__ import annotations

import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from typing import List

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
OUT = ROOT / "demo-output"
BIN = pathlib.Path(sys.executable).parent
sys.path.insert(0, str(HERE))

from load import generate_load  # noqa: E402

from otelprof.reader import load_profiles  # noqa: E402
from otelprof.records import ENDPOINT_ATTRIBUTE  # noqa: E402
from otelprof.top import format_top  # noqa: E402

COLLECTOR_CONFIG = """\
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:{grpc_port}
processors:
  resource:
    attributes:
      - {{key: deployment.environment, value: demo, action: upsert}}
  resourcedetection:
    detectors: [system]
exporters:
  file:
    path: {file_path}
service:
  pipelines:
    profiles:
      receivers: [otlp]
      processors: [resourcedetection, resource]
      exporters: [file]
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(what: str, check, process: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"demo: {what} exited early (code {process.returncode})")
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"demo: {what} did not become ready in {timeout:.0f}s")


def port_open(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1):
        return True


def http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as response:
        return bool(response.status == 200)


def stop(process: subprocess.Popen, what: str, timeout: float = 30.0) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            print(f"demo: {what} did not stop in {timeout:.0f}s; killing it")
            process.kill()
            process.wait()


def banner(text: str) -> None:
    print(f"\n=== {text} " + "=" * max(0, 90 - len(text)))


def main() -> int:
    seconds = float(os.environ.get("DEMO_SECONDS", "20"))
    shutil.rmtree(OUT, ignore_errors=True)
    (OUT / "collector").mkdir(parents=True)
    profiles_file = OUT / "collector" / "profiles.jsonl"
    grpc_port, shop_port = free_port(), free_port()
    config = OUT / "collector.yaml"
    config.write_text(COLLECTOR_CONFIG.format(grpc_port=grpc_port, file_path=profiles_file))

    processes: List[subprocess.Popen] = []
    logs = {name: open(OUT / f"{name}.log", "w") for name in ("collector", "shop")}  # noqa: SIM115
    try:
        banner("1. otelprof-collector: OTLP in, resource attributes added, file out")
        collector = subprocess.Popen(
            [sys.executable, "-m", "collector_processor", "--config", str(config)],
            stdout=logs["collector"],
            stderr=subprocess.STDOUT,
        )
        processes.append(collector)
        wait_for("the collector", lambda: port_open(grpc_port), collector)
        print(f"listening on 127.0.0.1:{grpc_port} (config: {config})")

        banner("2. the shop under opentelemetry-instrument, profiler on (no code change)")
        env = dict(os.environ)
        env.update(
            OTEL_SERVICE_NAME="demo-shop",
            OTEL_RESOURCE_ATTRIBUTES="service.version=1.0.0",
            OTEL_TRACES_EXPORTER="none",
            OTEL_METRICS_EXPORTER="none",
            OTEL_LOGS_EXPORTER="none",
            OTEL_PYTHON_PROFILER_ENABLED="true",
            OTEL_EXPORTER_OTLP_PROFILES_ENDPOINT=f"http://127.0.0.1:{grpc_port}",
            OTEL_EXPORTER_OTLP_PROFILES_PROTOCOL="grpc",
            OTEL_PYTHON_PROFILER_EXPORT_INTERVAL="5",
        )
        shop = subprocess.Popen(
            [
                str(BIN / "opentelemetry-instrument"),
                sys.executable,
                str(HERE / "shop.py"),
                "--port",
                str(shop_port),
            ],
            env=env,
            stdout=logs["shop"],
            stderr=subprocess.STDOUT,
        )
        processes.append(shop)
        base = f"http://127.0.0.1:{shop_port}"
        wait_for("the shop", lambda: http_ok(f"{base}/health"), shop)

        banner(f"3. load: 4 clients for {seconds:.0f}s")
        counts = generate_load(base, seconds)
        print("requests:", ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))

        banner("4. stop the shop (the agent flushes), then the collector (it drains)")
        stop(shop, "the shop")
        stop(collector, "the collector")
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
        for log in logs.values():
            log.close()

    result = load_profiles([profiles_file])
    for error in result.errors:
        print(f"demo: {error}")
    if not result.records:
        print(f"demo: no profiles arrived; see {OUT}/shop.log and {OUT}/collector.log")
        return 1
    resource = result.records[0].resource
    banner("5. what arrived")
    print(
        f"{len(result.records)} profiles from service.name={resource.get('service.name')} "
        f"service.version={resource.get('service.version')}; added by the collector: "
        f"deployment.environment={resource.get('deployment.environment')} "
        f"host.name={resource.get('host.name')}"
    )
    banner("6. hottest functions (otelprof top)")
    print(format_top(result.records, types=["cpu", "wall"], limit=12))
    endpoints = sorted(
        {
            str(s.attributes[ENDPOINT_ATTRIBUTE])
            for r in result.records
            for s in r.samples
            if ENDPOINT_ATTRIBUTE in s.attributes
        }
    )
    for endpoint in endpoints[:5]:
        banner(f"hottest functions in {endpoint}")
        print(format_top(result.records, types=["cpu"], limit=6, endpoint=endpoint))
    banner("files")
    print(f"collector output (OTLP JSON, one request per line): {profiles_file}")
    print(f"logs: {OUT}/shop.log, {OUT}/collector.log")
    print(f"try:  {BIN / 'otelprof'} top {profiles_file} --sort self-wall")
    return 0


if __name__ == "__main__":
    sys.exit(main())
