"""Fixtures for the viewer tests: real release runs (made once) and one headless Chromium."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Iterator

import pytest

from tests.viewer.cdp import Browser
from tests.viewer.workloads import merge_dirs, run_release, write_shop_profiles


@pytest.fixture(scope="session")
def release_runs(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Path]:
    """v1 and v2 of apps/release_app.py (v2: checksum does 8x the work), both in one dir, and
    a second run of v1 (same work: only sampling noise differs)."""
    root = tmp_path_factory.mktemp("release")
    v1 = run_release(1, root / "v1")
    v2 = run_release(2, root / "v2")
    again = run_release(1, root / "v1-again")
    return {"v1": v1, "v2": v2, "v1_again": again, "both": merge_dirs(root / "both", v1, v2)}


@pytest.fixture
def shop_profiles(tmp_path: Path) -> Path:
    return write_shop_profiles(tmp_path / "shop.otlp.pb")


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    chromium = Browser()
    try:
        yield chromium
    finally:
        chromium.close()
