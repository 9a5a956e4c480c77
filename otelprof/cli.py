"""The ``otelprof`` command: ``run`` a program under the profiler, read profiles with ``top``."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import sys
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from otelprof import _python_options
from otelprof import environment_variables as ev
from otelprof.config import PROTOCOLS, ConfigError, headers_problem, resolve_config
from otelprof.version import __version__

BOOTSTRAP_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_bootstrap")

_RUN_EPILOG = """\
examples:
  otelprof run -- python app.py
  otelprof run --output profiles/ -- python -m mypackage.server
  otelprof run --service-name checkout --endpoint http://collector:4317 -- gunicorn app:app

The program runs in place of this command (same process id, exit code and signals). Every
setting also has an environment variable (see docs/configuration.md); flags win.
"""


# Configuration errors name settings; on the command line, name the flag the user typed.
_FLAGS = {
    "sampling_rate_hz": "--rate",
    "export_interval_seconds": "--export-interval",
    "endpoint": "--endpoint",
    "protocol": "--protocol",
}


def _run_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="otelprof run",
        description="Run a program with the profiler on.",
        epilog=_RUN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--service-name", help="service.name of the profiles (OTEL_SERVICE_NAME)")
    parser.add_argument("--endpoint", help="OTLP endpoint, e.g. http://localhost:4317")
    parser.add_argument("--protocol", choices=PROTOCOLS, help="OTLP protocol (default grpc)")
    parser.add_argument("--headers", help="OTLP headers, key1=value1,key2=value2")
    parser.add_argument(
        "--output", metavar="DIR", help="write *.otlp.pb files to DIR instead of sending"
    )
    parser.add_argument("--rate", type=float, metavar="HZ", help="samples per second (default 100)")
    parser.add_argument(
        "--export-interval",
        type=float,
        metavar="SECONDS",
        help="seconds between exports (default 10)",
    )
    parser.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        help="level of the otelprof logger, printed to stderr",
    )
    whole_run = parser.add_mutually_exclusive_group()
    whole_run.add_argument(
        "--precise",
        action="store_true",
        help="run the whole program under yappi (exact times and call counts; slow)",
    )
    whole_run.add_argument(
        "--memory",
        action="store_true",
        help="run the whole program under tracemalloc, with periodic leak checks",
    )
    parser.add_argument("command", nargs="*", help="the program and its arguments (after --)")
    return parser


def _split_command(argv: List[str]) -> Tuple[List[str], List[str]]:
    """Our options, then the program: after ``--``, at ``-m``, or at the first positional."""
    takes_value = {
        "--service-name",
        "--endpoint",
        "--protocol",
        "--headers",
        "--output",
        "--rate",
        "--export-interval",
        "--log-level",
    }
    i = 0
    while i < len(argv):
        token = argv[i]
        if token == "--":
            return argv[:i], argv[i + 1 :]
        if token == "-m" or not token.startswith("-"):
            return argv[:i], argv[i:]
        i += 2 if token in takes_value else 1
    return argv, []


def _program(command: List[str]) -> List[str]:
    """``-m pkg`` and ``script.py`` run under this interpreter; anything else runs as given."""
    if not command:
        return []
    if command[0] == "-m" or command[0].endswith(".py"):
        return [sys.executable, *command]
    return command


def build_run_environment(args: argparse.Namespace, environ: Dict[str, str]) -> Dict[str, str]:
    """The child's environment: our settings as env vars, the bootstrap first on PYTHONPATH.

    Raises ConfigError for a bad flag, so the user hears about it before the program starts.
    """
    explicit = {
        "service_name": args.service_name,
        "endpoint": args.endpoint,
        "protocol": args.protocol,
        "output_dir": os.path.abspath(args.output) if args.output else None,
        "sampling_rate_hz": args.rate,
        "export_interval_seconds": args.export_interval,
    }
    if args.headers is not None:
        problem = headers_problem(args.headers)
        if problem is not None:
            raise ConfigError(f"--headers: {problem}")
    # Validates the flags. A bad environment value is the program's to report: the agent in it
    # reads the same environment and warns once, so keep this reading quiet.
    with _quiet_logger():
        config = resolve_config(environ, **explicit)
    env = dict(environ)
    env[ev.OTEL_PYTHON_PROFILER_ENABLED] = "true"
    if args.service_name:
        env["OTEL_SERVICE_NAME"] = args.service_name
    if args.endpoint:
        env["OTEL_EXPORTER_OTLP_PROFILES_ENDPOINT"] = config.exporter.endpoint
    if args.protocol:
        env["OTEL_EXPORTER_OTLP_PROFILES_PROTOCOL"] = args.protocol
    if args.headers:
        env["OTEL_EXPORTER_OTLP_PROFILES_HEADERS"] = args.headers
    if config.output_dir:
        env[ev.OTEL_PYTHON_PROFILER_OUTPUT_DIR] = config.output_dir
    if args.rate is not None:
        env[ev.OTEL_PYTHON_PROFILER_SAMPLING_RATE] = repr(config.sampling_rate_hz)
    if args.export_interval is not None:
        env[ev.OTEL_PYTHON_PROFILER_EXPORT_INTERVAL] = repr(config.export_interval_seconds)
    if args.log_level:
        env[ev.OTEL_PYTHON_PROFILER_LOG_LEVEL] = args.log_level
    if args.precise or args.memory:
        env[ev.OTEL_PYTHON_PROFILER_WHOLE_RUN] = "precise" if args.precise else "memory"
    path = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != BOOTSTRAP_DIR]
    env["PYTHONPATH"] = os.pathsep.join([BOOTSTRAP_DIR, *path])
    return env


@contextlib.contextmanager
def _quiet_logger() -> Iterator[None]:
    logger = logging.getLogger("otelprof")
    disabled, logger.disabled = logger.disabled, True
    try:
        yield
    finally:
        logger.disabled = disabled


def run(argv: Sequence[str]) -> int:  # noqa: RET503 (ends in exec)
    parser = _run_parser()
    options, program = _split_command(list(argv))
    args = parser.parse_args(options)
    command = _program(program)
    if not command:
        parser.error("no program given; usage: otelprof run [options] -- COMMAND [ARGS...]")
    try:
        env = build_run_environment(args, dict(os.environ))
    except ConfigError as error:
        message = str(error)
        for setting, flag in _FLAGS.items():
            message = message.replace(setting, flag)
        parser.error(message)
    if args.output:
        if os.path.exists(args.output) and not os.path.isdir(args.output):
            parser.error(f"--output {args.output}: not a directory")
        try:
            os.makedirs(args.output, exist_ok=True)
        except OSError as error:
            parser.error(f"--output {args.output}: {error.strerror or error}")
    executable = shutil.which(command[0], path=env.get("PATH"))
    if executable is None:
        sys.stderr.write(f"otelprof run: command not found: {command[0]}\n")
        return 127
    notice = _python_options.warning(command)
    if notice:
        sys.stderr.write(notice + "\n")
    sys.stdout.flush()
    sys.stderr.flush()
    # exec, not a child process: the program keeps our pid, so signals from a supervisor
    # (systemd, Kubernetes, a shell's Ctrl-C) and the exit code reach it unchanged.
    os.execve(executable, command, env)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    usage = (
        "usage: otelprof {run,top,view,diff,export} ...\n"
        "  run [options] -- COMMAND...   run a program with the profiler on\n"
        "  top [options] PATH...         hottest functions in .otlp.pb files\n"
        "  view [options] PATH...        interactive flame graph as one HTML file\n"
        "  diff [options] BASE NEW       what changed between two profile sets (CI gate)\n"
        "  export --format F PATH...     pprof, speedscope or collapsed stacks\n"
        "  --version                     print the version\n"
    )
    if not args or args[0] in ("-h", "--help"):
        sys.stdout.write(usage)
        return 0 if args else 2
    if args[0] == "--version":
        sys.stdout.write(f"otelprof {__version__}\n")
        return 0
    if args[0] == "run":
        return run(args[1:])
    if args[0] == "top":
        from otelprof.top import main_top

        return main_top(args[1:])
    if args[0] in ("view", "diff", "export"):
        from otelprof.viewer import commands

        handlers = {
            "view": commands.main_view,
            "diff": commands.main_diff,
            "export": commands.main_export,
        }
        return handlers[args[0]](args[1:])
    sys.stderr.write(f"otelprof: unknown command {args[0]!r}\n{usage}")
    return 2
