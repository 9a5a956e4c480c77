"""Returns from main while threads still run: busy and idle daemons, and a non-daemon worker.

The interpreter joins the worker, runs atexit (the agent flushes) and finalizes with the
daemon threads still running; none of it may hang or print a traceback.
"""

import hashlib
import sys
import threading
import time

main_done = threading.Event()


def busy_daemon() -> None:
    digest = b""
    while True:
        digest = hashlib.sha256(digest).digest()


def idle_daemon() -> None:
    threading.Event().wait()


def sleepy_daemon() -> None:
    while True:
        time.sleep(0.001)


def worker() -> None:
    main_done.wait()
    digest = b""
    for _ in range(100000):
        digest = hashlib.sha256(digest).digest()
    print(f"worker done {digest.hex()[:16]}", flush=True)


def main() -> int:
    for target in (busy_daemon, idle_daemon, sleepy_daemon):
        threading.Thread(target=target, daemon=True).start()
    threading.Thread(target=worker, daemon=False).start()
    for _ in sys.stdin:  # the test says when to leave
        pass
    print("main done", flush=True)
    main_done.set()
    return 0


if __name__ == "__main__":
    sys.exit(main())
