"""CPU time per request of each step collector_processor takes, in process, on agent payloads.

    python benchmarks/collector/cpu_per_request.py [--stacks 300] [--repeat 7]

Prints the best of ``--repeat`` rounds (process CPU time, 16 distinct requests per round) for
the protobuf fast path and for the exact path it replaces, so the two can be compared on one
machine; the service-level picture (gRPC, event loop) is in collector_throughput.py.
"""

from __future__ import annotations

import argparse
import sys
import time
import zlib
from pathlib import Path
from typing import Callable, List

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from opentelemetry.proto.collector.profiles.v1development.profiles_service_pb2 import (
    ExportProfilesServiceRequest,
)

from benchmarks.collector.payloads import PayloadShape, agent_requests
from benchmarks.collector.subjects import RESOURCE_ACTIONS
from collector_processor.confparse import Node
from collector_processor.fastpath import vouch
from collector_processor.normalize import resolve_string_references
from collector_processor.processor.config import load_resource_config
from collector_processor.processor.resource import ResourceProcessor
from collector_processor.validation import validate_request


def best_microseconds(step: Callable[[bytes], object], wires: List[bytes], repeat: int) -> float:
    rounds = []
    for _ in range(repeat):
        start = time.process_time()
        for _ in range(10):
            for wire in wires:
                step(wire)
        rounds.append((time.process_time() - start) / (10 * len(wires)))
    return min(rounds) * 1e6


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stacks", type=int, default=PayloadShape.stacks)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args(argv)
    wires = agent_requests(16, PayloadShape(stacks=args.stacks))
    processor = ResourceProcessor(
        "resource", load_resource_config(Node({"attributes": RESOURCE_ACTIONS}, "resource"))
    )
    full = {wire: ExportProfilesServiceRequest.FromString(wire) for wire in wires}
    heads = {}
    for wire in wires:
        vouched = vouch(wire)
        assert vouched is not None, "the fast path declined an agent request"
        heads[wire] = vouched.request

    def fast_path(wire: bytes) -> bytes:
        vouched = vouch(wire)
        assert vouched is not None
        resolve_string_references(vouched.request)
        processor.process(vouched.request)
        return bytes(vouched.request.SerializeToString())

    def exact_path(wire: bytes) -> bytes:
        request = ExportProfilesServiceRequest.FromString(wire)
        validate_request(request, wire)
        resolve_string_references(request)
        processor.process(request)
        return bytes(request.SerializeToString())

    steps = [
        ("fast path: check, resource processor, re-encode", fast_path),
        ("  of which: checks on the wire bytes (vouch)", vouch),
        ("  of which: re-encode the head", lambda wire: heads[wire].SerializeToString()),
        ("exact path: decode, validate, processor, re-encode", exact_path),
        ("  of which: decode the full message", ExportProfilesServiceRequest.FromString),
        (
            "  of which: validate (column checks + entry walks)",
            lambda w: validate_request(full[w], w),
        ),
        ("  of which: validate entry by entry", lambda w: validate_request(full[w], fast=False)),
        ("  of which: re-encode the full message", lambda wire: full[wire].SerializeToString()),
        ("resource processor alone", lambda wire: processor.process(full[wire])),
        ("gzip level 6 of the request (as gRPC)", lambda wire: zlib.compress(wire, 6)),
    ]
    size = sorted(map(len, wires))[len(wires) // 2]
    print(f"{len(wires)} agent requests, median {size / 1024:.1f} KiB, {args.stacks} stacks x 2")
    for name, step in steps:
        print(f"{best_microseconds(step, wires, args.repeat):8.0f} us  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
