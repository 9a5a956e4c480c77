"""Soak: restart collector_processor with a large persistent backlog (default 10k requests);
report start-up time, memory while draining, drain rate, loss and duplicates.

    .venv/bin/python tests/soak/soak_collector_backlog.py --requests 10000
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from collector.backends import BackgroundLoop
from faults_collector.backlog import run_backlog


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--senders", type=int, default=8)
    args = parser.parse_args()
    loop = BackgroundLoop()
    try:
        with tempfile.TemporaryDirectory(prefix="soak-backlog-", dir="/var/tmp") as directory:
            result = run_backlog(
                Path(directory), loop, requests=args.requests, senders=args.senders
            )
    finally:
        loop.close()
    rss = [kib // 1024 for kib in result.rss_kib_samples] or [0]
    fill_rate = result.requests / result.fill_seconds
    drain_rate = result.requests / result.drain_seconds
    print(f"backlog requests    {result.requests} ({result.queue_megabytes:.1f} MB on disk)")
    print(f"filled in           {result.fill_seconds:.1f} s ({fill_rate:.0f} req/s accepted)")
    print(f"start-up to healthy {result.startup_seconds:.2f} s")
    print(f"drained in          {result.drain_seconds:.1f} s ({drain_rate:.0f} req/s)")
    print(f"RSS while draining  first {rss[0]} MiB, peak {max(rss)} MiB, last {rss[-1]} MiB")
    print(f"delivered (unique)  {result.delivered_unique}")
    print(f"lost                {result.lost}")
    print(f"duplicates          {result.duplicates}")
    return 1 if result.lost else 0


if __name__ == "__main__":
    sys.exit(main())
