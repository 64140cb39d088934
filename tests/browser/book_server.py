"""The built book, served to a headless Chromium with no network (for the browser tests).

The pages load MathJax 3, require.js and the widgets' HTML manager from the book itself
(``_static/vendor``, put there by ``_ext/offline_assets.py``), so a reader's downloaded copy works
offline and so must the tests: every request goes through Playwright's router, the book's files
come from ``_build/html`` (at the made-up origin ``http://book.local``), and every other request
is refused and listed, with what kind of resource it was.
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import json
import os
import re
import shutil
from functools import cache
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
HTML = Path(os.environ.get("AELIB_BOOK_HTML") or ROOT / "_build" / "html")
SHOTS = Path(os.environ.get("AELIB_BOOK_SHOTS") or ROOT / "_build" / "screenshots")
# Debian's chromium, else Google Chrome (GitHub's Ubuntu runners have it)
CHROMIUM = (
    os.environ.get("AELIB_CHROMIUM")
    or shutil.which("chromium")
    or shutil.which("google-chrome")
    or "/usr/bin/chromium"
)
ORIGIN = "http://book.local"
WIDTH, HEIGHT = 1280, 900  # a laptop
PHONE_WIDTH, PHONE_HEIGHT = 390, 844  # a phone (reported, not failed)
RETINA = 1.8  # a sharp figure has at least this many image pixels per CSS pixel shown
# matplotlib's text is 10 pt at 100 dpi, 13.9 px at a figure's own size: shown at less than
# 65 % of that size it is below 9 px
MIN_SCALE = 0.65
PHONE_MIN_SCALE = 0.40  # on a phone: reported below this
BUILD = "jupyter-book build . --all -W -n --keep-going"
REPORTS = pytest.StashKey[dict]()  # the pages' reports, for the terminal summary


def book_pages() -> list[str]:
    """Every page of ``_toc.yml``, as its path under ``_build/html`` (``notebooks/01_x.html``)."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    files = [toc["root"]]

    def walk(node):
        if isinstance(node, dict):
            files.extend([node["file"]] if "file" in node else [])
            for key, value in node.items():
                if key != "file":
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk({k: v for k, v in toc.items() if k != "root"})
    return [f"{Path(f).with_suffix('')}.html" for f in files]


class Router:
    """Answers every request of a page: the book from HTML, nothing from anywhere else."""

    def __init__(self, html: Path):
        self.html = html.resolve()
        self.refused: list[tuple[str, str]] = []  # (resource type, url)

    def __call__(self, route):
        url = route.request.url
        if url.startswith(ORIGIN + "/"):
            path = url[len(ORIGIN) + 1 :].split("?")[0].split("#")[0]
            file = (self.html / path).resolve()
            if not file.is_relative_to(self.html) or not file.is_file():
                return route.fulfill(status=404, body=f"not in the build: {path}")
            return route.fulfill(path=str(file))
        self.refused.append((route.request.resource_type, url))
        return route.abort()


# ------------------------------------------------------- where a block of a page comes from


def squash(text: str) -> str:
    """``text`` without any white space (the HTML and the source wrap lines differently)."""
    return re.sub(r"\s+", "", text)


@cache
def source_of(page: str) -> Path | None:
    """The notebook or markdown file behind ``page`` (``notebooks/01_x.html``)."""
    for suffix in (".ipynb", ".md"):
        path = ROOT / Path(page).with_suffix(suffix)
        if path.is_file():
            return path
    return None


@cache
def notebook_cells(page: str) -> list[dict]:
    """The cells of the notebook behind ``page``: number (from 1, as ruff counts), type, source
    and the text of its outputs."""
    path = source_of(page)
    if path is None or path.suffix != ".ipynb":
        return []
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    found = []
    for number, cell in enumerate(cells, 1):
        outputs = []
        for out in cell.get("outputs", []):
            text = out.get("text") or out.get("data", {}).get("text/plain") or ""
            html = out.get("data", {}).get("text/html") or ""
            outputs.append("".join(text) + "".join(html))
        found.append(
            {
                "number": number,
                "type": cell["cell_type"],
                "source": "".join(cell["source"]),
                "outputs": "\n".join(outputs),
            }
        )
    return found


