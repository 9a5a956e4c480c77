"""An eventlet program: two green threads computing on the main thread.

``eventlet.monkey_patch()`` runs first; with ``START_AFTER_PATCH=1`` the program starts the
profiler itself after it (``otelprof.start()``), otherwise it runs under ``otelprof run``.
"""

import warnings

warnings.simplefilter("ignore", DeprecationWarning)  # eventlet announces its own retirement

import eventlet  # noqa: E402

eventlet.monkey_patch()

import sys  # noqa: E402

from green_common import profiler_started, ticks  # noqa: E402

TICKS = 40  # sampler ticks each green thread computes through, whatever the machine's speed


def green_work() -> None:
    until = ticks() + TICKS
    while ticks() < until:
        sum(i * i for i in range(3000))
        eventlet.sleep(0)


def main() -> int:
    if not profiler_started():
        return 3
    pool = eventlet.GreenPool()
    for _ in range(2):
        pool.spawn(green_work)
    pool.waitall()
    return 0


if __name__ == "__main__":
    sys.exit(main())
