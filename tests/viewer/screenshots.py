"""Retake the documentation's screenshots: ``python -m tests.viewer.screenshots [PATH...]``.

PATH (default: demo-output/collector, written by ``make demo``) is drawn as a flame graph with a
search and a hover; the diff is of apps/release_app.py v1 and v2, run here under the profiler.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from otelprof.viewer.commands import main_diff, main_view
from tests.viewer.cdp import Browser, Page
from tests.viewer.workloads import REPOSITORY, run_release

OUTPUT = REPOSITORY / "docs" / "screenshots"
FRAME_JS = """(name => { const g = document.querySelector(`#chart svg g.frame[name="${name}"]`);
  return g && g.querySelector('rect').getBoundingClientRect().toJSON(); })"""


def _settle(page: Page) -> None:
    page.wait_for("document.body.dataset.rendered")
    width = page.evaluate("document.querySelector('#chart svg').getBoundingClientRect().width")
    page.wait_for(f"({FRAME_JS})('all') && ({FRAME_JS})('all').width > {0.99 * width}")


def _shoot(page: Page, path: Path, height: int) -> None:
    path.write_bytes(page.screenshot({"x": 0, "y": 0, "width": 1100, "height": height}))
    print(f"wrote {path} ({path.stat().st_size} bytes)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("paths", nargs="*", default=[str(REPOSITORY / "demo-output/collector")])
    parser.add_argument("--search", default="price", help="search term shown in the view shot")
    parser.add_argument("--hover", default="lookup_price", help="frame hovered in the view shot")
    args = parser.parse_args()
    OUTPUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        args.paths = [str(Path(p).resolve()) for p in args.paths]
        assert main_view([*args.paths, "-o", str(work / "view.html")]) == 0
        run_release(1, work / "release-1"), run_release(2, work / "release-2")
        # Relative paths: the page shows them as the two sides' names.
        os.chdir(work)
        assert main_diff(["release-1", "release-2", "-o", "diff.html"]) == 0
        browser = Browser()
        try:
            page = browser.new_page(width=1100, height=720)
            page.open(work / "view.html")
            _settle(page)
            page.type_text("#search", args.search)
            box = page.evaluate(f"({FRAME_JS})({args.hover!r})")
            if box:
                page.mouse("mouseMoved", box["x"] + box["width"] / 3, box["y"] + 9)
            page.wait_for("document.querySelector('.d3-flame-graph-tip')?.style.opacity === '1'")
            _shoot(page, OUTPUT / "flamegraph.png", 620)
            page = browser.new_page(width=1100, height=480)
            page.open(work / "diff.html")
            _settle(page)
            box = page.evaluate(f"({FRAME_JS})('checksum')")
            page.mouse("mouseMoved", box["x"] + box["width"] / 4, box["y"] + 9)
            page.wait_for("document.querySelector('.d3-flame-graph-tip')?.style.opacity === '1'")
            _shoot(page, OUTPUT / "diff.png", 400)
        finally:
            browser.close()


if __name__ == "__main__":
    main()
