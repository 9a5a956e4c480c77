"""Python command-line options that keep ``otelprof run`` from starting the profiler.

``otelprof run`` starts the profiler through a ``sitecustomize`` it puts first on
``PYTHONPATH``. ``python -I`` and ``-E`` ignore ``PYTHONPATH`` and ``-S`` never imports
``site`` (which imports ``sitecustomize``), so under any of them the program runs unprofiled,
and nothing said so.
"""

from __future__ import annotations

import os
import re
from typing import List, Sequence

_PYTHON = re.compile(r"python[0-9.]*$")
_WITH_VALUE = "WX"  # -W arg, -X opt: the value follows, attached or as the next argument
_ENDS_OPTIONS = "cm"  # -c cmd, -m mod: what follows is the program's
_LONG_WITH_VALUE = {"--check-hash-based-pycs"}

_WHY = {
    "I": "-I (isolated mode) ignores PYTHONPATH",
    "E": "-E ignores PYTHON* environment variables, PYTHONPATH among them",
    "S": "-S skips the site module, which imports sitecustomize",
}


def blocking_options(command: Sequence[str]) -> List[str]:
    """The options among ``-I``, ``-E``, ``-S`` that a ``python ...`` command line gives the
    interpreter itself (not the program), in the order given; [] for other commands."""
    if not command or not _PYTHON.match(os.path.basename(command[0])):
        return []
    found: List[str] = []
    args = list(command[1:])
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg in {"--", "-"} or not arg.startswith("-"):
            break  # the script (or stdin): the rest is the program's
        if arg.startswith("--"):
            if arg in _LONG_WITH_VALUE:
                i += 1
            continue
        letters = arg[1:]
        for position, letter in enumerate(letters):
            if letter in _WHY and letter not in found:
                found.append(letter)
            if letter in _ENDS_OPTIONS:
                return found
            if letter in _WITH_VALUE:
                if position == len(letters) - 1:
                    i += 1  # the value is the next argument
                break  # the rest of this argument is the value
    return found


def warning(command: Sequence[str]) -> str:
    """One line for ``otelprof run`` to print before it runs ``command``; "" if none is due."""
    found = blocking_options(command)
    if not found:
        return ""
    reasons = "; ".join(_WHY[letter] for letter in found)
    return (
        f"otelprof run: warning: the program will run without the profiler: {reasons}, and"
        " otelprof run starts the profiler from a sitecustomize on PYTHONPATH. Drop the"
        " option, or start the profiler in the program (otelprof.start())."
    )
