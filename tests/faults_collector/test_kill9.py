"""kill -9 mid-write under concurrent load: every request answered OK is delivered."""

from __future__ import annotations

import random
from pathlib import Path

from collector.backends import BackgroundLoop

from .kill9 import kill9_rounds


def test_every_accepted_request_survives_random_kill_9(
    bg_loop: BackgroundLoop, tmp_path: Path
) -> None:
    seed = 7  # kill points are drawn from this; tests/soak/soak_collector_kill9.py varies it
    result = kill9_rounds(
        tmp_path,
        bg_loop,
        kills=3,
        senders=6,
        accepted_between_kills=40,
        rng=random.Random(seed),
    )
    print(f"kill -9 (rng seed {seed}): {result}")
    assert result.unexpected == []
    assert result.kills == 3
    assert result.lost == []
    assert result.delivered_unique >= result.accepted >= 3 * 20
