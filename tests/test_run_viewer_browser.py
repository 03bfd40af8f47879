"""The run viewer's page in a real browser: it renders, logs no error, sorts, shows Chinese.

Needs Chromium (``apt-get install -y chromium fonts-wqy-microhei``); skipped without it, failed
instead where ``RAFTKIT_REQUIRE_EXTRAS=1`` (CI installs it). Set ``RAFTKIT_SCREENSHOT_DIR`` to
keep the screenshot for a look.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from browser import (
    INSTALL,
    Browser,
    chromium_or_skip,
    fonts_covering,
    open_browser,
    png_size,
    skip_or_fail,
)
from raftkit.cli import main
from viewer_support import make_simulated_run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = make_simulated_run(tmp_path_factory.mktemp("browser"))
    assert main(["show", str(run), "--sample", "40"]) == 0
    return run / "report.html"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with open_browser(chromium_or_skip()) as b:
        yield b


def test_the_error_check_sees_errors(browser: Browser) -> None:
    """The harness itself: a page that logs and throws is caught, so silence means something."""
    load = browser.load(
        "data:text/html,<script>console.error('boom');throw new Error('bang')</script>"
    )
    errors = load.errors()
    assert any("boom" in e for e in errors)
    assert any("bang" in e for e in errors)


def test_the_page_renders_without_errors(browser: Browser, page: Path) -> None:
    load = browser.load(page.as_uri())
    assert load.errors() == []
    # the data's <script> and markup stayed text: only the page's own script exists
    assert browser.evaluate("document.scripts.length") == 1
    assert browser.evaluate("document.body.innerText.includes(\"<script>alert('notes')\")")
    assert browser.evaluate("document.querySelector('.banner').innerText").startswith("SIMULATED")
    assert browser.evaluate("document.querySelectorAll('article.ex').length") > 10
    assert browser.evaluate("document.querySelectorAll('.doc.oracle mark').length") > 10
    assert browser.evaluate("document.querySelectorAll('svg rect').length") > 10

    # the coverage table sorts: click "examples" twice for descending order
    column = browser.evaluate(
        "(function () { var t = document.querySelector('#coverage ~ div table');"
        " var h = t.tHead.rows[0].cells; for (var i = 0; i < h.length; i++)"
        " { if (h[i].textContent === 'examples') { h[i].click(); h[i].click(); return i; } } })()"
    )
    counts = browser.evaluate(
        "[].map.call(document.querySelector('#coverage ~ div table').tBodies[0].rows,"
        f" function (r) {{ return parseInt(r.cells[{column}].textContent.replace(/,/g, '')); }})"
    )
    assert len(counts) == 4
    assert counts == sorted(counts, reverse=True)

    shot = browser.screenshot()
    width, height = png_size(shot)
    assert width == 1280
    assert height > 2000
    assert len(shot) > 50_000
    keep = os.environ.get("RAFTKIT_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        (Path(keep) / "run-viewer.png").write_bytes(shot)


def test_chinese_text_is_drawn_with_a_font_that_has_its_glyphs(
    browser: Browser, page: Path
) -> None:
    if shutil.which("fc-list") is None or not fonts_covering("蝙"):
        skip_or_fail(f"no font on this machine draws Chinese: {INSTALL}")
    browser.load(page.as_uri())
    question = browser.evaluate(
        "(function () { var q = [].find.call(document.querySelectorAll('p.q'), function (p) {"
        " return /[\\u4e00-\\u9fff]/.test(p.textContent); }); q.id = 'cjk';"
        " return q.textContent; })()"
    )
    assert re.search(r"[\u4e00-\u9fff]", question)
    han = next(c for c in question if "\u4e00" <= c <= "\u9fff")
    used = {font["familyName"] for font in browser.fonts_of("#cjk")}
    assert used & fonts_covering(han), f"{used} has no glyph for {han!r}: the page shows boxes"
