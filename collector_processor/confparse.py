"""Typed reading of one YAML mapping in the Collector's dialect: defaults, durations, key paths."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Set

__all__ = ["ConfigError", "Node", "TypedText", "join_path", "parse_duration", "plain"]

PATH_SEPARATOR = "::"

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


class ConfigError(ValueError):
    """A configuration problem, always phrased as ``key::path: reason``."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}" if path else reason)


@dataclass(frozen=True)
class TypedText:
    """A scalar read from text that YAML typed (a ``${env:NAME}`` value, a ``--set`` value).

    ``value`` is what YAML made of it (``1.10`` -> 1.1, ``0123`` -> 83, ``true`` -> True),
    ``text`` what was written. A key that takes a string gets the text, as the Collector keeps
    the original string of an expanded value for string fields; any other key gets the value.
    """

    value: Any
    text: str


def plain(value: Any) -> Any:
    """``value`` with its :class:`TypedText` scalars typed (in lists too; not in mappings,
    which stay raw for the :class:`Node` that reads them)."""
    if isinstance(value, TypedText):
        return value.value
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


def _text(value: Any) -> Any:
    return value.text if isinstance(value, TypedText) else value


def join_path(*parts: str) -> str:
    """Join key path parts the way the Collector prints them (``a::b::c``)."""
    return PATH_SEPARATOR.join(part for part in parts if part)


def parse_duration(value: Any, path: str) -> float:
    """Parse a Go-style duration (``5s``, ``100ms``, ``1m30s``, ``0``) into seconds."""
    if isinstance(value, bool):
        raise ConfigError(path, f"invalid duration {value!r}: expected a string such as 5s")
    if isinstance(value, (int, float)):
        # A bare number is only unambiguous when it is zero; the Collector would read nanoseconds.
        if value == 0:
            return 0.0
        raise ConfigError(path, f"invalid duration {value!r}: missing unit (use e.g. {value}s)")
    if not isinstance(value, str):
        raise ConfigError(path, f"invalid duration {value!r}: expected a string such as 5s")
    text = value.strip()
    negative = text.startswith("-")
    body = text[1:] if text[:1] in "+-" else text
    if body == "0":
        return 0.0
    position = 0
    total = 0.0
    for match in _DURATION_PART.finditer(body):
        if match.start() != position:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    if not body or position != len(body):
        raise ConfigError(
            path, f'invalid duration "{value}": use a number and a unit (ms, s, m, h)'
        )
    return -total if negative else total


class Node:
    """One mapping of the config being read; remembers which keys were used.

    Reading methods return the default when the key is absent (or null, as in the Collector's
    ``key:`` with no value). :meth:`finish` turns every unread key into an error that names
    its full path, so a typo never passes silently.
    """

    def __init__(self, raw: Any, path: str) -> None:
        raw = plain(raw)
        if raw is None:
            raw = {}
        if not isinstance(raw, Mapping):
            raise ConfigError(path, f"expected a mapping, got {_kind(raw)}")
        for key in raw:
            if not isinstance(key, str):
                raise ConfigError(join_path(path, str(key)), "keys must be strings")
        self.raw: Mapping[str, Any] = raw
        self.path = path
        self._used: Set[str] = set()

    def key_path(self, key: str) -> str:
        return join_path(self.path, key)

    def has(self, key: str) -> bool:
        return key in self.raw

    def get(self, key: str) -> Any:
        return plain(self._raw(key))

    def _raw(self, key: str) -> Any:
        self._used.add(key)
        return self.raw.get(key)

    def child(self, key: str) -> Node:
        return Node(self.get(key), self.key_path(key))

    def string(self, key: str, default: str) -> str:
        value = _text(self._raw(key))
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise ConfigError(self.key_path(key), f"expected a string, got {_kind(value)}")
        return str(value)

    def optional_string(self, key: str) -> Optional[str]:
        value = self.string(key, "")
        return value or None

    def boolean(self, key: str, default: bool) -> bool:
        value = self.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise ConfigError(self.key_path(key), f"expected true or false, got {value!r}")
        return value

    def integer(self, key: str, default: int) -> int:
        value = self.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(self.key_path(key), f"expected an integer, got {value!r}")
        return value

    def number(self, key: str, default: float) -> float:
        value = self.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(self.key_path(key), f"expected a number, got {value!r}")
        return float(value)

    def duration(self, key: str, default: float) -> float:
        value = self.get(key)
        if value is None:
            return default
        return parse_duration(value, self.key_path(key))

    def string_list(self, key: str, default: List[str]) -> List[str]:
        value = _text(self._raw(key))
        if value is None:
            return list(default)
        if not isinstance(value, list):
            raise ConfigError(self.key_path(key), f"expected a list, got {_kind(value)}")
        result = []
        for index, item in enumerate(map(_text, value)):
            if isinstance(item, bool) or not isinstance(item, (str, int, float)):
                raise ConfigError(
                    join_path(self.key_path(key), str(index)),
                    f"expected a string, got {_kind(item)}",
                )
            result.append(str(item))
        return result

    def string_map(self, key: str) -> Dict[str, str]:
        node = self.child(key)
        result: Dict[str, str] = {}
        for name in node.raw:
            result[name] = node.string(name, "")
        return result

    def node_list(self, key: str) -> List[Node]:
        value = self.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise ConfigError(self.key_path(key), f"expected a list, got {_kind(value)}")
        return [Node(item, join_path(self.key_path(key), str(i))) for i, item in enumerate(value)]

    def finish(self) -> None:
        """Raise for the first key that no reader asked for."""
        for key in self.raw:
            if key not in self._used:
                hint = difflib.get_close_matches(key, sorted(self._used), n=1)
                suffix = f' (did you mean "{hint[0]}"?)' if hint else ""
                raise ConfigError(self.key_path(key), f"unknown key{suffix}")


def _kind(value: Any) -> str:
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing"
    return f"{type(value).__name__} {value!r}"
