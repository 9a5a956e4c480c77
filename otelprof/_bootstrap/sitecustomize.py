"""Loaded by Python at start-up in programs run by ``otelprof run``: starts the profiler first.

``otelprof run`` puts this directory at the front of ``PYTHONPATH``. Any ``sitecustomize`` the
environment already had is loaded afterwards, so nothing the user relied on is lost.
"""

import os
import sys


def _start_profiler() -> None:
    try:
        from otelprof._autostart import autostart
    except Exception as error:  # e.g. a different interpreter without otelprof installed
        sys.stderr.write(f"otelprof: profiler not started ({error})\n")
        return
    autostart()


def _load_next_sitecustomize() -> None:
    import importlib.machinery
    import importlib.util

    here = os.path.dirname(os.path.abspath(__file__))
    path = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", path)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules["sitecustomize"] = module
    spec.loader.exec_module(module)


_start_profiler()
try:
    _load_next_sitecustomize()
except Exception as _error:
    sys.stderr.write(f"otelprof: the application's sitecustomize failed: {_error!r}\n")
