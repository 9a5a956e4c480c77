"""The configuration reference is generated, complete and current."""

from __future__ import annotations

import pathlib

from otelprof import environment_variables
from otelprof._docgen import configuration_markdown, documented_constants

DOC = pathlib.Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_every_environment_variable_constant_has_a_docstring():
    names = {n for n in dir(environment_variables) if n.startswith("OTEL_")}
    documented = {name for name, text in documented_constants() if text}
    assert names == documented


def test_configuration_reference_is_current():
    assert DOC.read_text() == configuration_markdown(), (
        "docs/configuration.md is stale: run `python -m otelprof._docgen > docs/configuration.md`"
    )
