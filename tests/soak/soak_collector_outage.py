"""Soak: the backend is down (or flapping) for a long time while agents keep sending.

The queue must stay at ``queue_size`` (on disk and in memory), what does not fit is refused with
a retryable answer, resident memory stays flat, and once the backend is back everything that was
accepted (and everything refused, re-sent by the clients) arrives.

    .venv/bin/python tests/soak/soak_collector_outage.py --seconds 300 --rate 20
    .venv/bin/python tests/soak/soak_collector_outage.py --seconds 300 --flap-seconds 10
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import List

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from collector.backends import BackgroundLoop, GrpcBackend, free_port, wait_until
from collector.harness import ServiceProcess, base_config
from collector.payloads import seeds
from faults_collector.helpers import Client, queue_rows, rss_kib

EXPORTER = "otlp_grpc/backend"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=300.0, help="length of the outage")
    parser.add_argument("--rate", type=float, default=20.0, help="new requests per second")
    parser.add_argument("--queue-size", type=int, default=1000)
    parser.add_argument(
        "--flap-seconds", type=float, default=0.0, help="toggle the backend this often instead"
    )
    args = parser.parse_args()
    loop = BackgroundLoop()
    backend = GrpcBackend(loop, port=free_port())
    ports = {"grpc": free_port(), "http": free_port()}
    retry = {"initial_interval": "1s", "max_interval": "5s", "max_elapsed_time": "0s"}
    with tempfile.TemporaryDirectory(prefix="soak-outage-", dir="/var/tmp") as name:
        directory = Path(name)
        config = base_config(
            {
                EXPORTER: {
                    "endpoint": f"127.0.0.1:{backend.port}",
                    "tls": {"insecure": True},
                    "retry_on_failure": retry,
                    "sending_queue": {"storage": "file_storage", "queue_size": args.queue_size},
                }
            },
            extensions={
                "file_storage": {"directory": str(directory / "q"), "create_directory": True}
            },
            grpc_port=ports["grpc"],
            http_port=ports["http"],
        )
        service = ServiceProcess(config, directory).start()
        assert service.process is not None
        pid = service.process.pid
        client = Client(ports["grpc"], ports["http"])
        rss: List[int] = []
        rows: List[int] = []
        started = time.monotonic()
        seed = 0
        backend_up = False
        next_flap = started + args.flap_seconds
        while time.monotonic() - started < args.seconds:
            client.send(seed)  # refused ones are kept in client.refused and re-sent below
            seed += 1
            if seed % max(int(args.rate), 1) == 0:
                rss.append(rss_kib(pid))
                rows.append(queue_rows(directory / "q", EXPORTER))
            if args.flap_seconds and time.monotonic() >= next_flap:
                backend.stop() if backend_up else backend.start()
                backend_up = not backend_up
                next_flap += args.flap_seconds
            # Open loop at --rate: the next request is due at seed / rate.
            time.sleep(max(started + seed / args.rate - time.monotonic(), 0.0))
        outage_rss = list(rss)
        if not backend_up:
            backend.start()
        recovered = time.monotonic()
        pending = [s for s, _ in client.refused]
        resend = threading.Thread(
            target=lambda: [wait_until(lambda s=s: client.send(s).ok, 600) for s in pending]
        )
        resend.start()
        resend.join()
        wanted = set(range(seed))
        wait_until(lambda: wanted <= set(seeds(backend.recorder.received())), 1200, "delivery")
        drain = time.monotonic() - recovered
        received = seeds(backend.recorder.received())
        assert service.terminate() == 0
        client.close()
        backend.stop()
        loop.close()
    first, peak, last = outage_rss[0] // 1024, max(outage_rss) // 1024, outage_rss[-1] // 1024
    mode = f"flapping every {args.flap_seconds:g}s" if args.flap_seconds else "down"
    print(f"backend {mode} for     {args.seconds:.0f} s, {args.rate:g} new req/s offered")
    print(f"requests sent          {seed} ({len(pending)} refused, all retryable, re-sent after)")
    print(f"unexpected answers     {len(client.unexpected)} {client.unexpected[:3]}")
    print(f"queue rows             max {max(rows)} (queue_size {args.queue_size})")
    print(f"RSS during the outage  first {first} MiB, peak {peak} MiB, last {last} MiB")
    print(f"delivered after        {drain:.1f} s: {len(set(received))} unique of {seed}")
    print(f"lost                   {len(wanted - set(received))}")
    print(f"duplicates             {len(received) - len(set(received))}")
    lost = wanted - set(received)
    return 1 if lost or client.unexpected or max(rows) > args.queue_size else 0


if __name__ == "__main__":
    sys.exit(main())
