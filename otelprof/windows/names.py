"""Function names for ``file:line`` locations (tracemalloc records no function names).

The names come from the code objects of the loaded module that owns the file (its functions,
methods, and the functions nested in them), so they read like the stack sampler's
(``co_qualname``, first line ``co_firstlineno``) and cost no parsing. Files no loaded module
owns (exec'd code, a module's functions all gone) fall back to parsing the source.
"""

from __future__ import annotations

import ast
import bisect
import dis
import linecache
import os
import sys
from types import CodeType, FunctionType, ModuleType
from typing import Dict, Iterable, List, Optional, Set, Tuple, Union

from otelprof.frames import function_name
from otelprof.model import Frame

MODULE_LEVEL = "<module>"
UNKNOWN = "<unknown>"
AGENT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
"""Files of the agent itself: its work in application threads is not the application's."""

_Scope = Tuple[int, int, str, int]  # (first line, last line, qualified name, co_firstlineno)
_Table = Tuple[List[int], List[_Scope]]
_FunctionNode = Union[ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda]
_MAX_DEPTH = 6  # classes nested in classes: deep enough, and a guard against odd objects


def _code_lines(code: CodeType) -> List[int]:
    if hasattr(code, "co_lines"):
        return [line for _, _, line in code.co_lines() if line is not None]
    return [line for _, line in dis.findlinestarts(code)]  # 3.9


class _CodeCollector:
    """Every code object of one file reachable from its module: functions and classes defined
    there (not the names it imports), methods, and what is nested in them."""

    def __init__(self, filenames: Set[str], module_name: str) -> None:
        self.filenames = filenames
        self.module_name = module_name
        self.codes: Dict[int, CodeType] = {}
        self._seen: Set[int] = set()

    def add_code(self, code: CodeType) -> None:
        if id(code) in self.codes or code.co_filename not in self.filenames:
            return
        self.codes[id(code)] = code
        for const in code.co_consts:
            if isinstance(const, CodeType):
                self.add_code(const)

    def visit(self, obj: object, depth: int = 0) -> None:
        if depth > _MAX_DEPTH or id(obj) in self._seen:
            return
        self._seen.add(id(obj))
        if isinstance(obj, (staticmethod, classmethod)):
            obj = obj.__func__
        if isinstance(obj, property):
            for accessor in (obj.fget, obj.fset, obj.fdel):
                if accessor is not None:
                    self.visit(accessor, depth + 1)
            return
        if isinstance(obj, FunctionType):
            self.add_code(obj.__code__)
        elif isinstance(obj, type):
            # Only classes defined in this module: an imported class leads elsewhere.
            if getattr(obj, "__module__", None) == self.module_name:
                for value in list(vars(obj).values()):
                    self.visit(value, depth + 1)
            return
        wrapped = getattr(obj, "__wrapped__", None)  # functools.wraps, lru_cache, ...
        if wrapped is not None:
            self.visit(wrapped, depth + 1)


def _code_scopes(modules: Iterable[ModuleType], filename: str) -> List[_Scope]:
    codes: Dict[int, CodeType] = {}
    for module in modules:
        filenames = {filename, str(getattr(module, "__file__", ""))}
        collector = _CodeCollector(filenames, module.__name__)
        for value in list(vars(module).values()):
            collector.visit(value)
        codes.update(collector.codes)
    scopes = []
    for code in codes.values():
        lines = _code_lines(code)
        first = code.co_firstlineno
        scopes.append((first, max(lines, default=first), function_name(code), first))
    return scopes


def _ast_scopes(tree: ast.AST) -> List[_Scope]:
    """Every function and lambda with its line span and its ``co_qualname``-style name."""
    scopes: List[_Scope] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                name = child.name if not isinstance(child, ast.Lambda) else "<lambda>"
                qualname = prefix + name
                first = _first_line(child)
                scopes.append((first, child.end_lineno or child.lineno, qualname, first))
                visit(child, f"{qualname}.<locals>.")
            else:
                visit(child, prefix)

    visit(tree, "")
    return scopes


def _first_line(node: _FunctionNode) -> int:
    # A code object's first line is its first decorator's, as the stack sampler reports it.
    decorators: List[ast.expr] = getattr(node, "decorator_list", [])
    return min([node.lineno, *(d.lineno for d in decorators)])


class FunctionNames:
    """Resolves ``(filename, line)`` to the innermost enclosing function; cached per file."""

    def __init__(self, max_files: int = 4096) -> None:
        self._files: Dict[str, Optional[_Table]] = {}
        self._frames: Dict[Tuple[str, int], Frame] = {}
        self._max_files = max_files
        self._modules: Dict[str, List[ModuleType]] = {}
        self._modules_count = -1

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
        # Scopes are sorted by first line; the innermost one containing ``line`` starts last.
        for position in range(bisect.bisect_right(starts, line) - 1, -1, -1):
            scope = scopes[position]
            if scope[0] <= line <= scope[1]:
                return scope[2], scope[3]
        return MODULE_LEVEL, 0

    def _load(self, filename: str) -> Optional[_Table]:
        if filename in self._files:
            return self._files[filename]
        if len(self._files) >= self._max_files:
            self._files.clear()
            self._frames.clear()
        scopes: Optional[List[_Scope]] = None
        modules = self._modules_of(os.path.abspath(filename))
        if modules:
            scopes = _code_scopes(modules, os.path.abspath(filename))
        if not scopes:
            scopes = self._parse(filename)
        table = None if scopes is None else self._table(scopes)
        self._files[filename] = table
        return table

    def _modules_of(self, path: str) -> List[ModuleType]:
        if len(sys.modules) != self._modules_count or path not in self._modules:
            self._modules_count = len(sys.modules)
            self._modules = {}
            for module in list(sys.modules.values()):
                file = getattr(module, "__file__", None)
                if isinstance(file, str):
                    self._modules.setdefault(os.path.abspath(file), []).append(module)
        return self._modules.get(path, [])

    @staticmethod
    def _parse(filename: str) -> Optional[List[_Scope]]:
        try:
            source = "".join(linecache.getlines(filename))
            return _ast_scopes(ast.parse(source, filename)) if source else None
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return None

    @staticmethod
    def _table(scopes: List[_Scope]) -> _Table:
        ordered = sorted(set(scopes))
        return [scope[0] for scope in ordered], ordered
