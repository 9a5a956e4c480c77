"""Run the real agent (`otelprof run`) on the traced workload and check what it produced."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Set, Tuple

from .otelcol import REPO_ROOT
from .resolve import ResolvedProfile

WORKLOAD = Path(__file__).with_name("workload_app.py")
AGENT_SERVICE = "interop-shop"
HOT_FUNCTION = "interop_hot_loop"
WORKER_THREAD = "interop-worker"


def run_agent(endpoint: str, protocol: str, workdir: Path) -> List[Dict[str, str]]:
    """Profile the workload, exporting every second to `endpoint`; returns the workload's spans."""
    spans_path = workdir / "spans.json"
    env = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_")}
    env["OTEL_RESOURCE_ATTRIBUTES"] = "deployment.environment.name=agent-side"
    command = [
        sys.executable, "-m", "otelprof", "run",
        "--endpoint", endpoint,
        "--protocol", protocol,
        "--service-name", AGENT_SERVICE,
        "--export-interval", "1",
        "--", sys.executable, str(WORKLOAD), str(spans_path),
    ]  # fmt: skip
    completed = subprocess.run(
        command, capture_output=True, text=True, timeout=120, env=env, cwd=REPO_ROOT, check=False
    )
    assert completed.returncode == 0, completed.stderr
    # The agent logs refused or failed exports instead of failing the program: catch them here.
    assert "refused" not in completed.stderr and "failed" not in completed.stderr, completed.stderr
    spans: List[Dict[str, str]] = json.loads(spans_path.read_text())
    return spans


def agent_profiles(profiles: List[ResolvedProfile]) -> List[ResolvedProfile]:
    return [p for p in profiles if p.resource_attributes.get("service.name") == AGENT_SERVICE]


def assert_looks_like_the_workload(profiles: List[ResolvedProfile], environment: str) -> None:
    """The agent's cpu and wall profiles saw the workload's hot function in both threads."""
    mine = agent_profiles(profiles)
    assert {p.sample_type for p in mine} >= {("cpu", "nanoseconds"), ("wall", "nanoseconds")}
    threads: Set[str] = set()
    hot_threads: Set[str] = set()
    for profile in mine:
        assert profile.period_type == profile.sample_type and profile.period > 0
        assert profile.resource_attributes["deployment.environment.name"] == environment
        for sample, _ in profile.samples:
            stack, _, _, attributes, _ = sample
            thread = str(dict(attributes).get("thread.name"))
            threads.add(thread)
            assert all(
                frame[4] == frozenset({("profile.frame.type", "cpython")}) for frame in stack
            )
            if any(frame[0] == HOT_FUNCTION for frame in stack):
                hot_threads.add(thread)
    assert {"MainThread", WORKER_THREAD} <= hot_threads, (threads, hot_threads)


def assert_links_from_the_workload(
    profiles: List[ResolvedProfile], spans: List[Dict[str, str]]
) -> None:
    """Main-thread samples link to the workload's own spans; the span-less worker links nowhere."""
    ran = {(span["trace_id"], span["span_id"]) for span in spans}
    linked: Set[Tuple[str, str]] = set()
    for profile in agent_profiles(profiles):
        for (_, _, _, attributes, link), _ in profile.samples:
            if link is None:
                continue
            assert dict(attributes).get("thread.name") != WORKER_THREAD, link
            linked.add(link)
    assert linked, "no sample carries a span link"
    assert linked <= ran, linked - ran
