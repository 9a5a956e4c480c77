"""One self-contained HTML report: the flame graph bundle, its styles and the data, all inline."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any, Mapping, Optional, Tuple

__all__ = ["BUILD_COMMAND", "STATIC_DIR", "AssetMissing", "load_assets", "render_page"]

STATIC_DIR = Path(__file__).resolve().parent / "static"
"""Where ``make assets`` puts the bundle (package data, not in git: it is a build output)."""
BUNDLE_FILES = ("viewer.js", "viewer.css")
BUILD_COMMAND = "make assets  (or: cd otelprof/viewer/js && npm ci && node build.mjs)"

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="otelprof">
<title>{title}</title>
<style>
{css}
</style>
</head>
<body>
<div id="otelprof-app"></div>
<script type="application/json" id="otelprof-data">{data}</script>
<script>
{js}
</script>
</body>
</html>
"""


class AssetMissing(RuntimeError):
    """The flame graph bundle has not been built; the message names the file and the command."""


def load_assets(static_dir: Optional[Path] = None) -> Tuple[str, str]:
    """The bundle's JavaScript and CSS; :class:`AssetMissing` if either file is absent."""
    folder = STATIC_DIR if static_dir is None else static_dir
    texts = []
    for name in BUNDLE_FILES:
        path = folder / name
        try:
            texts.append(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise AssetMissing(
                f"the flame graph bundle {path} is missing; build it with: {BUILD_COMMAND}"
            ) from None
    js, css = texts
    # Inline code must not be able to close its own element early.
    if "</script" in js.lower() or "</style" in css.lower():
        raise AssetMissing(f"the bundle in {folder} cannot be inlined; rebuild it")
    return js, css


def _json_for_script(document: Mapping[str, Any]) -> str:
    # "<" escaped as \u003c keeps "</script>" inside function names or paths from ending the
    # data element; the JSON parser reads the escape back as "<".
    text = json.dumps(document, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c")


def render_page(document: Mapping[str, Any], static_dir: Optional[Path] = None) -> str:
    """The whole page for a :func:`otelprof.viewer.dataset.build_document` document."""
    js, css = load_assets(static_dir)
    return _PAGE.format(
        title=html.escape(str(document.get("title", "otelprof"))),
        css=css,
        js=js,
        data=_json_for_script(document),
    )
