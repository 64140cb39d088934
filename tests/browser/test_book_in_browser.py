"""Every page of the built book, as a reader sees it in Chromium, with no network.

Run after the build (these tests are not part of the plain ``python -m pytest``)::

    jupyter-book build . --all -W -n --keep-going
    python -m pytest tests/browser -n 0 -p no:cacheprovider

Each page of ``_toc.yml`` is opened once at a 1280 px wide window, then narrowed to 390 px (a
phone). At 1280 px:

- the math is typeset by MathJax (no raw ``$$``, ``\\(`` or ``\\[`` left, no TeX error), from the
  book's own copy of MathJax: nothing but the book is reachable, and only images (the Colab
  badge) may be asked for elsewhere;
- the console is clean: no JavaScript error, no failed load;
- every local image loaded, and no widget shows as text (its Python repr or an error);
- nothing is cut off on the right or needs a scroll bar: code cells, display math, cell outputs,
  code blocks and tables of the markdown;
- the notebooks' figures are sharp (a retina PNG, at least 1.8 times as many pixels as shown),
  not shrunk so far that their text drops below about 9 px, and have alt text.

At 390 px the same blocks and figures are measured and reported in the summary, not failed.
A failure names the page, where the block is in the source (``notebooks/04_x.ipynb cell 31``,
cells counted from 1 as ruff counts, with the equation's label; ``book/intro.md line 88``) and
the widths. A last test opens a copy of ``_build/html`` from disk (``file://``) with the network
cut off and checks that its math is typeset. Full-page screenshots go to ``_build/screenshots/``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from book_server import (
    HEIGHT,
    MIN_SCALE,
    ORIGIN,
    PHONE_HEIGHT,
    PHONE_WIDTH,
    REPORTS,
    RETINA,
    WIDTH,
    Router,
    book_pages,
    code_cell_number,
    describe,
    image_where,
    overflows,
    scale,
)

MAX_SHOT_HEIGHT = 16000

HERE = Path(__file__).resolve().parent
PAGE_REPORT_JS = (HERE / "page_report.js").read_text(encoding="utf-8")
CODE_CELLS_JS = (HERE / "code_cells.js").read_text(encoding="utf-8")
LAYOUT_JS = (HERE / "layout.js").read_text(encoding="utf-8")

PAGES = book_pages()
page_param = pytest.mark.parametrize("page", PAGES)


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
        console: list[tuple[str, str]] = []  # (text, url of the resource or script)
        tab.on("pageerror", lambda error: errors.append(str(error)))
        tab.on(
            "console",
            lambda m: m.type == "error" and console.append((m.text, m.location.get("url", ""))),
        )
        try:
            tab.goto(f"{ORIGIN}/{page}", wait_until="load", timeout=timeout_s * 1000)
            report = tab.evaluate(PAGE_REPORT_JS, int(timeout_s * 1000))
            shot = self.screenshots / f"{Path(page).stem}.jpg"  # JPEG: about twice as fast
            height = min(max(report["height"], HEIGHT), MAX_SHOT_HEIGHT)
            tab.screenshot(
                path=str(shot),
                type="jpeg",
                quality=85,
                full_page=True,
                clip={"x": 0, "y": 0, "width": WIDTH, "height": height},
            )
            report["code"] = tab.evaluate(CODE_CELLS_JS)
            report["layout"] = tab.evaluate(LAYOUT_JS)
            tab.set_viewport_size({"width": PHONE_WIDTH, "height": PHONE_HEIGHT})
            tab.evaluate("() => new Promise((r) => setTimeout(r, 100))")
            report["phone"] = tab.evaluate(LAYOUT_JS)
        finally:
            context.close()
        report["errors"] = errors
        report["refused"] = router.refused
        images = {url for kind, url in router.refused if kind == "image"}
        # an image refused here (the Colab badge) fails to load: that is the test's doing
        report["console"] = [(t, url) for t, url in console if url not in images]
        report["screenshot"] = shot
        return report


@pytest.fixture(scope="session")
def report(browser, html_dir, screenshots, pytestconfig):
    reports = Reports(browser, html_dir, screenshots)
    pytestconfig.stash[REPORTS] = reports  # for the summary at the end (conftest.py)
    return reports


# -------------------------------------------------------------------------------- the tests


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
def test_nothing_but_images_is_asked_of_the_network(report, page):
    """Scripts, styles and fonts come from the book (a downloaded copy works offline)."""
    refused = [(kind, url) for kind, url in report(page)["refused"] if kind != "image"]
    assert not refused, f"{page} asks the network for: {refused[:5]} (see _ext/offline_assets.py)"


@page_param
def test_console_is_clean(report, page):
    r = report(page)
    problems = [f"  JavaScript error: {e.splitlines()[0][:200]}" for e in r["errors"]]
    problems += [f"  console error: {text[:200]} ({url})" for text, url in r["console"]]
    if problems:
        pytest.fail(f"{page}: the browser's console shows:\n" + "\n".join(problems), False)


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
        number = code_cell_number(page, c["text"])
        place = f"notebook cell {number}" if number else f"code cell {i} on the page"
        longest = max(c["text"].splitlines() or [""], key=len)
        fit = int((c["clientWidth"] - c["padding"]) / c["charWidth"])
        lines.append(
            f"  {place}: {c['scrollWidth']} px of code in a {c['clientWidth']} px box "
            f"(longest line {len(longest)} characters, {fit} fit): {longest.strip()[:50]!r}"
        )
    pytest.fail(
        f"{page}: {len(wide)} of {len(cells)} code cells scroll sideways at a {WIDTH} px "
        "window (cells counted from 1, as ruff counts):\n" + "\n".join(lines),
        pytrace=False,
    )


@page_param
def test_nothing_is_cut_off(report, page):
    """Display math, cell outputs, markdown code blocks and tables fit the column at 1280 px."""
    layout = report(page)["layout"]
    wide = [b for b in layout["blocks"] if overflows(b)]
    if wide:
        pytest.fail(
            f"{page}: {len(wide)} of {len(layout['blocks'])} blocks are cut off or need a "
            f"scroll bar at a {WIDTH} px window (column {layout['column']} px; cells counted "
            "from 1, as ruff counts):\n" + "\n".join(describe(page, b) for b in wide),
            pytrace=False,
        )


@page_param
def test_figures_are_sharp_and_readable(report, page):
    """Retina PNGs, not shrunk below ~65 % of their own size (matplotlib's text under 9 px)."""
    problems = []
    for image in report(page)["layout"]["images"]:
        if image["src"].endswith(".svg"):
            continue
        ratio = image["naturalWidth"] / image["shown"]
        if ratio < RETINA:
            problems.append(
                f"  {image_where(page, image)}: {image['naturalWidth']} px of image shown "
                f"{image['shown']} px wide ({ratio:.2f} per px, needs {RETINA}: "
                '%config InlineBackend.figure_format = "retina")'
            )
        if image["inCell"] and scale(image) < MIN_SCALE:
            problems.append(
                f"  {image_where(page, image)}: made {image['intended']:.0f} px wide, shown at "
                f"{image['shown']} px ({scale(image):.0%}): its 10-pt text is "
                f"{13.9 * scale(image):.1f} px (make it narrower, at most about 7 inches)"
            )
    if problems:
        pytest.fail(f"{page}: figures at a {WIDTH} px window:\n" + "\n".join(problems), False)


@page_param
def test_figures_have_alt_text(report, page):
    """A screen reader reads the alt text; without one, myst-nb writes the image's file name."""
    missing = [
        image_where(page, image)
        for image in report(page)["layout"]["images"]
        if not image["alt"].strip() or Path(image["alt"]).name == Path(image["src"]).name
    ]
    if missing:
        pytest.fail(
            f"{page}: {len(missing)} figures without alt text (a cell's metadata "
            '"mystnb": {"image": {"alt": "..."}}):\n' + "\n".join(f"  {m}" for m in missing),
            False,
        )


def test_a_downloaded_copy_renders_its_math_offline(browser, html_dir, tmp_path):
    """``_build/html`` copied elsewhere and opened from disk, with the network cut off."""
    copy = tmp_path / "html"
    shutil.copytree(html_dir, copy)
    pages = [p for p in ("book/notation.html", "notebooks/07_latent_explorer.html") if p in PAGES]
    context = browser.new_context(viewport={"width": WIDTH, "height": HEIGHT}, offline=True)
    asked: list[str] = []

    def only_files(route):
        if route.request.url.startswith("file://"):
            return route.continue_()
        asked.append(route.request.url)
        return route.abort()

    context.route("**/*", only_files)
    try:
        for page in pages:
            tab = context.new_page()
            tab.goto((copy / page).as_uri(), wait_until="load")
            r = tab.evaluate(PAGE_REPORT_JS, 60_000)
            assert r["mathCount"] and r["mathjaxVersion"], f"{page}: MathJax did not load offline"
            assert not r["untypeset"] and not r["texErrors"], (
                f"{page} offline: {len(r['untypeset'])} formulas not typeset, "
                f"TeX errors {r['texErrors'][:3]}"
            )
            assert r["widgetsDrawn"] >= r["widgetViews"], f"{page} offline: widgets not drawn"
            tab.close()
    finally:
        context.close()
    scripts = [url for url in asked if not url.endswith((".svg", ".png"))]
    assert not scripts, f"the offline copy asked the network for {scripts[:5]}"
