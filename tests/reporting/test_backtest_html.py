"""The backtest's page: one self-contained HTML file with two embedded PNG plots, and its JSON, written atomically."""

from __future__ import annotations

import base64
import json
import re

import pytest

from engine.reporting.backtest_html import backtest_report, render_html, write_backtest
from tests import cdnow


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    pytest.importorskip("matplotlib")
    users, events = cdnow.tables()
    out = tmp_path_factory.mktemp("bt") / "page"
    r = backtest_report(users, events, out_dir=out, as_of=cdnow.AS_OF, horizon_days=30, activity="purchase")
    return r, out


def test_the_page_embeds_two_pngs_and_needs_no_other_file(result):
    r, out = result
    assert r["page"] == str(out / "index.html")
    page = (out / "index.html").read_text(encoding="utf-8")
    srcs = re.findall(r'<img[^>]* src="([^"]+)"', page)
    assert len(srcs) == 2 and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert base64.b64decode(srcs[0].split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert not re.search(r'(src|href)="(?!data:)[^"#]', page)  # nothing fetched from elsewhere
    saved = json.loads((out / "backtest.json").read_text())
    assert saved["users"] == r["users"] == 2357 and saved["auc"] == pytest.approx(r["auc"])


def test_rewriting_replaces_the_directory_whole(result, tmp_path):
    r, _ = result
    out = tmp_path / "bt"
    out.mkdir()
    (out / "stale.txt").write_text("old")
    assert write_backtest(r, out) == out / "index.html"
    assert sorted(p.name for p in out.iterdir()) == ["backtest.json", "index.html"]


def test_render_html_takes_given_plots(result):
    r, _ = result
    page = render_html(r, plots={"calibration": "data:image/png;base64,AAAA", "gains": "data:image/png;base64,BBBB"})
    assert page.lstrip().lower().startswith("<!doctype html>")
    assert "data:image/png;base64,AAAA" in page and "data:image/png;base64,BBBB" in page


def _browser() -> str | None:
    import shutil

    return next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)


def test_the_page_renders_in_a_headless_browser(result, tmp_path):
    # given the page and a headless Chromium (skipped where none is installed, e.g. apt-get install chromium)
    browser = _browser()
    if browser is None:
        pytest.skip("no headless Chromium on PATH")
    import subprocess

    _, out = result
    page = (out / "index.html").read_text(encoding="utf-8")
    probe = ("<script>addEventListener('load', () => { document.body.dataset.images = [...document.images]"
             ".map(i => i.complete && i.naturalWidth > 0 ? i.id : '').join(','); "
             "document.body.dataset.tables = document.querySelectorAll('table tbody tr').length; });</script>")
    copy = tmp_path / "index.html"
    copy.write_text(page.replace("</body>", probe + "</body>"), encoding="utf-8")
    # when Chromium loads it from disk and runs its scripts
    done = subprocess.run([browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000",
                           "--dump-dom", copy.as_uri()], capture_output=True, text=True, timeout=120)
    # then both plots decoded as images and the tables have rows
    dom = done.stdout
    images = re.search(r'data-images="([^"]*)"', dom)
    assert images is not None, done.stderr[-2000:]
    assert sorted(images.group(1).split(",")) == ["calibration-plot", "gains"]
    assert int(re.search(r'data-tables="(\d+)"', dom).group(1)) >= 15
