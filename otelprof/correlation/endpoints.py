"""Endpoint names of local root spans, added to their samples when the profile is collected.

A root span's final name is known when it ends, usually after many of its samples were taken,
so the endpoint is applied at collect time, off the sampling thread, from the root span object
each sample's tag carries. A root that ended before the collect gives its final name; one
still running (a request straddling an export) gives the name it has at that moment (HTTP
server spans are named from the route when they start, so this is nearly always the final
name) rather than no endpoint at all or a delayed export.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, Hashable, Optional

from otelprof.correlation.tags import ENDPOINT_ATTRIBUTE, BoundedNames, with_attribute
from otelprof.model import SampleTag
from otelprof.samplers.stack import StackSnapshot, ThreadSample


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
    """Adds the endpoint attribute at collect time; names capped (the rest become "other")."""

    def __init__(self, limit: int) -> None:
        self.names = BoundedNames(limit)

    @property
    def enabled(self) -> bool:
        return self.names.limit > 0

    def tag(self, tag: Hashable) -> Hashable:
        """``tag`` with the endpoint of its local root span added (as it is, when unknown)."""
        root_span = getattr(tag, "root_span", None)
        if root_span is None or not self.enabled or not isinstance(tag, SampleTag):
            return tag
        raw = endpoint_name(root_span)
        endpoint = self.names.get(raw) if raw is not None else None
        if endpoint is None:
            return tag
        return with_attribute(tag, ENDPOINT_ATTRIBUTE, endpoint)

    def rewrite(self, snapshot: StackSnapshot) -> StackSnapshot:
        """Add the endpoint attribute to every sample whose local root span is known."""
        if not self.enabled:
            return snapshot
        # Many samples share a tag (one per span): each distinct tag is rewritten once.
        rewritten: Dict[int, Hashable] = {}
        samples = []
        changed = False
        for sample in snapshot.samples:
            tag = sample.tag
            if getattr(tag, "root_span", None) is None:
                samples.append(sample)
                continue
            new_tag = rewritten.get(id(tag))
            if new_tag is None:
                new_tag = rewritten[id(tag)] = self.tag(tag)
            if new_tag is tag:
                samples.append(sample)
                continue
            samples.append(_retag(sample, new_tag))
            changed = True
        if not changed:
            return snapshot
        return dataclasses.replace(snapshot, samples=tuple(samples))


def _retag(sample: ThreadSample, tag: Hashable) -> ThreadSample:
    # The constructor, not dataclasses.replace: this runs for nearly every sample of a
    # thread-per-request server, and replace() costs several times as much.
    return ThreadSample(
        sample.stack,
        sample.thread_id,
        sample.thread_name,
        tag,
        sample.cpu_nanos,
        sample.wall_nanos,
        sample.count,
    )
