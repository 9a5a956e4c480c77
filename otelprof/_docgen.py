"""Builds docs/configuration.md from the documented constants and the CLI's own parsers."""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
from typing import List, Tuple

from otelprof import environment_variables

# The standard OpenTelemetry variables the agent honours (resolution in otelprof/config.py).
OTLP_VARIABLES: List[Tuple[str, str]] = [
    (
        "OTEL_SERVICE_NAME",
        "`service.name` of the profiles (default: the SDK's `unknown_service:python`).",
    ),
    ("OTEL_RESOURCE_ATTRIBUTES", "More resource attributes, `key=value,key2=value2`."),
    (
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "Base URL; HTTP appends `/v1development/profiles`. Default `http://localhost:4317` "
        "(gRPC), `http://localhost:4318` (HTTP).",
    ),
    ("OTEL_EXPORTER_OTLP_PROTOCOL", "`grpc` (default) or `http/protobuf`."),
    ("OTEL_EXPORTER_OTLP_HEADERS", "`key=value,...` sent with every export (values URL-decoded)."),
    (
        "OTEL_EXPORTER_OTLP_TIMEOUT",
        "Per-export timeout in milliseconds (spec); values under 100 are read as seconds, as "
        "the Python SDK does. Default 10 s.",
    ),
    ("OTEL_EXPORTER_OTLP_COMPRESSION", "`gzip` or `none` (default)."),
    ("OTEL_EXPORTER_OTLP_CERTIFICATE", "CA bundle to trust for TLS."),
    ("OTEL_EXPORTER_OTLP_CLIENT_KEY", "Client key for mutual TLS."),
    ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "Client certificate for mutual TLS."),
    (
        "OTEL_EXPORTER_OTLP_INSECURE",
        "For an endpoint without a scheme: `true` means plaintext. A scheme (`http://`, "
        "`https://`) always decides.",
    ),
]


def documented_constants() -> List[Tuple[str, str]]:
    """``(NAME, text)`` for each constant of otelprof.environment_variables, in file order."""
    tree = ast.parse(inspect.getsource(environment_variables))
    found: List[Tuple[str, str]] = []
    body = tree.body
    for statement, following in zip(body, body[1:]):
        if (
            isinstance(statement, ast.Assign)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            name = statement.targets[0].id  # type: ignore[attr-defined]
            lines = textwrap.dedent(following.value.value).strip().splitlines()
            text = " ".join(line.strip() for line in lines if not line.startswith(".. envvar::"))
            # reStructuredText in the docstrings, Markdown in the docs.
            text = re.sub(r":envvar:`([^`]+)`", r"`\1`", text).replace("``", "`")
            found.append((name, text.strip()))
    return found


def _flags(parser_factory_name: str) -> List[Tuple[str, str]]:
    from otelprof import cli

    parser = getattr(cli, parser_factory_name)()
    rows = []
    for action in parser._actions:  # argparse has no public iterator over its options
        if not action.option_strings or action.help is None:
            continue
        flag = ", ".join(action.option_strings)
        if action.metavar or action.nargs != 0:
            flag += " " + (action.metavar or action.dest.upper())
        rows.append((flag, action.help))
    return rows


def _keyword_section() -> List[str]:
    import dataclasses

    from otelprof.config import KEYWORD_VARIABLES, ExporterConfig, ProfilerConfig

    defaults = {f.name: f for f in dataclasses.fields(ProfilerConfig)}
    defaults.update({f.name: f for f in dataclasses.fields(ExporterConfig)})
    out = [
        "",
        "## Keyword arguments",
        "",
        "`otelprof.start(**settings)` and `otelprof.Profiler(**settings)` take these; each wins",
        "over its variable. Exporter settings go in as plain keywords too",
        '(`otelprof.start(endpoint="http://collector:4317", headers={"x-tenant": "a"})`).',
        "",
        "| Keyword | Default | Variable |",
        "| --- | --- | --- |",
    ]
    for name, variable in KEYWORD_VARIABLES.items():
        field = defaults[name]
        # No plain default: a mapping made by its default_factory.
        default = repr(field.default) if field.default is not dataclasses.MISSING else "{}"
        out.append(f"| `{name}` | `{default}` | `{variable}` |")
    return out


def configuration_markdown() -> str:
    out = [
        "# Configuration reference",
        "",
        "Generated from `otelprof/environment_variables.py` and the CLI's parsers by",
        "`python -m otelprof._docgen > docs/configuration.md`; a test keeps it current.",
        "",
        "Order of precedence: an explicit argument (`otelprof.start(...)`, a CLI flag) wins over",
        "the profiles-specific variable (`OTEL_EXPORTER_OTLP_PROFILES_*`), which wins over the",
        "generic one (`OTEL_EXPORTER_OTLP_*`), which wins over the default. A bad environment",
        "value is logged once and the default is used; a bad explicit argument is an error.",
        "",
        "## otelprof variables",
        "",
        "| Variable | Meaning |",
        "| --- | --- |",
    ]
    out += [f"| `{name}` | {text} |" for name, text in documented_constants()]
    out += [
        "",
        "## OpenTelemetry variables",
        "",
        "Each `OTEL_EXPORTER_OTLP_X` also has a profiles-only form `OTEL_EXPORTER_OTLP_PROFILES_X`",
        "that wins over it (the profiles endpoint is used exactly as given).",
        "",
        "| Variable | Meaning |",
        "| --- | --- |",
    ]
    out += [f"| `{name}` | {text} |" for name, text in OTLP_VARIABLES]
    out += _keyword_section()
    out += ["", "## `otelprof run` flags", "", "| Flag | Meaning |", "| --- | --- |"]
    out += [f"| `{flag}` | {text} |" for flag, text in _flags("_run_parser")]
    out += [
        "",
        "`otelprof run` passes its flags to the program as the variables above, so child",
        "processes the program starts are profiled with the same settings.",
        "",
    ]
    return "\n".join(out)


if __name__ == "__main__":
    print(configuration_markdown(), end="")
