"""The configurations a workload runs under: bare, otelprof, and peer profilers.

Each configuration says how to build the command line, whether it is available here, and how to
read its output back as samples. To benchmark a new agent setting (say, with precise windows on),
add one :class:`Config` to :data:`CONFIGS`.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional

from benchmarks import profiles
from benchmarks.capture_server import CaptureServer

HERE = Path(__file__).resolve().parent
LAUNCH = str(HERE / "launch.py")
RATE_HZ = 100


@dataclass(frozen=True)
class RunContext:
    """Everything one run needs to build its command and find its output."""

    python: str
    workload: List[str]  # the script and its arguments
    out_dir: Path
    mode: str  # "cpu" or "wall": what an accuracy run reads; overhead runs use "cpu"
    run_id: str
    capture: Optional[CaptureServer] = None


@dataclass(frozen=True)
class Config:
    """One way of running a workload."""

    name: str
    description: str
    argv: Callable[[RunContext], List[str]]
    env: Callable[[RunContext], Mapping[str, str]] = field(default=lambda ctx: {})
    # None when usable here, else the reason it is not (reported as "not available").
    missing: Callable[[], Optional[str]] = field(default=lambda: None)
    # Reads the run's profile for accuracy; None for configurations measured for cost only.
    read: Optional[Callable[[RunContext], profiles.Samples]] = None
    # Profiles from another process: its CPU is not the target's (reported separately).
    out_of_process: bool = False


def _module_missing(module: str, extra: str = "bench") -> Callable[[], Optional[str]]:
    def check() -> Optional[str]:
        try:
            found = importlib.util.find_spec(module) is not None
        except ImportError:  # a missing parent package
            found = False
        return (
            None if found else f"python module {module!r} not installed (pip install '.[{extra}]')"
        )

    return check


def _py(ctx: RunContext) -> List[str]:
    return [ctx.python, *ctx.workload]


# --- otelprof --------------------------------------------------------------------------------


def _otelprof_missing() -> Optional[str]:
    reason = _module_missing("otelprof.cli", extra="dev")()
    if reason:
        return reason
    probe = subprocess.run(
        [sys.executable, "-m", "otelprof", "run", "--help"], capture_output=True, check=False
    )
    return None if probe.returncode == 0 else "`otelprof run` not available yet"


def _otelprof_read(ctx: RunContext) -> profiles.Samples:
    return profiles.read_otlp_files(ctx.out_dir / "otelprof", ctx.mode)


OTELPROF = Config(
    name="otelprof",
    description="otelprof run at its defaults (always-on sampler, files out)",
    argv=lambda ctx: [
        ctx.python,
        "-m",
        "otelprof",
        "run",
        "--output",
        str(ctx.out_dir / "otelprof"),
        "--",
        *_py(ctx),
    ],
    missing=_otelprof_missing,
    read=_otelprof_read,
)

# The always-on sampler alone: scheduled precise and memory windows off (they open at random
# offsets, so a 20 s run catches one only sometimes; issue 4's benchmark measures them).
OTELPROF_NO_WINDOWS = Config(
    name="otelprof-no-windows",
    description="otelprof run at its defaults but with the scheduled yappi/tracemalloc windows off",
    argv=OTELPROF.argv,
    env=lambda ctx: {
        "OTEL_PYTHON_PROFILER_PRECISE_WINDOW": "0",
        "OTEL_PYTHON_PROFILER_MEMORY_WINDOW": "0",
    },
    missing=_otelprof_missing,
    read=_otelprof_read,
)

# --- py-spy (out of process) ------------------------------------------------------------------


def _pyspy_bin() -> Optional[str]:
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


def _pyspy_argv(ctx: RunContext) -> List[str]:
    binary = _pyspy_bin() or "py-spy"
    idle = ["--idle"] if ctx.mode == "wall" else []
    return [
        binary,
        "record",
        "--rate",
        str(RATE_HZ),
        "--nonblocking",
        *idle,
        "-o",
        str(ctx.out_dir / "py-spy.txt"),
        "-f",
        "raw",
        "--",
        *_py(ctx),
    ]


PYSPY = Config(
    name="py-spy",
    description=f"py-spy record --rate {RATE_HZ} --nonblocking -f raw (--idle for wall)",
    argv=_pyspy_argv,
    missing=lambda: None if _pyspy_bin() else "py-spy not installed (pip install '.[bench]')",
    read=lambda ctx: profiles.read_collapsed(ctx.out_dir / "py-spy.txt"),
    out_of_process=True,
)

# --- in-process peers through benchmarks/launch.py -------------------------------------------


def _launch(peer: str, rate_hz: int = RATE_HZ) -> Callable[[RunContext], List[str]]:
    def argv(ctx: RunContext) -> List[str]:
        server = ctx.capture.url if ctx.capture else "http://127.0.0.1:9"
        return [
            ctx.python,
            LAUNCH,
            peer,
            "--mode",
            ctx.mode,
            "--rate",
            str(rate_hz),
            "--server",
            server,
            "--app",
            ctx.run_id,
            "--out",
            str(ctx.out_dir / peer),
            "--",
            *ctx.workload,
        ]

    return argv


def _pyroscope_read(ctx: RunContext) -> profiles.Samples:
    if ctx.capture is None:
        raise RuntimeError("pyroscope needs the capture server")
    return ctx.capture.take(ctx.run_id)


PYROSCOPE = Config(
    name="pyroscope-io",
    description="pyroscope-io in-process (rust sampler, 100 Hz) uploading to a loopback server",
    argv=_launch("pyroscope"),
    missing=_module_missing("pyroscope"),
    read=_pyroscope_read,
)

BARE = Config(name="bare", description="no profiler", argv=_py)


# Parts of otelprof, to see where its cost goes (benchmarks/launch.py starts them in-process).
def _part(name: str, description: str) -> Config:
    return Config(name=name, description=description, argv=_launch(name))


OTELPROF_API = _part(
    "otelprof-api", "otelprof at its defaults, started with otelprof.start() before the workload"
)
OTELPROF_SAMPLER = _part(
    "otelprof-sampler",
    "otelprof's stack sampler alone at the agent's adaptive rate (nothing exported)",
)
OTELPROF_SPANS = _part(
    "otelprof-spans", "otelprof's span correlation alone (context hook + span processor)"
)
OTELPROF_CONTEXT_HOOK = _part(
    "otelprof-context-hook", "span correlation's context hook alone (which span each thread is in)"
)
OTELPROF_SPAN_PROCESSOR = _part(
    "otelprof-span-processor", "span correlation's span processor alone (CPU time per span)"
)
OTELPROF_NO_SPANS = _part(
    "otelprof-no-spans", "otelprof at its defaults with span correlation removed after the start"
)
# Time in the garbage collector ([gc] frames) is measured through gc.callbacks: the agent's
# callback alone, and a callback that does nothing (the cost of being called at all).
OTELPROF_GC = _part("otelprof-gc", "otelprof's GC sampler alone (its gc.callbacks entry)")
GC_CALLBACK = _part("gc-callback", "a gc.callbacks entry that does nothing")
OTELPROF_BUILT = _part(
    "otelprof-built", "otelprof's Profiler built (every import, its objects) but not started"
)
# The control for the parts: the same launcher and imports, nothing started.
LAUNCH_ONLY = _part(
    "launch-only", "benchmarks/launch.py importing otelprof's correlation but starting nothing"
)
# The instrument's check: a known cost (~1 % more instructions per web request) on the request
# threads, as the agent's span path has; the overhead measured for it should be about 1 %.
CALIBRATE = _part(
    "calibrate", "a span processor doing fixed work at each span start (~1 % of a web request)"
)

# Its control: the same processor with no work (OTELPROF_BENCH_BURN=0), and one that reads the
# thread CPU clock at each span start and end, as the agent's span processor does.
THREAD_CLOCK = _part(
    "thread-clock", "a span processor reading the thread CPU clock at span start and end"
)


# What any Python sampler thread costs the application at the agent's typical rate on the web
# workload (25 Hz): waking up and taking the GIL (wake-only), holding it as long as a tick does
# (hold), and materialising every thread's frames as a stack walk from frame objects does
# (walk-only).
def _ticker(name: str, description: str) -> Config:
    return Config(name=name, description=description, argv=_launch(name, rate_hz=25))


WAKE_ONLY = _ticker("wake-only", "a Python thread waking 25 times a second, doing nothing")
HOLD = _ticker(
    "hold", "a Python thread holding the GIL HOLD_US (default 150) at each of 25 wake-ups a second"
)
WALK_ONLY = _ticker("walk-only", "a Python thread walking every thread's frames 25 times a second")

# Cost references only (tracing profilers, or not installed by default).
PYINSTRUMENT = Config(
    name="pyinstrument",
    description=f"pyinstrument, interval {1000 // RATE_HZ} ms (tracing hook, samples on events)",
    argv=_launch("pyinstrument"),
    missing=_module_missing("pyinstrument"),
)
YAPPI_WALL = Config(
    name="yappi-wall",
    description="yappi, wall clock, all threads (a tracing profiler)",
    argv=_launch("yappi-wall"),
    missing=_module_missing("yappi"),
)
YAPPI_CPU = Config(
    name="yappi-cpu",
    description="yappi, CPU clock, all threads (a tracing profiler)",
    argv=_launch("yappi-cpu"),
    missing=_module_missing("yappi"),
)
DDTRACE = Config(
    name="ddtrace",
    description="ddtrace profiler at its defaults (uploads to a loopback agent port)",
    argv=_launch("ddtrace"),
    missing=_module_missing("ddtrace.profiling", extra="ddtrace"),
)

CONFIGS: Dict[str, Config] = {
    c.name: c
    for c in (
        BARE,
        OTELPROF,
        OTELPROF_NO_WINDOWS,
        OTELPROF_API,
        OTELPROF_SPANS,
        OTELPROF_CONTEXT_HOOK,
        OTELPROF_SPAN_PROCESSOR,
        LAUNCH_ONLY,
        OTELPROF_BUILT,
        CALIBRATE,
        THREAD_CLOCK,
        WAKE_ONLY,
        HOLD,
        WALK_ONLY,
        OTELPROF_SAMPLER,
        OTELPROF_NO_SPANS,
        OTELPROF_GC,
        GC_CALLBACK,
        PYSPY,
        PYROSCOPE,
        PYINSTRUMENT,
        YAPPI_WALL,
        YAPPI_CPU,
        DDTRACE,
    )
}


def with_rate(name: str) -> Optional[Config]:
    """``otelprof@HZ`` or ``otelprof-no-windows@HZ``: that config at another sampling rate
    (how the default rate was chosen: the highest that keeps the overhead in its budget).
    ``pyroscope-io@HZ``: the native peer at that rate, to compare samplers at equal rates."""
    base_name, _, rate = name.partition("@")
    base = CONFIGS.get(base_name)
    if base is None or not rate:
        return None
    try:
        hz = float(rate)
    except ValueError:
        return None
    if base is PYROSCOPE and hz.is_integer() and hz >= 1:
        return dataclasses.replace(
            base,
            name=name,
            description=base.description.replace("100 Hz", f"{int(hz)} Hz"),
            argv=_launch("pyroscope", int(hz)),
        )
    if not base_name.startswith("otelprof"):
        return None
    return _with_env(
        base, name, f"sampling at {rate} Hz", {"OTEL_PYTHON_PROFILER_SAMPLING_RATE": rate}
    )


def with_settings(name: str) -> Optional[Config]:
    """``CONFIG+NAME=VALUE[+NAME=VALUE...]``: a config with environment variables added, to
    take the agent apart one setting at a time (``otelprof+OTEL_PYTHON_PROFILER_GC=false``)."""
    base_name, *settings = name.split("+")
    base = CONFIGS.get(base_name) or with_rate(base_name)
    if base is None or not settings or not all("=" in item for item in settings):
        return None
    added = dict(item.split("=", 1) for item in settings)
    return _with_env(base, name, f"with {', '.join(settings)}", added)


def _with_env(base: Config, name: str, change: str, added: Dict[str, str]) -> Config:
    """``base`` renamed, its description extended by ``change``, ``added`` in its environment."""
    base_env = base.env
    return dataclasses.replace(
        base,
        name=name,
        description=f"{base.description}, {change}",
        env=lambda ctx: {**base_env(ctx), **added},
    )


# What `run_all.py` runs unless told otherwise: the agent and the peers the targets name.
DEFAULT_OVERHEAD = ("bare", "otelprof", "otelprof-no-windows", "py-spy", "pyroscope-io")
DEFAULT_ACCURACY = ("otelprof", "py-spy", "pyroscope-io")
