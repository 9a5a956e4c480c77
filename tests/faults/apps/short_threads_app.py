"""Thousands of short-lived threads, a few at a time, each burning a little CPU.

stdout holds only what does not depend on timing; the CPU the threads really used (summed from
their own thread clocks) goes to stderr as ``thread cpu ns N`` so the test can compare it with
what the profiler charged to ``short_thread_work``.
"""

import hashlib
import os
import sys
import threading
import time


def short_thread_work(i: int, results: list, lock: threading.Lock) -> None:
    start = time.thread_time_ns()
    digest = hashlib.sha256(b"%d" % i).digest()
    for _ in range(int(os.environ.get("SHORT_THREADS_ROUNDS", "3000"))):
        digest = hashlib.sha256(digest).digest()
    spent = time.thread_time_ns() - start
    with lock:
        results.append((digest[0], spent))


def main() -> int:
    total = int(os.environ.get("SHORT_THREADS", "3000"))
    at_once = int(os.environ.get("SHORT_THREADS_AT_ONCE", "16"))
    results: list = []
    lock = threading.Lock()
    started = 0
    while started < total:
        batch = [
            threading.Thread(target=short_thread_work, args=(started + k, results, lock))
            for k in range(min(at_once, total - started))
        ]
        for thread in batch:
            thread.start()
        for thread in batch:
            thread.join()
        started += len(batch)
    print(f"threads {len(results)} checksum {sum(r[0] for r in results)}", flush=True)
    print(f"thread cpu ns {sum(r[1] for r in results)}", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
