"""Every page of the built book, as a reader sees it in Chromium at a 1280 px wide window.

Run after the build (these tests are not part of the plain ``python -m pytest``)::

    jupyter-book build . --all -W -n --keep-going
    python -m pytest tests/browser -n 0

For each page of ``_toc.yml``: the math is typeset by MathJax (no raw ``$$``, ``\\(`` or ``\\[``
left, no TeX error), every local image loaded, no widget shows as text (its Python repr or an
error) instead of being drawn, and no code cell (``div.cell_input pre``) needs a horizontal
scroll bar. Full-page screenshots go to ``_build/screenshots/``.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import pytest
from book_server import HEIGHT, ORIGIN, REPORTS, ROOT, WIDTH, Router, book_pages

MAX_SHOT_HEIGHT = 16000

HERE = Path(__file__).resolve().parent
PAGE_REPORT_JS = (HERE / "page_report.js").read_text(encoding="utf-8")
CODE_CELLS_JS = (HERE / "code_cells.js").read_text(encoding="utf-8")

PAGES = book_pages()
page_param = pytest.mark.parametrize("page", PAGES)


@cache
def notebook_cells(page: str) -> list[tuple[int, str]]:
    """(cell number counted from 1, as ruff counts, source) of the notebook behind ``page``."""
    path = ROOT / Path(page).with_suffix(".ipynb")
    if not path.is_file():
        return []
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return [(i, "".join(c["source"])) for i, c in enumerate(cells, 1) if c["cell_type"] == "code"]


def cell_number(page: str, text: str) -> int | None:
    """The notebook cell whose source is ``text`` (the code a ``pre`` shows)."""
    for number, source in notebook_cells(page):
        if source.strip() == text.strip():
            return number
    return None


class Reports:
    """Loads each page once (in a fresh tab), keeps its report and writes its screenshot."""

    def __init__(self, browser, html_dir: Path, screenshots: Path):
        self.browser, self.html_dir, self.screenshots = browser, html_dir, screenshots
        self.done: dict[str, dict] = {}

    def __call__(self, page: str, timeout_s: float = 180) -> dict:
        if page not in self.done:
            if not (self.html_dir / page).is_file():
                pytest.fail(f"{page} is in _toc.yml but not in {self.html_dir}: rebuild the book")
            self.done[page] = self.load(page, timeout_s)
        return self.done[page]

    def load(self, page: str, timeout_s: float) -> dict:
        context = self.browser.new_context(viewport={"width": WIDTH, "height": HEIGHT})
        router = Router(self.html_dir)
        context.route("**/*", router)
        tab = context.new_page()
        errors: list[str] = []
        tab.on("pageerror", lambda error: errors.append(str(error)))
        try:
            tab.goto(f"{ORIGIN}/{page}", wait_until="load", timeout=timeout_s * 1000)
            report = tab.evaluate(PAGE_REPORT_JS, int(timeout_s * 1000))
            shot = self.screenshots / f"{Path(page).stem}.png"
            height = min(max(report["height"], HEIGHT), MAX_SHOT_HEIGHT)
            tab.screenshot(
                path=str(shot),
                full_page=True,
                clip={"x": 0, "y": 0, "width": WIDTH, "height": height},
            )
            report["code"] = tab.evaluate(CODE_CELLS_JS)
        finally:
            context.close()
        # sphinx-thebe loads its script twice on every page: harmless, and not the book's doing
        report["errors"] = [e for e in errors if "THEBE_JS_URL" not in e]
        report["refused"] = router.refused
        report["screenshot"] = shot
        return report


@pytest.fixture(scope="session")
def report(browser, html_dir, screenshots, pytestconfig):
    reports = Reports(browser, html_dir, screenshots)
    pytestconfig.stash[REPORTS] = reports  # for the summary at the end (conftest.py)
    return reports


def test_every_page_of_the_toc_was_built(html_dir):
    missing = [page for page in PAGES if not (html_dir / page).is_file()]
    assert not missing, f"in _toc.yml but not built: {missing}"


@page_param
def test_math_is_typeset(report, page):
    r = report(page)
    if r["mathCount"]:
        assert r["mathjaxVersion"], (
            f"{page}: MathJax never loaded, so {r['mathCount']} math elements show raw TeX "
            f"(refused requests: {r['refused']})"
        )
        assert not r["typesetError"], f"{page}: MathJax failed: {r['typesetError']}"
        assert not r["untypeset"], (
            f"{page}: {len(r['untypeset'])} math elements not typeset, e.g. {r['untypeset'][:3]}"
        )
        assert not r["texErrors"], f"{page}: TeX errors drawn by MathJax: {r['texErrors'][:5]}"
    assert not r["rawTex"], f"{page}: raw TeX in the visible text: {r['rawTex'][:5]}"


@page_param
def test_local_images_load(report, page):
    r = report(page)
    assert not r["brokenImages"], f"{page}: images that did not load: {r['brokenImages']}"


@page_param
def test_no_widget_is_shown_as_text(report, page):
    r = report(page)
    assert not r["rawWidgets"], f"{page}: widgets shown as text, not drawn: {r['rawWidgets'][:5]}"
    assert r["widgetsDrawn"] >= r["widgetViews"], (
        f"{page}: {r['widgetViews']} widgets stored, {r['widgetsDrawn']} drawn "
        f"(refused requests: {r['refused']}; JavaScript errors: {r['errors'][:3]})"
    )


@page_param
def test_no_code_cell_scrolls_sideways(report, page):
    """At a 1280 px window a code cell's box shows about 77 characters; wider lines scroll."""
    cells = report(page)["code"]
    wide = [(i, c) for i, c in enumerate(cells, 1) if c["scrollWidth"] > c["clientWidth"]]
    if not wide:
        return
    lines = []
    for i, c in wide:
        number = cell_number(page, c["text"])
        where = f"notebook cell {number}" if number else f"code cell {i} on the page"
        longest = max(c["text"].splitlines() or [""], key=len)
        fit = int((c["clientWidth"] - c["padding"]) / c["charWidth"])
        lines.append(
            f"  {where}: {c['scrollWidth']} px of code in a {c['clientWidth']} px box "
            f"(longest line {len(longest)} characters, {fit} fit): {longest.strip()[:50]!r}"
        )
    pytest.fail(
        f"{page}: {len(wide)} of {len(cells)} code cells scroll sideways at a {WIDTH} px "
        "window (cells counted from 1, as ruff counts):\n" + "\n".join(lines),
        pytrace=False,
    )
