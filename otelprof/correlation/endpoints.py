"""Endpoint names of local root spans, added to their samples when the profile is collected.

A root span's final name is known when it ends, usually after many of its samples were taken,
so the endpoint is applied at collect time, off the sampling thread. Decision for roots still
running when the interval is collected (requests that straddle an export): their samples get
the name the live span has at that moment (HTTP server spans are named from the route when
they start, so this is nearly always the final name) rather than no endpoint at all or a delayed
export.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Dict, Optional, Tuple

from otelprof.correlation.tags import ENDPOINT_ATTRIBUTE, BoundedNames, with_attribute
from otelprof.model import SampleTag
from otelprof.samplers.stack import StackSnapshot, ThreadSample

MAX_ENDED_PER_INTERVAL = 100_000

LiveRoot = Callable[[int], Optional[Any]]
"""The live (not yet ended) local root span with this id, if any."""


def endpoint_name(span: Any) -> Optional[str]:
    """``METHOD /route`` for HTTP server spans that carry ``http.route``; else the span name."""
    name = getattr(span, "name", None)
    attributes = getattr(span, "attributes", None) or {}
    route = attributes.get("http.route")
    if isinstance(route, str) and route:
        method = attributes.get("http.request.method") or attributes.get("http.method")
        if isinstance(method, str) and method:
            return f"{method} {route}"
        return route
    return name if isinstance(name, str) and name else None


class Endpoints:
    """Endpoint per ended local root span, kept for two collections, names capped."""

    def __init__(self, limit: int) -> None:
        self.names = BoundedNames(limit)
        self._current: Dict[int, str] = {}
        self._previous: Dict[int, str] = {}
        self.dropped = 0

    @property
    def enabled(self) -> bool:
        return self.names.limit > 0

    def root_ended(self, root_id: int, span: Any) -> None:
        """Called on the thread that ends a local root span."""
        if not self.enabled:
            return
        name = endpoint_name(span)
        if name is None:
            return
        current = self._current
        if len(current) >= MAX_ENDED_PER_INTERVAL:
            self.dropped += 1
            return
        current[root_id] = name

    def _lookup(self, root_id: int, live_root: LiveRoot) -> Optional[str]:
        raw = self._current.get(root_id) or self._previous.get(root_id)
        if raw is None:
            span = live_root(root_id)
            raw = endpoint_name(span) if span is not None else None
        return self.names.get(raw) if raw is not None else None

    def rewrite(self, snapshot: StackSnapshot, live_root: LiveRoot) -> StackSnapshot:
        """Add the endpoint attribute to every sample whose local root span is known.

        Runs after the sampler was drained: a root that ended before the drain is in the current
        generation; one that ends just after still finds its entry at the next collection.
        """
        if not self.enabled:
            return snapshot
        endpoints: Dict[int, Optional[str]] = {}
        rewritten: Dict[Tuple[SampleTag, int, str], SampleTag] = {}
        samples = []
        changed = False
        for sample in snapshot.samples:
            tag = sample.tag
            root_id = getattr(tag, "root_id", 0)
            if not root_id or not isinstance(tag, SampleTag):
                samples.append(sample)
                continue
            if root_id not in endpoints:
                endpoints[root_id] = self._lookup(root_id, live_root)
            endpoint = endpoints[root_id]
            if endpoint is None:
                samples.append(sample)
                continue
            key = (tag, getattr(tag, "span_id", 0), endpoint)
            new_tag = rewritten.get(key)
            if new_tag is None:
                new_tag = rewritten[key] = with_attribute(tag, ENDPOINT_ATTRIBUTE, endpoint)
            samples.append(_retag(sample, new_tag))
            changed = True
        self._previous, self._current = self._current, {}
        if not changed:
            return snapshot
        return dataclasses.replace(snapshot, samples=tuple(samples))

    def clear(self) -> None:
        self._current = {}
        self._previous = {}


def _retag(sample: ThreadSample, tag: SampleTag) -> ThreadSample:
    return dataclasses.replace(sample, tag=tag)
