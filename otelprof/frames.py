"""Turn code objects and instruction offsets into :class:`~otelprof.model.Frame` values, cached."""

from __future__ import annotations

import bisect
import dis
import weakref
from types import CodeType
from typing import Dict, List, Tuple

from otelprof.model import Frame

# The sampler records ``frame.f_lasti`` (an attribute read) instead of ``frame.f_lineno``
# (which decodes the line table on every access and costs ~8x more); lines are resolved here,
# off the sampling thread, once per distinct (code, offset).


def _line_starts(code: CodeType) -> Tuple[List[int], List[int]]:
    starts: List[int] = []
    lines: List[int] = []
    if hasattr(code, "co_lines"):  # 3.10+: (start, end, line) ranges in bytes
        for start, _end, line in code.co_lines():
            if line is not None and (not lines or lines[-1] != line):
                starts.append(start)
                lines.append(line)
    else:  # 3.9
        for start, line in dis.findlinestarts(code):
            starts.append(start)
            lines.append(line)
    return starts, lines


def function_name(code: CodeType) -> str:
    """``Class.method`` where the interpreter knows it (3.11+), else the plain name."""
    return getattr(code, "co_qualname", None) or code.co_name


class _CodeFrames:
    """One code object's line table and the frames made from it so far."""

    __slots__ = ("code", "frames", "lines", "starts")

    def __init__(self, code: weakref.ref[CodeType], table: Tuple[List[int], List[int]]) -> None:
        self.code = code
        self.starts, self.lines = table
        self.frames: Dict[int, Frame] = {}


def _line(entry: _CodeFrames, code: CodeType, lasti: int) -> int:
    if not entry.starts:
        return code.co_firstlineno
    position = bisect.bisect_right(entry.starts, max(lasti, 0)) - 1
    return entry.lines[max(position, 0)]


class FrameResolver:
    """Frames of (code object, instruction offset) pairs, cached for as long as the code object
    lives.

    A service runs the same functions interval after interval, and decoding a line table walks
    the whole function: with a cache per export interval, decoding was the largest part of an
    export. Entries are keyed by ``id(code)`` and hold the code object weakly: its deallocation
    removes the entry (the callback runs in whichever thread frees it; a dict ``pop`` is atomic),
    so an id reused by a later code object never finds a stale entry, and the cache holds only
    code that is still alive. One resolver may be shared by the samplers of one profiler.
    """

    def __init__(self) -> None:
        self._codes: Dict[int, _CodeFrames] = {}

    def _entry(self, code: CodeType) -> _CodeFrames:
        key = id(code)
        entry = self._codes.get(key)
        if entry is None or entry.code() is not code:
            codes = self._codes

            def forget(_: object, key: int = key) -> None:
                codes.pop(key, None)

            entry = codes[key] = _CodeFrames(weakref.ref(code, forget), _line_starts(code))
        return entry

    def line_for(self, code: CodeType, lasti: int) -> int:
        return _line(self._entry(code), code, lasti)

    def frame(self, code: CodeType, lasti: int) -> Frame:
        entry = self._entry(code)
        frame = entry.frames.get(lasti)
        if frame is None:
            frame = entry.frames[lasti] = Frame(
                function=function_name(code),
                filename=code.co_filename,
                line=_line(entry, code, lasti),
                start_line=code.co_firstlineno,
            )
        return frame

    def __len__(self) -> int:
        """Code objects cached (all alive)."""
        return len(self._codes)


_shared = FrameResolver()


def shared_resolver() -> FrameResolver:
    """The process's resolver: the stack and GC samplers meet the same code objects."""
    return _shared
