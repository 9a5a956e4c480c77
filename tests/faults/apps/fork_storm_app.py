"""Forks many short-lived children (a few at a time), then keeps working in the parent.

Children alternate between ``sys.exit`` (atexit runs: the agent stops and flushes in the child)
and ``os._exit`` (nothing runs: the way multiprocessing and many servers leave). Every child
must exit 0; a child stuck in an at-fork handler would hang the parent's ``os.wait``.
"""

import hashlib
import os
import sys


def child_work(i: int) -> None:
    digest = hashlib.sha256(b"%d" % i).digest()
    for _ in range(500):
        digest = hashlib.sha256(digest).digest()


def until_sampled(deadline_seconds: float = 10.0) -> None:
    """Keep working until the child's own sampler has ticked (a child that exits before its
    first tick has nothing to flush, and how long that takes depends on the machine)."""
    import time

    try:
        import otelprof
    except ImportError:  # the bare run
        return
    profiler = otelprof.get_profiler()
    if profiler is None:
        return
    deadline = time.monotonic() + deadline_seconds
    while profiler.sampler._interval.ticks == 0 and time.monotonic() < deadline:
        child_work(0)


def after_storm_work() -> str:
    digest = hashlib.sha256(b"after").digest()
    for _ in range(300000):
        digest = hashlib.sha256(digest).digest()
    return digest.hex()[:16]


def main() -> int:
    children = int(os.environ.get("FORK_STORM_CHILDREN", "200"))
    at_once = int(os.environ.get("FORK_STORM_AT_ONCE", "8"))
    print(f"forking {children}", flush=True)  # flushed: a child must not inherit a buffer
    live = set()
    failed = 0
    for i in range(children):
        pid = os.fork()
        if pid == 0:
            child_work(i)
            if i % 2:
                os._exit(0)
            if i % 10 == 0:
                until_sampled()  # some sys.exit children surely have samples to flush
            sys.exit(0)
        live.add(pid)
        while len(live) >= at_once:
            done, status = os.wait()
            live.discard(done)
            failed += os.waitstatus_to_exitcode(status) != 0
    for pid in live:
        _, status = os.waitpid(pid, 0)
        failed += os.waitstatus_to_exitcode(status) != 0
    print(f"children failed {failed}", flush=True)
    print(f"after {after_storm_work()}", flush=True)
    print("fork storm done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
