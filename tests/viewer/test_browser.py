"""Reports in headless Chromium: drawn, searched, zoomed, switched, filtered; the diff in red."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Dict, Iterator, Tuple

import pytest

from otelprof.viewer.commands import main_diff, main_view
from tests.profile_factory import TRACE_A
from tests.viewer.cdp import Browser, Page
from tests.viewer.png import decode

pytestmark = pytest.mark.browser

FRAMES_JS = """(() => {
  const out = {};
  for (const g of document.querySelectorAll('#chart svg g.frame')) {
    const rect = g.querySelector('rect');
    const box = rect.getBoundingClientRect();
    out[g.getAttribute('name')] = {x: box.x, y: box.y, width: box.width, height: box.height,
                                   fill: rect.getAttribute('fill')};
  }
  return out;
})()"""
SVG_BOX_JS = """(() => { const b = document.querySelector('#chart svg').getBoundingClientRect();
  return {x: b.x, y: b.y, width: b.width, height: b.height}; })()"""


def _report(tmp_path: Path, shop_profiles: Path) -> Path:
    out = tmp_path / "report.html"
    assert main_view([str(shop_profiles), "-o", str(out)]) == 0
    return out


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    tab = browser.new_page()
    yield tab
    errors = [
        e
        for e in browser.events
        if e.get("sessionId") == tab.session and e["method"] == "Runtime.exceptionThrown"
    ]
    assert not errors, f"JavaScript errors: {errors}"


def _open(page: Page, path: Path) -> None:
    page.open(path)
    page.wait_for("document.body.dataset.rendered", "the first render")
    # New frames grow to their width in a short transition: wait until the root spans the graph.
    width = page.evaluate(SVG_BOX_JS)["width"]
    page.wait_until(
        lambda: _frames(page).get("all", {}).get("width", 0) > 0.99 * width, "the drawing"
    )


def _frames(page: Page) -> Dict[str, Dict[str, Any]]:
    frames: Dict[str, Dict[str, Any]] = page.evaluate(FRAMES_JS)
    return frames


def _visible(page: Page, name: str) -> bool:
    frame = _frames(page).get(name)
    return frame is not None and frame["width"] >= 1


def _centre(frame: Dict[str, Any]) -> Tuple[float, float]:
    return frame["x"] + frame["width"] / 2, frame["y"] + frame["height"] / 2


def _choose(page: Page, select_id: str, label: str) -> None:
    """Pick the option with this text in a <select>, as a user does (fires 'change')."""
    page.evaluate(
        f"""(() => {{ const s = document.getElementById({json.dumps(select_id)});
        const o = [...s.options].find(o => o.textContent === {json.dumps(label)});
        s.value = o.value; s.dispatchEvent(new Event('change')); }})()"""
    )


def _set_input(page: Page, input_id: str, text: str) -> None:
    page.evaluate(f"document.getElementById({json.dumps(input_id)}).value = ''")
    page.type_text(f"#{input_id}", text)
    page.evaluate(
        f"document.getElementById({json.dumps(input_id)}).dispatchEvent(new Event('change'))"
    )


def _pixel(page: Page, x: float, y: float) -> Tuple[int, ...]:
    image = decode(page.screenshot({"x": int(x), "y": int(y), "width": 1, "height": 1}))
    return image[0][0][:3]


def _coloured(pixel: Tuple[int, ...]) -> bool:
    return max(pixel) - min(pixel) > 40


def test_flame_graph_renders_and_draws_pixels(page, tmp_path, shop_profiles):
    _open(page, _report(tmp_path, shop_profiles))
    page.wait_until(
        lambda: (
            {"all", "main", "handle_request", "parse_records", "checksum"} <= set(_frames(page))
        ),
        "the cpu frames",
    )
    svg = page.evaluate(SVG_BOX_JS)
    shot = page.screenshot(svg)
    (tmp_path / "view.png").write_bytes(shot)
    image = decode(shot)
    pixels = [p for row in image for p in row]
    coloured = sum(1 for p in pixels if _coloured(p))
    assert coloured > 0.05 * len(pixels), f"only {coloured} of {len(pixels)} pixels drawn"
    # The root bar spans the whole width, drawn in colour.
    root = _frames(page)["all"]
    row = image[int(root["y"] - svg["y"] + root["height"] / 2)]
    assert sum(1 for p in row if _coloured(p)) > 0.95 * len(row)
    # Widths follow the values: parse_records 600 of 1050, checksum 300.
    frames = _frames(page)
    assert frames["parse_records"]["width"] == pytest.approx(
        2 * frames["checksum"]["width"], rel=0.02
    )
    assert frames["all"]["width"] * 600 / 1050 == pytest.approx(
        frames["parse_records"]["width"], rel=0.02
    )


def test_search_highlights_a_known_function(page, tmp_path, shop_profiles):
    _open(page, _report(tmp_path, shop_profiles))
    page.type_text("#search", "checks")
    page.wait_until(lambda: _frames(page)["checksum"]["fill"] == "#E600E6", "the highlight")
    frames = _frames(page)
    assert frames["parse_records"]["fill"] != "#E600E6"
    r, g, b = _pixel(page, *_centre(frames["checksum"]))
    assert r > 200 and b > 200 and g < 90, (r, g, b)
    details = page.evaluate("document.getElementById('details').textContent")
    assert details.startswith('search "checks": 1 frames, 28.6% of'), details


def test_click_zooms_and_reset_restores(page, tmp_path, shop_profiles):
    _open(page, _report(tmp_path, shop_profiles))
    svg = page.evaluate(SVG_BOX_JS)
    handle = _frames(page)["handle_request"]
    assert handle["width"] < 0.9 * svg["width"]
    page.click(*_centre(handle))
    page.wait_until(
        lambda: (
            _frames(page)["handle_request"]["width"] > 0.99 * svg["width"]
            and not _visible(page, "idle_poll")
        ),
        "the zoom into handle_request",
    )
    page.click(
        *_centre(page.evaluate("document.getElementById('reset').getBoundingClientRect().toJSON()"))
    )
    page.wait_until(lambda: _visible(page, "idle_poll"), "the zoom reset")


def test_profile_type_switch_redraws_with_the_other_type(page, tmp_path, shop_profiles):
    _open(page, _report(tmp_path, shop_profiles))
    assert not _visible(page, "sleep_wait")
    _choose(page, "type", "wall (nanoseconds)")
    page.wait_until(lambda: _visible(page, "sleep_wait"), "the wall flame graph")
    page.wait_until(lambda: not _visible(page, "checksum"), "cpu-only frames to go")
    _choose(page, "type", "cpu (nanoseconds)")
    page.wait_until(lambda: _visible(page, "checksum") and not _visible(page, "sleep_wait"), "cpu")


@pytest.mark.parametrize(
    ("control", "value", "kept", "gone"),
    [
        ("thread", "worker-1", "checksum", "parse_records"),
        ("endpoint", "GET /checkout", "parse_records", "checksum"),
        ("service", "search", "late_cleanup", "parse_records"),
        ("trace", TRACE_A.hex(), "parse_records", "checksum"),
        ("from", "20", "late_cleanup", "parse_records"),
        ("to", "10", "parse_records", "late_cleanup"),
    ],
)
def test_filters(page, tmp_path, shop_profiles, control, value, kept, gone):
    _open(page, _report(tmp_path, shop_profiles))
    assert _visible(page, kept) and _visible(page, gone)
    if control in ("thread", "endpoint", "service"):
        _choose(page, control, value)
    else:
        _set_input(page, control, value)
    page.wait_until(lambda: not _visible(page, gone), f"{gone} to be filtered out")
    assert _visible(page, kept)


def test_hover_shows_self_total_and_file_line(page, tmp_path, shop_profiles):
    _open(page, _report(tmp_path, shop_profiles))
    x, y = _centre(_frames(page)["handle_request"])
    page.mouse("mouseMoved", x, y)
    expected = "handle_request  shop/app.py:15  self 0 (0.0%)  total 900ns (85.7%)"
    page.wait_for(f"document.getElementById('details').textContent === {json.dumps(expected)}")
    tip = page.evaluate("document.querySelector('.d3-flame-graph-tip').textContent")
    assert tip == expected
    x, y = _centre(_frames(page)["checksum"])
    page.mouse("mouseMoved", x, y)
    page.wait_for(
        "document.getElementById('details').textContent.startsWith("
        "'checksum  shop/parse.py:58  self 300ns (28.6%)')"
    )


def _rgb(fill: str) -> Tuple[int, int, int]:
    match = re.fullmatch(r"rgb\((\d+),(\d+),(\d+)\)", fill.replace(" ", ""))
    assert match, fill
    r, g, b = (int(v) for v in match.groups())
    return r, g, b


def test_diff_page_shows_the_regressed_function_in_red(page, tmp_path, release_runs):
    out = tmp_path / "diff.html"
    assert main_diff([str(release_runs["v1"]), str(release_runs["v2"]), "-o", str(out)]) == 0
    _open(page, out)
    page.wait_until(lambda: {"checksum", "parse_records"} <= set(_frames(page)), "the diff frames")
    frames = _frames(page)
    r, g, b = _rgb(frames["checksum"]["fill"])
    assert r == 255 and g < 128 and b < 128, frames["checksum"]
    r, g, b = _rgb(frames["parse_records"]["fill"])
    assert b == 255 and r < 160 and g < 160, frames["parse_records"]
    # What a person sees: red pixels on checksum, blue on parse_records.
    r, g, b = _pixel(page, *_centre(frames["checksum"]))
    assert r > 200 and g < 150 and b < 150, (r, g, b)
    r, g, b = _pixel(page, *_centre(frames["parse_records"]))
    assert b > 200 and r < 190, (r, g, b)
    first = page.evaluate("document.querySelector('#changes tr.grew').textContent")
    assert "checksum" in first and first.startswith("+")
