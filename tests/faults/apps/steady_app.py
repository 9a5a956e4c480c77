"""Deterministic work before and after a pause the test ends by closing stdin.

The output depends only on the work, never on timing or on the profiler, so a run under the
agent must print exactly what a bare run prints. Between ``waiting`` and the end of stdin the
app keeps computing (the agent meets its fault meanwhile); how many rounds goes to stderr.
"""

import hashlib
import sys
import threading


def work(seed: bytes, rounds: int = 20000) -> str:
    digest = hashlib.sha256(seed).digest()
    for _ in range(rounds):
        digest = hashlib.sha256(digest).digest()
    return digest.hex()[:16]


def main() -> int:
    for i in range(3):
        print(f"before {i} {work(b'before%d' % i)}", flush=True)
    stdin_closed = threading.Event()

    def read_stdin() -> None:
        for _ in sys.stdin:
            pass
        stdin_closed.set()

    threading.Thread(target=read_stdin, daemon=True).start()
    print("waiting", flush=True)
    rounds = 0
    while not stdin_closed.is_set():
        work(b"meanwhile", 2000)
        rounds += 1
    print(f"rounds {rounds}", file=sys.stderr)
    for i in range(3):
        print(f"after {i} {work(b'after%d' % i)}", flush=True)
    print("steady app done", flush=True)
    return 3


if __name__ == "__main__":
    sys.exit(main())
