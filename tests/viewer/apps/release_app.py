"""A fixed amount of CPU work in two known functions; version 2 plants a regression in checksum.

WORKLOAD_VERSION=1: parse_records does most of the work, checksum about a fifth.
WORKLOAD_VERSION=2: checksum does eight times the work (the planted regression).
"""

from __future__ import annotations

import os

PARSE_ROUNDS = 200_000
CHECKSUM_ROUNDS = 300_000
REPEATS = 12


def parse_records(rounds: int) -> int:
    fields = 0
    for i in range(rounds):
        fields += len(f"{i},name-{i},{i * 3}".split(","))
    return fields


def checksum(rounds: int) -> int:
    total = 0
    for i in range(rounds):
        total = (total * 31 + i) % 1_000_003
    return total


def main() -> None:
    factor = 8 if os.environ.get("WORKLOAD_VERSION") == "2" else 1
    for _ in range(REPEATS):
        parse_records(PARSE_ROUNDS)
        checksum(CHECKSUM_ROUNDS * factor)


if __name__ == "__main__":
    main()
