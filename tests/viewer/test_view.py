"""``otelprof view``: the page is one self-contained file whose embedded data is right."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Dict

from otelprof.reader import load_profiles
from otelprof.viewer import html
from otelprof.viewer.commands import main_view
from otelprof.viewer.dataset import build_document
from tests.profile_factory import START_NS, RequestFactory, S, frame, write_pb
from tests.viewer.workloads import LATE_START_NS


def _embedded(page: str) -> Dict[str, Any]:
    match = re.search(r'<script type="application/json" id="otelprof-data">(.*?)</script>', page)
    assert match, "no data element"
    return json.loads(match.group(1))


def _view(tmp_path: Path, *args: str) -> str:
    out = tmp_path / "report.html"
    assert main_view([*args, "-o", str(out)]) == 0
    return out.read_text(encoding="utf-8")


def test_page_is_self_contained(shop_profiles, tmp_path):
    page = _view(tmp_path, str(shop_profiles))
    # Nothing is fetched when the file opens: no external script, stylesheet, font or import.
    assert not re.search(r"<script[^>]+src=", page)
    assert "<link" not in page
    assert not re.search(r"@import|url\(\s*['\"]?(https?:)?//", page)
    assert "d3-flame-graph" in page  # the bundle is inline (its banner names it)
    assert page.count("<script") == 2 and page.count("</script>") == 2


def test_embedded_data_holds_types_filters_and_stacks(shop_profiles, tmp_path):
    data = _embedded(_view(tmp_path, str(shop_profiles)))
    assert data["mode"] == "view"
    assert [t["name"] for t in data["types"]] == ["cpu", "wall"]
    assert data["types"][data["defaultType"]]["name"] == "cpu"
    assert data["services"] == ["", "checkout", "search"]
    assert set(data["threads"]) == {"", "MainThread", "worker-1"}
    assert set(data["endpoints"]) == {"", "GET /checkout", "GET /search"}
    assert len(data["traces"]) == 3
    samples = data["samples"]
    assert len({len(column) for column in samples.values()}) == 1
    names = {tuple(data["functions"][f][0] for f in s) for s in data["stacks"]}
    assert ("main", "handle_request", "parse_records") in names  # root first
    # The late profile starts 30 s after the first: the page can filter it by time.
    assert data["spanSeconds"] == (LATE_START_NS - START_NS) // 10**9
    late = data["functions"].index(next(f for f in data["functions"] if f[0] == "late_cleanup"))
    seconds = {
        samples["second"][i]
        for i, stack in enumerate(samples["stack"])
        if data["stacks"][stack][-1] == late
    }
    assert seconds == {30}
    assert sum(v for t, v in zip(samples["type"], samples["value"]) if t == 0) == 1050


def test_function_names_cannot_break_out_of_the_page(tmp_path):
    evil = "</script><script>alert(1)</script>"
    factory = RequestFactory()
    factory.add_profile(samples=[S([frame(evil, 3), frame("main", 1)], 5)])
    path = write_pb(tmp_path / "evil.otlp.pb", factory.request())
    page = _view(tmp_path, str(path), "--title", "<b>t</b>")
    assert page.count("</script>") == 2
    assert "<title>&lt;b&gt;t&lt;/b&gt;</title>" in page
    assert evil in {f[0] for f in _embedded(page)["functions"]}


def test_missing_bundle_is_a_clear_error(shop_profiles, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(html, "STATIC_DIR", tmp_path / "static")
    assert main_view([str(shop_profiles), "-o", str(tmp_path / "x.html")]) == 2
    err = capsys.readouterr().err
    assert "static/viewer.js is missing" in err and "make assets" in err
    assert not (tmp_path / "x.html").exists()


def test_filters_and_type_choice_on_the_command_line(shop_profiles, tmp_path, capsys):
    data = _embedded(_view(tmp_path, str(shop_profiles), "--thread", "worker-1", "--type", "wall"))
    assert data["types"][data["defaultType"]]["name"] == "wall"
    assert data["threads"] == ["", "worker-1"]
    assert main_view([str(shop_profiles), "--type", "heap", "-o", str(tmp_path / "y")]) == 2
    assert "no 'heap' samples" in capsys.readouterr().err


def test_diff_document_marks_sides_and_merges_functions_by_name_and_file(tmp_path):
    factory = RequestFactory()
    factory.add_profile(samples=[S([frame("f", 10, start_line=5)], 4)])
    base = load_profiles([write_pb(tmp_path / "a.otlp.pb", factory.request())]).records
    factory = RequestFactory()
    factory.add_profile(samples=[S([frame("f", 20, start_line=15)], 6)])
    new = load_profiles([write_pb(tmp_path / "b.otlp.pb", factory.request())]).records
    document = build_document(
        [("base", base), ("new", new)], title="t", subtitle="s", keep_lines=False
    )
    assert document["mode"] == "diff" and document["sides"] == ["base", "new"]
    assert len(document["functions"]) == 1  # same function although its lines moved
    assert document["samples"]["side"] == [0, 1]
    assert document["samples"]["value"] == [4, 6]
