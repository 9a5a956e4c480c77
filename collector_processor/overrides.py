"""Merging config files, ``--set key::path=value`` overrides and ``${env:NAME}`` expansion."""

from __future__ import annotations

import os
import re
from typing import Any, Dict, List, Mapping, Union

import yaml

from collector_processor.confparse import PATH_SEPARATOR, ConfigError, TypedText, plain

__all__ = [
    "MAX_DEPTH",
    "MAX_NODES",
    "apply_set",
    "check_shape",
    "describe_yaml_error",
    "expand_env",
    "load_yaml",
    "merge",
]

_ENV_REFERENCE = re.compile(r"\$\$|\$\{env:([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
# Far beyond any real configuration (a few levels, hundreds of values).
MAX_DEPTH = 64
MAX_NODES = 100_000
_INDEX = re.compile(r"[0-9]{1,9}")  # ASCII digits: str.isdigit() also accepts "²"
_WHOLE_REFERENCE = re.compile(r"^\$\{env:[A-Za-z_][A-Za-z0-9_]*(?::-[^}]*)?\}$")


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping, as the Collector's yaml.v3:
    PyYAML keeps the last one silently (a second ``exporters:`` section replaces the first)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> Dict[Any, Any]:
        seen: Dict[Any, yaml.Mark] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # keys given next to a "<<:" merge override the merged ones: allowed
            key = self.construct_object(key_node, deep=deep)
            try:
                first = seen.setdefault(key, key_node.start_mark)
            except TypeError:
                continue  # an unhashable key: the constructor below names that problem
            if first is not key_node.start_mark:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f'duplicate key "{key}" (first at line {first.line + 1}, '
                    f"column {first.column + 1})",
                    key_node.start_mark,
                )
        return super().construct_mapping(node, deep=deep)


class _TextLoader(_Loader):
    """Keeps the text of every scalar YAML types as other than a string (:class:`TypedText`)."""

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        data = super().construct_object(node, deep=deep)
        if isinstance(node, yaml.ScalarNode) and data is not None and not isinstance(data, str):
            return TypedText(data, node.value)
        return data

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> Dict[Any, Any]:
        mapping = super().construct_mapping(node, deep=deep)
        return {plain(key): value for key, value in mapping.items()}  # keys are names: typed


def load_yaml(text: str) -> Any:
    """``yaml.safe_load`` that refuses duplicate keys."""
    return yaml.load(text, Loader=_Loader)


def _load_keeping_text(text: str) -> Any:
    return yaml.load(text, Loader=_TextLoader)


def describe_yaml_error(exc: yaml.YAMLError, text: str) -> str:
    """``line L, column C: problem`` on one line (PyYAML's own text spans several, with an
    excerpt of the document under a caret)."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        message = f"line {mark.line + 1}, column {mark.column + 1}: {exc.problem}"
        if exc.context and exc.context_mark is not None:
            start = exc.context_mark
            message += (
                f" ({exc.context} started at line {start.line + 1}, column {start.column + 1})"
            )
        return message
    if isinstance(exc, yaml.reader.ReaderError) and isinstance(exc.character, int):
        position = exc.position
        line = text.count("\n", 0, position) + 1
        column = position - (text.rfind("\n", 0, position) + 1) + 1
        return (
            f"line {line}, column {column}: unacceptable character "
            f"#x{exc.character:04x}: {exc.reason}"
        )
    return " ".join(str(exc).split())


def check_shape(document: Any, where: str) -> None:
    """Refuse YAML that would blow up when walked: alias cycles, alias bombs, deep nesting.

    YAML aliases share one object between places, so a small text can describe a cyclic or an
    exponentially large tree; merging and ``${env:...}`` expansion walk every place.
    """
    budget = [MAX_NODES]

    def walk(node: Any, depth: int) -> None:
        budget[0] -= 1
        if budget[0] < 0:
            raise ConfigError("", f"{where}: more than {MAX_NODES} values (YAML aliases?)")
        if depth > MAX_DEPTH:
            raise ConfigError(
                "", f"{where}: nested deeper than {MAX_DEPTH} levels (a YAML alias cycle?)"
            )
        if isinstance(node, Mapping):
            for item in node.values():
                walk(item, depth + 1)
        elif isinstance(node, list):
            for item in node:
                walk(item, depth + 1)

    walk(document, 0)


def merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> Dict[str, Any]:
    """Deep-merge as the Collector merges ``--config`` files: maps merge, anything else replaces."""
    result = dict(base)
    for key, value in update.items():
        current = result.get(key)
        if isinstance(current, Mapping) and isinstance(value, Mapping):
            result[key] = merge(current, value)
        else:
            result[key] = value
    return result


def apply_set(config: Mapping[str, Any], assignment: str) -> Dict[str, Any]:
    """Apply ``a::b::c=value``; ``value`` is read as YAML (its scalars keep their text, see
    :class:`TypedText`), list items are addressed by index."""
    path_text, sep, value_text = assignment.partition("=")
    if not sep or not path_text:
        raise ConfigError("", f"--set {assignment!r}: expected key::path=value")
    keys = path_text.split(PATH_SEPARATOR)
    try:
        value = _load_keeping_text(value_text) if value_text else None
    except yaml.YAMLError as exc:
        problem = describe_yaml_error(exc, value_text)
        raise ConfigError(path_text, f"--set value is not valid YAML at {problem}") from None
    except RecursionError:
        raise ConfigError(path_text, "--set value is nested too deeply") from None
    check_shape(value, f"--set {path_text}")
    result = dict(config)
    _assign(result, keys, value, path_text)
    return result


def _assign(
    container: Union[Dict[str, Any], List[Any]], keys: List[str], value: Any, path: str
) -> None:
    key, rest = keys[0], keys[1:]
    if isinstance(container, list):
        if not _INDEX.fullmatch(key) or int(key) > len(container):
            raise ConfigError(
                path, f"--set: {key!r} is not a valid index for a list of {len(container)}"
            )
        index = int(key)
        if index == len(container):
            container.append({})
        if not rest:
            container[index] = value
            return
        child = _copy(container[index])
        container[index] = child
        _assign(child, rest, value, path)
        return
    if not rest:
        container[key] = value
        return
    child = _copy(container.get(key))
    container[key] = child
    _assign(child, rest, value, path)


def _copy(node: Any) -> Union[Dict[str, Any], List[Any]]:
    """A shallow copy to write into, so overrides never alter the caller's mapping."""
    if isinstance(node, list):
        return list(node)
    if isinstance(node, Mapping):
        return dict(node)
    return {}


def expand_env(value: Any) -> Any:
    """Replace ``${env:NAME}`` / ``${env:NAME:-default}`` in strings; ``$$`` is a literal ``$``."""
    if isinstance(value, Mapping):
        return {key: expand_env(item) for key, item in value.items()}
    if isinstance(value, list):
        return [expand_env(item) for item in value]
    if not isinstance(value, str) or "$" not in value:
        return value

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
        return os.environ.get(name, default if default is not None else "")

    expanded = _ENV_REFERENCE.sub(substitute, value)
    if _WHOLE_REFERENCE.match(value):
        # As the Collector: a value that is one reference takes the type its text reads as,
        # and keeps the text for keys that take a string (TENANT=0123 is "0123", not 83).
        try:
            parsed = load_yaml(expanded) if expanded else expanded
        except yaml.YAMLError:
            return expanded
        if parsed == expanded and isinstance(parsed, str):
            return expanded
        if isinstance(parsed, (str, int, float, bool)):
            return TypedText(parsed, expanded)
    return expanded
