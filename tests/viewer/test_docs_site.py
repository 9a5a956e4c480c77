"""The documentation site builds in strict mode, and the CLI reference covers every option."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from otelprof.viewer import commands
from tests.viewer.workloads import REPOSITORY


def test_mkdocs_build_strict_passes(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    site = tmp_path / "site"
    for page in ("index.html", "cli.html", "troubleshooting.html", "configuration.html"):
        assert (site / page).exists(), page
    cli = (site / "cli.html").read_text()
    assert 'src="screenshots/flamegraph.png"' in cli and 'src="screenshots/diff.png"' in cli
    assert (site / "screenshots" / "diff.png").exists()
    assert not (site / "_hooks").exists()


@pytest.mark.parametrize(
    "parser", [commands._view_parser, commands._diff_parser, commands._export_parser]
)
def test_cli_reference_names_every_option(parser):
    text = (REPOSITORY / "docs" / "cli.md").read_text()
    options = [
        option
        for action in parser()._actions
        for option in action.option_strings
        if option.startswith("--") and option != "--help"
    ]
    missing = [option for option in options if f"`{option}" not in text]
    assert not missing, f"docs/cli.md does not describe {missing}"


def test_screenshots_are_small_pngs():
    for name in ("flamegraph.png", "diff.png"):
        data = Path(REPOSITORY / "docs" / "screenshots" / name).read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) < 200_000, name
