"""Soak: many kill -9 of collector_processor under concurrent load; every OK must be delivered.

.venv/bin/python tests/soak/soak_collector_kill9.py --kills 20 --senders 8
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from collector.backends import BackgroundLoop
from faults_collector.kill9 import kill9_rounds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--senders", type=int, default=8)
    parser.add_argument("--between", type=int, default=100, help="mean acceptances between kills")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    seed = random.randrange(1 << 30) if args.seed is None else args.seed
    loop = BackgroundLoop()
    try:
        with tempfile.TemporaryDirectory(prefix="soak-kill9-") as directory:
            result = kill9_rounds(
                Path(directory),
                loop,
                kills=args.kills,
                senders=args.senders,
                accepted_between_kills=args.between,
                rng=random.Random(seed),
            )
    finally:
        loop.close()
    print(f"rng seed            {seed}")
    print(f"kill -9             {result.kills}")
    print(f"requests accepted   {result.accepted}")
    print(f"delivered (unique)  {result.delivered_unique}")
    print(f"lost                {len(result.lost)} {result.lost[:10]}")
    share = 100 * result.duplicates / max(result.accepted, 1)
    print(f"duplicates          {result.duplicates} ({share:.1f}%)")
    print(f"retryable refusals  {result.refused_while_down} (while restarting)")
    print(f"unexpected answers  {len(result.unexpected)} {result.unexpected[:3]}")
    print(f"seconds             {result.seconds:.0f}")
    return 1 if result.lost or result.unexpected else 0


if __name__ == "__main__":
    sys.exit(main())
