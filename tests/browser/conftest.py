"""Fixtures of the browser tests: the built book and a headless Chromium (see book_server.py)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from book_server import (
    BUILD,
    CHROMIUM,
    HTML,
    PHONE_MIN_SCALE,
    PHONE_WIDTH,
    REPORTS,
    ROOT,
    SHOTS,
    WIDTH,
    image_where,
    overflows,
    scale,
)


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
    """Per page: what was seen at 1280 px, what a phone (390 px) gets, where the screenshot is."""
    reports = config.stash.get(REPORTS, None)
    if reports is None or not reports.done:
        return
    write = terminalreporter.write_line
    terminalreporter.section(
        f"the book in Chromium, page by page ({WIDTH} px, then {PHONE_WIDTH} px)"
    )
    totals = dict(scrolling=0, cells=0, wide=0, blocks=0, phone=0, small=0, images=0)
    for page, r in reports.done.items():
        scrolling = sum(c["scrollWidth"] > c["clientWidth"] for c in r["code"])
        layout, phone = r["layout"], r["phone"]
        wide = [b for b in layout["blocks"] if overflows(b)]
        phone_wide = [b for b in phone["blocks"] if overflows(b)]
        small = [i for i in phone["images"] if i["inCell"] and scale(i) < PHONE_MIN_SCALE]
        local = r["images"] - len(r["externalImages"])
        shot = r["screenshot"]
        shot = shot.relative_to(ROOT) if shot.is_relative_to(ROOT) else shot
        for key, value in dict(
            scrolling=scrolling,
            cells=len(r["code"]),
            wide=len(wide),
            blocks=len(layout["blocks"]),
            phone=len(phone_wide),
            small=len(small),
            images=len(phone["images"]),
        ).items():
            totals[key] += value
        write(
            f"{page}: {r['containers']}/{r['mathCount']} formulas typeset (MathJax "
            f"{r['mathjaxVersion'] or 'not loaded'}), {local - len(r['brokenImages'])}/{local} "
            f"local images loaded, {r['widgetViews']} widgets; at {WIDTH} px {scrolling}/"
            f"{len(r['code'])} code cells scroll, {len(wide)}/{len(layout['blocks'])} other "
            f"blocks cut off; {shot}"
        )
        if phone_wide:
            kinds = Counter(b["kind"] for b in phone_wide)
            write(
                f"    phone: {len(phone_wide)}/{len(phone['blocks'])} blocks wider than the "
                f"{phone['column']} px column ({', '.join(f'{n} {k}' for k, n in kinds.items())})"
            )
        for image in small:
            write(
                f"    phone: {image_where(page, image)} shown at {scale(image):.0%} of its size "
                f"({image['shown']} of {image['intended']:.0f} px)"
            )
        images = {url for kind, url in r["refused"] if kind == "image"}
        if images:
            write(f"    note: outside images not loaded (offline): {sorted(images)[:3]}")
    write(
        f"at {WIDTH} px: {totals['scrolling']} of {totals['cells']} code cells scroll, "
        f"{totals['wide']} of {totals['blocks']} other blocks are cut off; at {PHONE_WIDTH} px: "
        f"{totals['phone']} of {totals['blocks']} blocks are wider than the column, "
        f"{totals['small']} of {totals['images']} figures shown below "
        f"{PHONE_MIN_SCALE:.0%} of their size; {len(reports.done)} pages"
    )
