"""Restart with a backlog: what a killed service left on disk is sent first, all of it."""

from __future__ import annotations

from pathlib import Path

from collector.backends import BackgroundLoop

from .backlog import run_backlog


def test_a_backlog_left_by_kill_9_is_delivered_after_restart(
    bg_loop: BackgroundLoop, tmp_path: Path
) -> None:
    result = run_backlog(tmp_path, bg_loop, requests=300)
    print(f"backlog: {result}")
    assert result.log_line_found
    assert result.lost == 0
    assert result.delivered_unique == 300
