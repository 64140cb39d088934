"""Fixtures of the browser tests: the built book and a headless Chromium (see book_server.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from book_server import BUILD, CHROMIUM, HTML, REPORTS, ROOT, SHOTS


@pytest.fixture(scope="session")
def html_dir() -> Path:
    if not (HTML / "book" / "intro.html").is_file():
        pytest.fail(f"no built book in {HTML}: run `{BUILD}` first")
    return HTML


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).is_file():
        pytest.skip(
            f"SKIPPED: no Chromium at {CHROMIUM} (apt-get install chromium): "
            "the pages were NOT checked in a browser"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    return SHOTS


def pytest_terminal_summary(terminalreporter, config):
    """One line per page checked: what was seen, and where its screenshot is."""
    reports = config.stash.get(REPORTS, None)
    if reports is None or not reports.done:
        return
    write = terminalreporter.write_line
    terminalreporter.section("the book in Chromium, page by page")
    scrolling = cells = 0
    for page, r in reports.done.items():
        wide = sum(c["scrollWidth"] > c["clientWidth"] for c in r["code"])
        scrolling, cells = scrolling + wide, cells + len(r["code"])
        local = r["images"] - len(r["externalImages"])
        shot = r["screenshot"]
        shot = shot.relative_to(ROOT) if shot.is_relative_to(ROOT) else shot
        write(
            f"{page}: {r['containers']}/{r['mathCount']} formulas typeset (MathJax "
            f"{r['mathjaxVersion'] or 'not loaded'}), {local - len(r['brokenImages'])}/{local} "
            f"local images loaded, {r['widgetViews']} widgets, {wide}/{len(r['code'])} code cells "
            f"scroll sideways; {shot}"
        )
        for error in r["errors"][:3]:
            write(f"    note: JavaScript error on the page: {error.splitlines()[0][:150]}")
        if r["refused"]:
            write(f"    note: outside requests refused (offline): {sorted(set(r['refused']))[:5]}")
    write(f"code cells that scroll sideways: {scrolling} of {cells}, on {len(reports.done)} pages")
