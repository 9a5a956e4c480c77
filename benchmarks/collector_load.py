"""Open-loop load on collector_processor over loopback, at increasing rates until it refuses.

Each step offers a fixed rate of agent-like export requests (benchmarks/collector/payloads.py,
about 100 KB each) for a fixed time, whatever the service answers (open loop: a slow answer does
not slow the offer; at most ``--max-outstanding`` calls are in flight, beyond that a due request
is counted as "not sent"). Rates double until the service refuses (or cannot keep up), then one
overload step at twice that rate shows how it degrades. The service must refuse with a retryable
status (UNAVAILABLE + RetryInfo, from ``memory_limiter`` or a full queue), never crash, and its
memory must stay bounded.

    .venv/bin/python benchmarks/collector_load.py                    # gRPC, 50 req/s doubling
    .venv/bin/python benchmarks/collector_load.py --step-seconds 20 --start-rate 25
    .venv/bin/python benchmarks/collector_load.py --transport http

Set-up: service -> memory_limiter (limit 128 MiB, spike 32 MiB, queue limit 16 MiB) ->
resource -> otlp_grpc exporter (in-memory queue of 1000) -> a null backend in its own process.
Never part of CI.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import grpc
import yaml

from benchmarks.collector.payloads import agent_requests
from benchmarks.collector.subjects import RunningSubject, free_port
from benchmarks.collector.wire import EXPORT_METHOD, NullBackend

LIMIT_MIB = 128
SPIKE_MIB = 32
QUEUE_LIMIT_MIB = 16
MIB = 1024 * 1024
OK = "OK"
MAX_SUSTAINED_P99_SECONDS = 1.0


@dataclass
class Step:
    rate: float
    seconds: float
    outcomes: Counter[str] = field(default_factory=Counter)
    ok_latencies: List[float] = field(default_factory=list)
    not_sent: int = 0
    retry_info_missing: int = 0
    rss_mib: float = 0.0
    peak_rss_mib: float = 0.0

    @property
    def offered(self) -> int:
        return sum(self.outcomes.values()) + self.not_sent

    @property
    def ok_rate(self) -> float:
        return self.outcomes[OK] / self.seconds

    def refused_share(self) -> float:
        return (self.offered - self.outcomes[OK]) / max(self.offered, 1)

    def percentile(self, share: float) -> float:
        if not self.ok_latencies:
            return float("nan")
        ordered = sorted(self.ok_latencies)
        return ordered[min(int(share * len(ordered)), len(ordered) - 1)]


def service_config(grpc_port: int, http_port: int, backend: str) -> Dict[str, Any]:
    return {
        "receivers": {
            "otlp": {
                "protocols": {
                    "grpc": {"endpoint": f"127.0.0.1:{grpc_port}", "max_recv_msg_size_mib": 16},
                    "http": {"endpoint": f"127.0.0.1:{http_port}"},
                }
            }
        },
        "processors": {
            "memory_limiter": {
                "check_interval": "100ms",
                "limit_mib": LIMIT_MIB,
                "spike_limit_mib": SPIKE_MIB,
                # The in-memory queue is the other place requests pile up (exporters behind).
                "queue_limit_mib": QUEUE_LIMIT_MIB,
            },
            "resource": {
                "attributes": [
                    {"key": "deployment.environment", "value": "load", "action": "upsert"}
                ]
            },
        },
        "exporters": {
            "otlp_grpc": {
                "endpoint": backend,
                "tls": {"insecure": True},
                "compression": "none",
                "sending_queue": {"queue_size": 1000},
            }
        },
        "service": {
            "telemetry": {"logs": {"level": "warn"}},
            "pipelines": {
                "profiles": {
                    "receivers": ["otlp"],
                    "processors": ["memory_limiter", "resource"],
                    "exporters": ["otlp_grpc"],
                }
            },
        },
    }


def _has_retry_info(trailing: Any) -> bool:
    return any(key == "grpc-status-details-bin" for key, _ in trailing or ())


class Sender:
    """One open-loop step over gRPC (grpc.aio) or HTTP (aiohttp)."""

    def __init__(self, transport: str, grpc_port: int, http_port: int) -> None:
        self.transport = transport
        self.grpc_target = f"127.0.0.1:{grpc_port}"
        self.http_url = f"http://127.0.0.1:{http_port}/v1development/profiles"
        self._channels: List[Any] = []
        self._session: Any = None

    async def open(self, channels: int) -> None:
        if self.transport == "grpc":
            options = [("grpc.max_send_message_length", 64 * MIB)]
            self._channels = [
                grpc.aio.insecure_channel(self.grpc_target, options=options)
                for _ in range(channels)
            ]
        else:
            import aiohttp

            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=channels * 4)
            )

    async def close(self) -> None:
        for channel in self._channels:
            await channel.close()
        if self._session is not None:
            await self._session.close()

    async def send(self, index: int, payload: bytes, step: Step) -> None:
        started = time.perf_counter()
        outcome = OK
        if self.transport == "grpc":
            channel = self._channels[index % len(self._channels)]
            call = channel.unary_unary(EXPORT_METHOD)
            try:
                await call(payload, timeout=30)
            except grpc.aio.AioRpcError as error:
                outcome = error.code().name
                if error.code() == grpc.StatusCode.UNAVAILABLE and not _has_retry_info(
                    error.trailing_metadata()
                ):
                    step.retry_info_missing += 1
        else:
            headers = {"Content-Type": "application/x-protobuf"}
            try:
                async with self._session.post(self.http_url, data=payload, headers=headers) as r:
                    await r.read()
                    if r.status != 200:
                        outcome = f"HTTP_{r.status}"
                        if r.status == 503 and "Retry-After" not in r.headers:
                            step.retry_info_missing += 1
            except Exception as exc:  # connection trouble is an outcome to report
                outcome = type(exc).__name__
        step.outcomes[outcome] += 1
        if outcome == OK:
            step.ok_latencies.append(time.perf_counter() - started)


async def run_step(
    sender: Sender, payloads: List[bytes], rate: float, seconds: float, max_outstanding: int
) -> Step:
    step = Step(rate, seconds)
    outstanding: set[asyncio.Task[None]] = set()
    start = time.perf_counter()
    total = int(rate * seconds)
    for index in range(total):
        due = start + index / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)  # the open-loop schedule, not synchronisation
        if len(outstanding) >= max_outstanding:
            step.not_sent += 1
            continue
        task = asyncio.ensure_future(sender.send(index, payloads[index % len(payloads)], step))
        outstanding.add(task)
        task.add_done_callback(outstanding.discard)
    if outstanding:
        await asyncio.wait(outstanding, timeout=60)
    return step


def proc_rss_mib(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def saturated(step: Step) -> bool:
    """Not sustained: answers other than OK, under 95% of the offer done, or p99 over 1 s."""
    return (
        step.refused_share() > 0.01
        or step.ok_rate < 0.95 * step.rate
        or step.percentile(0.99) > MAX_SUSTAINED_P99_SECONDS
    )


async def drive(args: argparse.Namespace, pid: int, grpc_port: int, http_port: int) -> List[Step]:
    payloads = agent_requests(args.payloads)
    print(
        f"payload: {statistics.mean(map(len, payloads)) / 1024:.0f} KB mean, "
        f"{len(payloads)} distinct; transport {args.transport}; {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f} before the run"
    )
    sender = Sender(args.transport, grpc_port, http_port)
    await sender.open(args.channels)
    steps: List[Step] = []
    rate = args.start_rate
    overload_at: Optional[float] = None
    try:
        for _ in range(args.max_steps):
            step = await run_step(sender, payloads, rate, args.step_seconds, args.max_outstanding)
            step.rss_mib = proc_rss_mib(pid, "VmRSS")
            step.peak_rss_mib = proc_rss_mib(pid, "VmHWM")
            steps.append(step)
            report_step(step)
            if overload_at is not None:
                break
            if saturated(step):
                overload_at = rate * 2  # one step past the knee, to see how it degrades
                rate = overload_at
            else:
                rate *= 2
    finally:
        await sender.close()
    return steps


def report_step(step: Step) -> None:
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(step.outcomes.items()) if k != OK)
    print(
        f"{step.rate:5.0f}/s offered {step.ok_rate:6.1f}/s OK  "
        f"p50 {step.percentile(0.5) * 1000:6.0f} ms  p99 {step.percentile(0.99) * 1000:6.0f} ms  "
        f"RSS {step.rss_mib:4.0f} MiB (peak {step.peak_rss_mib:4.0f})  "
        f"not sent (client cap) {step.not_sent:5d}  load {os.getloadavg()[0]:4.1f}"
        + (f"  [{outcomes}]" if outcomes else ""),
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--transport", choices=("grpc", "http"), default="grpc")
    parser.add_argument("--start-rate", type=float, default=50.0, help="requests per second")
    parser.add_argument("--step-seconds", type=float, default=10.0)
    parser.add_argument("--max-steps", type=int, default=8)
    parser.add_argument("--max-outstanding", type=int, default=512)
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--payloads", type=int, default=16)
    args = parser.parse_args()
    backend = NullBackend(free_port())
    grpc_port, http_port = free_port(), free_port()
    with tempfile.TemporaryDirectory(prefix="collector-load-") as name:
        config_path = Path(name) / "collector.yaml"
        config_path.write_text(
            yaml.safe_dump(service_config(grpc_port, http_port, backend.endpoint))
        )
        command = [sys.executable, "-m", "collector_processor", "--config", str(config_path)]
        service = RunningSubject(command, Path(name) / "collector.log", grpc_port)
        try:
            steps = asyncio.run(drive(args, service.process.pid, grpc_port, http_port))
            alive = service.process.poll() is None
            log = (Path(name) / "collector.log").read_text(errors="replace")
        finally:
            service.stop()
            backend.close()
    sustained = [s for s in steps if not saturated(s)]
    best = max(sustained, key=lambda s: s.rate) if sustained else None
    refusals = sum(s.offered - s.outcomes[OK] - s.not_sent for s in steps)
    retryable = sum(s.outcomes["UNAVAILABLE"] + s.outcomes["HTTP_503"] for s in steps)
    print()
    if best is not None:
        print(
            f"sustained: {best.ok_rate:.0f} req/s, p50 {best.percentile(0.5) * 1000:.1f} ms, "
            f"p99 {best.percentile(0.99) * 1000:.1f} ms, RSS {best.rss_mib:.0f} MiB"
        )
    print(
        f"refused answers: {refusals} ({retryable} retryable, "
        f"{sum(s.retry_info_missing for s in steps)} without a retry delay); "
        f"peak RSS {max(s.peak_rss_mib for s in steps):.0f} MiB "
        f"(memory_limiter: limit {LIMIT_MIB} MiB, soft {LIMIT_MIB - SPIKE_MIB} MiB); "
        f"service {'still running' if alive else 'DIED'}"
    )
    errors = [line for line in log.splitlines() if " ERROR " in line or "Traceback" in line]
    print(
        f"collector log: {len(errors)} error line(s)" + (f", first: {errors[0]}" if errors else "")
    )
    return 0 if alive and refusals == retryable and not errors else 1


if __name__ == "__main__":
    sys.exit(main())
