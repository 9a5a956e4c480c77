"""What a sample learns about its span: the OTLP link, the local root, bounded-cardinality names."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

from otelprof.model import Attributes, AttributeValue, SampleTag, SpanLink
from otelprof.records import ENDPOINT_ATTRIBUTE

__all__ = [
    "ENDPOINT_ATTRIBUTE",
    "LOCAL_ROOT_SPAN_ID_ATTRIBUTE",
    "OTHER",
    "TASK_NAME_ATTRIBUTE",
    "BoundedNames",
    "SpanTag",
    "with_attribute",
]

LOCAL_ROOT_SPAN_ID_ATTRIBUTE = "otelprof.local_root_span_id"
"""Sample attribute: the local root span (the request) the sample belongs to, 16 hex digits."""
TASK_NAME_ATTRIBUTE = "asyncio.task.name"
"""Sample attribute: the name of the asyncio task that was running (named tasks only)."""
OTHER = "other"
"""The value every name past a cardinality cap is folded into."""

MAX_NAME_LENGTH = 128
# ``asyncio`` names unnamed tasks Task-1, Task-2, ...: one value per task, so no attribute at all.
_DEFAULT_TASK_NAME = re.compile(r"Task-\d+\Z")


@dataclass(frozen=True)
class SpanTag(SampleTag):
    """A :class:`SampleTag` that also remembers, outside equality, which spans produced it.

    ``span_id`` is the active span and ``root_id`` its local root (0 when unknown); the span
    processor reads both to charge sampled CPU and hot functions. ``root_span`` is the local
    root span object itself when known: the collect step names the endpoint from it, so a root
    that ended between a sample and its export (even before any sample was charged to it)
    still names its samples. Equality stays that of the exported link and attributes.
    """

    span_id: int = field(default=0, compare=False)
    root_id: int = field(default=0, compare=False)
    root_span: Any = field(default=None, compare=False, repr=False)


def span_tag(
    trace_id: int,
    span_id: int,
    root_id: Optional[int],
    link_to_root: bool,
    root_attribute: bool,
    root_span: Any = None,
) -> SpanTag:
    """The tag of samples taken while ``span_id`` is active."""
    linked = root_id if (link_to_root and root_id) else span_id
    attributes: Attributes = ()
    if root_id and root_attribute:
        attributes = ((LOCAL_ROOT_SPAN_ID_ATTRIBUTE, f"{root_id:016x}"),)
    return SpanTag(
        link=SpanLink(trace_id.to_bytes(16, "big"), linked.to_bytes(8, "big")),
        attributes=attributes,
        span_id=span_id,
        root_id=root_id or 0,
        root_span=root_span,
    )


def with_attribute(tag: Optional[SampleTag], key: str, value: AttributeValue) -> SampleTag:
    """``tag`` (or an empty tag) with one more attribute, keeping the sorted canonical form."""
    if tag is None:
        return SampleTag(attributes=((key, value),))
    attributes = tuple(sorted((*(kv for kv in tag.attributes if kv[0] != key), (key, value))))
    if isinstance(tag, SpanTag):
        return SpanTag(
            tag.link, attributes, span_id=tag.span_id, root_id=tag.root_id, root_span=tag.root_span
        )
    return SampleTag(tag.link, attributes)


class BoundedNames:
    """Lets the first ``limit`` distinct names through and folds the rest into ``"other"``.

    The admitted set lives as long as the process, so a name keeps its value across exports.
    A limit of 0 turns the attribute off (:meth:`get` returns None).
    """

    def __init__(self, limit: int, max_length: int = MAX_NAME_LENGTH) -> None:
        self.limit = limit
        self.max_length = max_length
        self._admitted: Dict[str, str] = {}
        self.folded = 0  # how many look-ups fell into "other" (for the debug log)

    def get(self, name: str) -> Optional[str]:
        value = self._admitted.get(name)
        if value is not None:
            return value
        if self.limit <= 0:
            return None
        if len(self._admitted) < self.limit:
            # A racing thread may admit one name too many; the cap is a bound, not an exact count.
            value = self._admitted[name] = name[: self.max_length]
            return value
        self.folded += 1
        return OTHER

    def task_name(self, name: str) -> Optional[str]:
        """The attribute value for an asyncio task name; None for ``Task-<n>`` default names."""
        value = self._admitted.get(name)
        if value is not None:
            return value
        if _DEFAULT_TASK_NAME.match(name):
            return None
        return self.get(name)

    def __len__(self) -> int:
        return len(self._admitted)
