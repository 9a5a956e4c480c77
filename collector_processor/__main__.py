"""Command line: ``otelprof-collector --config FILE [--set key::path=value] [--validate]``."""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from collector_processor import __version__
from collector_processor.confparse import ConfigError, parse_duration

__all__ = ["main"]

DEFAULT_SHUTDOWN_TIMEOUT = "15s"
# The ``collector`` extra's modules: ``pip install otelprof`` installs this entry point
# without them.
COLLECTOR_ONLY_MODULES = frozenset({"yaml", "aiohttp"})
EXTRA_HINT = "pip install 'otelprof[collector]'"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="otelprof-collector",
        description="Receive OTLP profiles, attach resource attributes, queue durably and "
        "forward them to OTLP backends. The config uses the OpenTelemetry Collector's dialect.",
    )
    parser.add_argument(
        "--config",
        action="append",
        required=True,
        metavar="FILE",
        help="YAML config file; repeat to merge several (later files win)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY::PATH=VALUE",
        help="override one key after the files are merged, e.g. "
        "--set exporters::otlp_grpc/backend::endpoint=backend:4317 (value read as YAML)",
    )
    parser.add_argument(
        "--shutdown-timeout",
        default=DEFAULT_SHUTDOWN_TIMEOUT,
        metavar="DURATION",
        help="on SIGTERM/SIGINT, how long to drain the sending queues (default %(default)s)",
    )
    parser.add_argument(
        "--validate",
        action="store_true",
        help="check the configuration, print 'config OK' and exit",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = _parser().parse_args(argv)
    # Imported here so --help and --version stay fast.
    try:
        from collector_processor.app import run
        from collector_processor.config import load_config, unused_components
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").partition(".")[0]
        if missing not in COLLECTOR_ONLY_MODULES:
            raise  # not a missing extra: a broken install, the traceback tells more
        print(
            f"otelprof-collector: the Python module {missing!r} is missing: "
            f"install otelprof[collector] ({EXTRA_HINT})",
            file=sys.stderr,
        )
        return 2

    try:
        shutdown_timeout = parse_duration(args.shutdown_timeout, "--shutdown-timeout")
        if shutdown_timeout <= 0:
            # Nothing could drain: every queued request would be dropped at once.
            raise ConfigError("--shutdown-timeout", "must be > 0")
        config = load_config(args.config, args.set)
    except ConfigError as exc:
        print(f"otelprof-collector: invalid configuration: {exc}", file=sys.stderr)
        return 2
    if args.validate:
        for warning in unused_components(config):  # a running service logs them
            print(f"otelprof-collector: warning: {warning}", file=sys.stderr)
        print("config OK")
        return 0
    return run(config, shutdown_timeout_seconds=shutdown_timeout)


if __name__ == "__main__":
    sys.exit(main())
