"""Function names for ``file:line`` locations (tracemalloc records no function), from the source."""

from __future__ import annotations

import ast
import bisect
import linecache
import os
from typing import Dict, List, Optional, Tuple, Union

from otelprof.model import Frame

MODULE_LEVEL = "<module>"
UNKNOWN = "<unknown>"
AGENT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
"""Files of the agent itself: its work in application threads is not the application's."""

_Scope = Tuple[int, int, str, int]  # (first line, last line, qualified name, co_firstlineno)
_FunctionNode = Union[ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda]


def _scopes(tree: ast.AST) -> List[_Scope]:
    """Every function and lambda with its line span and its ``co_qualname``-style name."""
    scopes: List[_Scope] = []

    def visit(node: ast.AST, prefix: str, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.", in_function)
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                name = child.name if not isinstance(child, ast.Lambda) else "<lambda>"
                qualname = prefix + name
                scopes.append(
                    (child.lineno, child.end_lineno or child.lineno, qualname, _first_line(child))
                )
                visit(child, f"{qualname}.<locals>.", True)
            else:
                visit(child, prefix, in_function)

    visit(tree, "", False)
    return scopes


def _first_line(node: _FunctionNode) -> int:
    # A code object's first line is its first decorator's, as the stack sampler reports it.
    decorators: List[ast.expr] = getattr(node, "decorator_list", [])
    return min([node.lineno, *(d.lineno for d in decorators)])


class FunctionNames:
    """Resolves ``(filename, line)`` to the innermost enclosing function; cached per file."""

    def __init__(self, max_files: int = 4096) -> None:
        self._files: Dict[str, Optional[Tuple[List[int], List[_Scope]]]] = {}
        self._frames: Dict[Tuple[str, int], Frame] = {}
        self._max_files = max_files

    def _load(self, filename: str) -> Optional[Tuple[List[int], List[_Scope]]]:
        if filename in self._files:
            return self._files[filename]
        if len(self._files) >= self._max_files:
            self._files.clear()
            self._frames.clear()
        table: Optional[Tuple[List[int], List[_Scope]]] = None
        try:
            source = "".join(linecache.getlines(filename))
            if source:
                scopes = sorted(_scopes(ast.parse(source, filename)))
                table = ([scope[0] for scope in scopes], scopes)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            table = None
        self._files[filename] = table
        return table

    def frame(self, filename: str, line: int) -> Frame:
        key = (filename, line)
        frame = self._frames.get(key)
        if frame is None:
            name, first = self._lookup(filename, line)
            frame = self._frames[key] = Frame(name, filename, line, first)
        return frame

    def _lookup(self, filename: str, line: int) -> Tuple[str, int]:
        table = self._load(filename)
        if table is None:
            return UNKNOWN, 0
        starts, scopes = table
        best: Optional[_Scope] = None
        # Scopes are sorted by first line; the innermost one containing ``line`` starts last.
        for position in range(bisect.bisect_right(starts, line) - 1, -1, -1):
            scope = scopes[position]
            if scope[0] <= line <= scope[1]:
                best = scope
                break
        if best is None:
            return MODULE_LEVEL, 0
        return best[2], best[3]
