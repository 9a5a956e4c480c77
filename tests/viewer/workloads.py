"""Profiles with known content for the viewer tests: hand-made, and real ``otelprof run`` runs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict

from tests.profile_factory import (
    SPAN_A,
    SPAN_B,
    START_NS,
    TRACE_A,
    TRACE_B,
    RequestFactory,
    S,
    frame,
    write_pb,
)

APPS = Path(__file__).parent / "apps"
REPOSITORY = Path(__file__).resolve().parents[2]

MAIN = frame("main", 5, "shop/app.py")
HANDLE = frame("handle_request", 25, "shop/app.py")
PARSE = frame("parse_records", 44, "shop/parse.py")
CHECKSUM = frame("checksum", 61, "shop/parse.py", start_line=58)
IDLE = frame("idle_poll", 80, "shop/app.py")
SLEEP = frame("sleep_wait", 90, "shop/app.py")
LATE = frame("late_cleanup", 100, "shop/app.py")
LATE_START_NS = START_NS + 30 * 10**9


def _attrs(thread: str, endpoint: str) -> Dict[str, str]:
    return {"thread.name": thread, "otelprof.endpoint": endpoint}


def write_shop_profiles(path: Path) -> Path:
    """Two services, cpu and wall, two threads, two endpoints, two traces, two time windows.

    cpu: parse_records 600 (checkout, MainThread, GET /checkout, trace A), checksum 300
    (worker-1, GET /search, trace B), idle_poll 100; 30 s later late_cleanup 50 (service search).
    wall additionally has sleep_wait, which never shows in cpu.
    """
    factory = RequestFactory()
    checkout = {"service.name": "checkout", "service.version": "1.4"}
    factory.add_profile(
        ("cpu", "nanoseconds"),
        [
            S(
                [PARSE, HANDLE, MAIN],
                600,
                attributes=_attrs("MainThread", "GET /checkout"),
                link=(TRACE_A, SPAN_A),
            ),
            S(
                [CHECKSUM, HANDLE, MAIN],
                300,
                attributes=_attrs("worker-1", "GET /search"),
                link=(TRACE_B, SPAN_B),
            ),
            S([IDLE, MAIN], 100, attributes=_attrs("MainThread", "")),
        ],
        resource=checkout,
    )
    factory.add_profile(
        ("wall", "nanoseconds"),
        [
            S([PARSE, HANDLE, MAIN], 700, attributes=_attrs("MainThread", "GET /checkout")),
            S([SLEEP, HANDLE, MAIN], 900, attributes=_attrs("worker-1", "GET /search")),
        ],
        resource=checkout,
    )
    factory.add_profile(
        ("cpu", "nanoseconds"),
        [S([LATE, MAIN], 50, attributes=_attrs("MainThread", ""))],
        resource={"service.name": "search"},
        start_unix_nano=LATE_START_NS,
    )
    return write_pb(path, factory.request())


def run_release(version: int, output: Path) -> Path:
    """Run apps/release_app.py under ``otelprof run --output`` as service.version=VERSION."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(
        WORKLOAD_VERSION=str(version),
        OTEL_RESOURCE_ATTRIBUTES=f"service.version={version}",
        PYTHONPATH=str(REPOSITORY),
    )
    command = [
        sys.executable,
        "-m",
        "otelprof",
        "run",
        "--service-name",
        "release-app",
        "--output",
        str(output),
        "--",
        str(APPS / "release_app.py"),
    ]
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    assert list(output.glob("*.otlp.pb")), f"no profiles written: {done.stderr}"
    return output


def merge_dirs(target: Path, *sources: Path) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    for source in sources:
        for path in source.glob("*.otlp.pb"):
            shutil.copy(path, target / f"{source.name}-{path.name}")
    return target
