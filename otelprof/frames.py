"""Turn code objects and instruction offsets into :class:`~otelprof.model.Frame` values, cached."""

from __future__ import annotations

import bisect
import dis
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


class FrameResolver:
    """Caches line tables and frames; one per export interval is fine (it holds code objects)."""

    def __init__(self) -> None:
        self._tables: Dict[int, Tuple[List[int], List[int]]] = {}
        self._frames: Dict[Tuple[int, int], Frame] = {}

    def line_for(self, code: CodeType, lasti: int) -> int:
        table = self._tables.get(id(code))
        if table is None:
            table = self._tables[id(code)] = _line_starts(code)
        starts, lines = table
        if not starts:
            return code.co_firstlineno
        position = bisect.bisect_right(starts, max(lasti, 0)) - 1
        return lines[max(position, 0)]

    def frame(self, code: CodeType, lasti: int) -> Frame:
        key = (id(code), lasti)
        frame = self._frames.get(key)
        if frame is None:
            frame = self._frames[key] = Frame(
                function=function_name(code),
                filename=code.co_filename,
                line=self.line_for(code, lasti),
                start_line=code.co_firstlineno,
            )
        return frame
