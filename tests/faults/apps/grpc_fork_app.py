"""Forks while the agent's gRPC exporter is busy: every child must survive using gRPC itself.

A thread exports to the endpoint in ``argv[1]`` back to back, so most forks land during a call;
each child then exports once (as a forked worker flushing at exit does) and exits with 0 when
that succeeded, 5 when the agent refused because the fork came during a call (the guard could
not wait it out), 3 otherwise. A child killed by a signal shows up as a negative exit code.
"""

import collections
import os
import sys
import threading

from otelprof.config import resolve_config
from otelprof.export.otlp_grpc import OTLPGrpcProfileExporter
from tests.export.servers import make_request


def main() -> int:
    endpoint, forks = sys.argv[1], int(sys.argv[2])
    exporter = OTLPGrpcProfileExporter(resolve_config({}, endpoint=endpoint).exporter)
    request = make_request(padding_bytes=20000)
    first = exporter.export(request, 10)
    assert first.status.name == "SUCCESS", first.message
    stop = threading.Event()

    def export_in_a_loop() -> None:
        while not stop.is_set():
            exporter.export(request, 10)

    thread = threading.Thread(target=export_in_a_loop, daemon=True)
    thread.start()
    outcomes: collections.Counter = collections.Counter()
    for _ in range(forks):
        pid = os.fork()
        if pid == 0:
            exporter.reset_after_fork()
            result = exporter.export(request, 10)
            if result.status.name == "SUCCESS":
                os._exit(0)
            os._exit(5 if "forked while an export was in flight" in result.message else 3)
        _, status = os.waitpid(pid, 0)
        outcomes[os.waitstatus_to_exitcode(status)] += 1
    stop.set()
    thread.join()
    print(f"children {dict(sorted(outcomes.items()))}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
