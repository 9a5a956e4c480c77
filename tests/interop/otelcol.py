"""Locate or build (scripts/build_otelcol.sh, cached) the real OpenTelemetry Collector."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "scripts" / "build_otelcol.sh"
FEATURE_GATES = "--feature-gates=service.profilesSupport"
# A cold build downloads the Collector's modules and compiles them: minutes on two cores.
BUILD_TIMEOUT_SECONDS = 1500


class CollectorError(RuntimeError):
    """The Collector could not be built or did not come up."""


def build_otelcol(log_path: Path) -> Path:
    """Run scripts/build_otelcol.sh (a no-op once cached) and return the binary it prints."""
    with log_path.open("wb") as log:
        completed = subprocess.run(
            ["bash", str(BUILD_SCRIPT)],
            stdout=subprocess.PIPE,
            stderr=log,
            timeout=BUILD_TIMEOUT_SECONDS,
            check=False,
        )
    lines = completed.stdout.decode().strip().splitlines()
    if completed.returncode != 0 or not lines:
        tail = log_path.read_text(errors="replace")[-4000:]
        raise CollectorError(f"{BUILD_SCRIPT} failed ({completed.returncode}):\n{tail}")
    binary = Path(lines[-1])
    if not os.access(binary, os.X_OK):
        raise CollectorError(f"{BUILD_SCRIPT} printed {binary}, which is not executable")
    return binary
