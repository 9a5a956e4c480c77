"""Synthetic agent export requests: a web service's cpu + wall profiles, encoded by otelprof."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import List, Sequence

from opentelemetry.sdk.resources import Resource

from otelprof.builder import build_request
from otelprof.model import CPU_NANOS, WALL_NANOS, Frame, Profile, Sample, SpanLink, Stack

PERIOD_NANO = 10_000_000  # 100 Hz
INTERVAL_NANO = 10_000_000_000  # the agent's default 10 s export interval
START_UNIX_NANO = 1_760_000_000_000_000_000


@dataclass(frozen=True)
class PayloadShape:
    """How big one agent export is; defaults resemble a busy web worker's 10 s export."""

    stacks: int = 300
    functions: int = 400
    files: int = 60
    min_depth: int = 15
    max_depth: int = 45
    threads: int = 8
    spans: int = 60
    linked_fraction: float = 0.7


def _frames(rng: random.Random, shape: PayloadShape) -> List[Frame]:
    files = [
        f"/srv/app/.venv/lib/python3.11/site-packages/pkg{i}/module{i}.py"
        for i in range(shape.files)
    ]
    frames: List[Frame] = []
    for index in range(shape.functions):
        filename = files[index % shape.files]
        start = rng.randrange(1, 2000)
        frames.append(
            Frame(
                f"function_{index}_{rng.choice(['get', 'run', 'call', 'handle'])}",
                filename,
                start + rng.randrange(1, 40),
                start,
            )
        )
    return frames


def _stacks(rng: random.Random, frames: Sequence[Frame], shape: PayloadShape) -> List[Stack]:
    # Stacks share their roots (framework entry points) as real ones do: build each by
    # extending a prefix of an earlier stack.
    roots = frames[:10]
    stacks: List[Stack] = []
    for _ in range(shape.stacks):
        depth = rng.randrange(shape.min_depth, shape.max_depth + 1)
        if stacks and rng.random() < 0.8:
            base = rng.choice(stacks)[::-1]
            prefix = list(base[: rng.randrange(1, min(len(base), depth))])
        else:
            prefix = [rng.choice(roots)]
        while len(prefix) < depth:
            prefix.append(rng.choice(frames))
        stacks.append(tuple(reversed(prefix)))  # leaf first
    return stacks


def _profiles(rng: random.Random, shape: PayloadShape, instance: int) -> List[Profile]:
    frames = _frames(rng, shape)
    stacks = _stacks(rng, frames, shape)
    links = [SpanLink(rng.randbytes(16), rng.randbytes(8)) for _ in range(shape.spans)]
    threads = [
        (("thread.id", 139_000_000 + t), ("thread.name", f"worker-{t}"))
        for t in range(shape.threads)
    ]
    profiles = []
    for value_type, scale in ((CPU_NANOS, 1), (WALL_NANOS, 3)):
        samples = tuple(
            Sample(
                stack=stack,
                value=rng.randrange(1, 50) * PERIOD_NANO * scale,
                attributes=rng.choice(threads),
                link=rng.choice(links) if rng.random() < shape.linked_fraction else None,
            )
            for stack in stacks
        )
        profiles.append(
            Profile(
                sample_type=value_type,
                period_type=value_type,
                period=PERIOD_NANO,
                start_unix_nano=START_UNIX_NANO + instance * INTERVAL_NANO,
                duration_nano=INTERVAL_NANO,
                samples=samples,
                profile_id=rng.randbytes(16),
            )
        )
    return profiles


def agent_requests(count: int, shape: PayloadShape = PayloadShape(), seed: int = 7) -> List[bytes]:
    """`count` serialized ExportProfilesServiceRequests from `count` distinct agent instances."""
    rng = random.Random(seed)
    requests: List[bytes] = []
    for instance in range(count):
        resource = Resource.create(
            {
                "service.name": f"checkout-{instance % 4}",
                "service.instance.id": f"instance-{instance}",
                "service.version": "1.4.2",
                "host.name": f"node-{instance % 3}",
                "process.pid": 1000 + instance,
                "process.runtime.name": "cpython",
                "process.runtime.version": "3.11.9",
            }
        )
        request = build_request(_profiles(rng, shape, instance), resource, "otelprof", "0.1.0")
        requests.append(request.SerializeToString())
    return requests