def code_cell_number(page: str, code: str) -> int | None:
    """The notebook cell whose source is ``code`` (the text a cell's input shows)."""
    for cell in notebook_cells(page):
        if cell["type"] == "code" and cell["source"].strip() == code.strip():
            return cell["number"]
    return None


def locate(
    page: str,
    text: str,
    *,
    cell_input: str | None = None,
    output: bool = False,
    label: str | None = None,
) -> str:
    """Where ``text`` (a formula, a code block, a table's header, an output) is in the source:
    ``notebooks/04_x.ipynb cell 31`` (counted from 1, as ruff counts) or ``book/intro.md line 88``.
    A formula's ``label`` finds its ``$$ ... $$ (label)`` block first.
    """
    path = source_of(page)
    if path is None:
        return page
    name = path.relative_to(ROOT).as_posix()
    if cell_input is not None and (number := code_cell_number(page, cell_input)):
        return f"{name} cell {number}"
    # a distinctive piece of the text, without white space and the wrappers Sphinx adds
    piece = re.sub(r"^\\begin\{(split|aligned)\}", "", squash(text))
    lines = [squash(line) for line in text.splitlines() if line.strip()]
    first = [f"$$({label})"] if label else []
    for needle in filter(None, [*first, piece[:60], piece[:25], *(lines[:1])]):
        if path.suffix == ".md":
            starts, squashed = [], ""  # where each line starts in the squashed file
            for line in path.read_text(encoding="utf-8").splitlines():
                starts.append(len(squashed))
                squashed += squash(line)
            if (at := squashed.find(needle)) >= 0:
                return f"{name} line {bisect.bisect_right(starts, at)}"
            continue
        for cell in notebook_cells(page):
            haystack = cell["outputs"] if output else cell["source"]
            if needle in squash(haystack):
                return f"{name} cell {cell['number']}"
    return f"{name} (not found there: is the build older than the file?)"


# ------------------------------------------------------------ what is measured, and where


def overflows(block: dict) -> bool:
    """Wider than its box (cut off, or a scroll bar), or past the column's right edge."""
    return block["need"] > block["have"] + 1 or block["right"] > block["columnRight"] + 1


def where(page: str, block: dict) -> str:
    """Where a measured block comes from, for a message."""
    if block["kind"] == "display math":
        label = f"eq. {block['number']} `{block['label']}`" if block["label"] else "a formula"
        return f"{label} in {locate(page, block['tex'], label=block['label'])}"
    if block["kind"] == "cell output":
        cell = locate(page, block["text"], cell_input=block["cellInput"], output=True)
        return f"the output of {cell}"
    return f"a {block['kind']} in {locate(page, block['text'])}"


def describe(page: str, block: dict) -> str:
    """One line of a failure: where the block is, its widths, and its widest line."""
    past = block["right"] - block["columnRight"]
    beyond = f", {past} px past the column's edge" if past > 1 else ""
    if block["kind"] in ("cell output", "code block"):
        longest = max(block["text"].splitlines() or [""], key=len).rstrip()
        text = f"longest line {len(longest)} characters: {longest[:60]!r}"
    else:
        text = repr(" ".join(block["text"].split())[:60])
    return (
        f"  {where(page, block)}: {block['need']} px wide in a {block['have']} px box"
        f"{beyond}; {text}"
    )


@cache
def image_hashes(page: str) -> dict[str, int]:
    """{sha256 of a stored PNG: its cell number}: myst-nb names each image by that hash."""
    path = source_of(page)
    if path is None or path.suffix != ".ipynb":
        return {}
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    found = {}
    for number, cell in enumerate(cells, 1):
        for out in cell.get("outputs", []):
            png = out.get("data", {}).get("image/png")
            if png:
                digest = hashlib.sha256(base64.b64decode("".join(png))).hexdigest()
                found[digest] = number
    return found


def image_where(page: str, image: dict) -> str:
    name = Path(image["src"]).stem
    number = image_hashes(page).get(name)
    if number is None and image["cellInput"]:
        number = code_cell_number(page, image["cellInput"])
    path = source_of(page)
    source = path.relative_to(ROOT).as_posix() if path else page
    if number:
        return f"{source} cell {number}"
    return f"{source}, {Path(image['src']).name} (not found there: is the build older?)"


def scale(image: dict) -> float:
    """The figure's width as shown over its own width (a retina PNG's ``width``)."""
    return image["shown"] / image["intended"]
