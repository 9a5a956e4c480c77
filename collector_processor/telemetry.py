"""Self-metrics: labelled counters and gauges rendered in the Prometheus text format."""

from __future__ import annotations

import threading
from typing import Callable, Dict, Iterable, List, Tuple

__all__ = ["PREFIX", "Counter", "Metrics"]

PREFIX = "otelprof_collector_"

Labels = Tuple[Tuple[str, str], ...]
GaugeReader = Callable[[], Iterable[Tuple[Dict[str, str], float]]]


def _labels(labels: Dict[str, str]) -> Labels:
    return tuple(sorted(labels.items()))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _format(name: str, labels: Labels, value: float) -> str:
    text = repr(float(value)) if value != int(value) else str(int(value))
    if not labels:
        return f"{name} {text}"
    inner = ",".join(f'{key}="{_escape(val)}"' for key, val in labels)
    return f"{name}{{{inner}}} {text}"


class Counter:
    """A monotonically increasing count per label set (thread-safe: storage threads count too)."""

    def __init__(self, name: str, help_text: str) -> None:
        self.name = name
        self.help_text = help_text
        self._values: Dict[Labels, float] = {}
        self._lock = threading.Lock()

    def inc(self, amount: float = 1, **labels: str) -> None:
        key = _labels(labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0) + amount

    def value(self, **labels: str) -> float:
        with self._lock:
            return self._values.get(_labels(labels), 0)

    def render(self) -> List[str]:
        lines = [f"# HELP {self.name} {self.help_text}", f"# TYPE {self.name} counter"]
        with self._lock:
            items = sorted(self._values.items())
        lines.extend(_format(self.name, labels, value) for labels, value in items)
        return lines


class Metrics:
    """The service's registry; components ask for counters by name and register gauges."""

    def __init__(self) -> None:
        self._counters: Dict[str, Counter] = {}
        self._gauges: Dict[str, Tuple[str, List[GaugeReader]]] = {}

    def counter(self, name: str, help_text: str) -> Counter:
        full = PREFIX + name
        if full not in self._counters:
            self._counters[full] = Counter(full, help_text)
        return self._counters[full]

    def gauge(self, name: str, help_text: str, reader: GaugeReader) -> None:
        full = PREFIX + name
        self._gauges.setdefault(full, (help_text, []))[1].append(reader)

    def render(self) -> str:
        lines: List[str] = []
        for name in sorted(self._counters):
            lines.extend(self._counters[name].render())
        for name in sorted(self._gauges):
            help_text, readers = self._gauges[name]
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} gauge")
            for reader in readers:
                lines.extend(_format(name, _labels(labels), value) for labels, value in reader())
        return "\n".join(lines) + "\n"
