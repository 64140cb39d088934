"""The built book, served offline to a headless Chromium (for the browser tests).

The pages load MathJax 3, require.js and the widgets' HTML manager from CDNs. The machine that
tests the book may be offline, so every request goes through Playwright's router: the book's files
come from ``_build/html`` (at the made-up origin ``http://book.local``), the CDN files from npm
packages fetched once with ``npm pack`` into ``~/.cache/aelib-book`` (``$AELIB_BOOK_CACHE``), and
every other outside request is refused and listed.
"""

from __future__ import annotations

import mimetypes
import os
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
HTML = Path(os.environ.get("AELIB_BOOK_HTML") or ROOT / "_build" / "html")
SHOTS = Path(os.environ.get("AELIB_BOOK_SHOTS") or ROOT / "_build" / "screenshots")
CACHE = Path(os.environ.get("AELIB_BOOK_CACHE") or Path.home() / ".cache" / "aelib-book")
# Debian's chromium, else Google Chrome (GitHub's Ubuntu runners have it)
CHROMIUM = (
    os.environ.get("AELIB_CHROMIUM")
    or shutil.which("chromium")
    or shutil.which("google-chrome")
    or "/usr/bin/chromium"
)
ORIGIN = "http://book.local"
WIDTH, HEIGHT = 1280, 900
BUILD = "jupyter-book build . --all -W -n --keep-going"
REPORTS = pytest.StashKey[dict]()  # the pages' reports, for the terminal summary

# CDN address -> (npm package, version, path inside the package)
CDN = [
    (re.compile(r"https://cdn\.jsdelivr\.net/npm/((?:@[\w.-]+/)?[\w.-]+)@([\w.-]+)/(.+)"), None),
    (
        re.compile(
            r"https://cdnjs\.cloudflare\.com/ajax/libs/require\.js/([\w.-]+)/require(?:\.min)?\.js"
        ),
        "requirejs",
    ),
]


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


def npm_package(name: str, version: str) -> Path:
    """The folder of npm package ``name@version``, fetched once with ``npm pack`` into CACHE."""
    folder = CACHE / "npm" / f"{name.replace('/', '+')}@{version}"
    if (folder / "package" / "package.json").is_file():
        return folder / "package"
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail(
            f"npm is needed once to fetch {name}@{version} for offline pages "
            f"(apt-get install npm), or unpack its npm tarball into {folder}"
        )
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [npm, "pack", "--silent", f"{name}@{version}"], cwd=folder, capture_output=True, text=True
    )
    tarballs = list(folder.glob("*.tgz"))
    if done.returncode != 0 or len(tarballs) != 1:
        pytest.fail(f"npm pack {name}@{version} failed:\n{done.stdout}{done.stderr}")
    with tarfile.open(tarballs[0]) as tar:
        tar.extractall(folder, filter="data")
    tarballs[0].unlink()
    return folder / "package"


def cdn_file(url: str) -> Path | None:
    """The local copy of a CDN file, or None for an address no npm package serves."""
    url = url.split("?")[0].split("#")[0]
    for pattern, package in CDN:
        match = pattern.fullmatch(url)
        if not match:
            continue
        if package is None:
            name, version, path = match.groups()  # a version may be a range: mathjax@3
        else:
            name, version, path = package, match[1], "require.js"
        file = (npm_package(name, version) / path).resolve()
        return file if file.is_file() else None
    return None


class Router:
    """Answers every request of a page: the book from HTML, the CDNs from npm, nothing else."""

    def __init__(self, html: Path):
        self.html = html.resolve()
        self.refused: list[str] = []

    def __call__(self, route):
        url = route.request.url
        if url.startswith(ORIGIN + "/"):
            path = url[len(ORIGIN) + 1 :].split("?")[0].split("#")[0]
            file = (self.html / path).resolve()
            if not file.is_relative_to(self.html) or not file.is_file():
                return route.fulfill(status=404, body=f"not in the build: {path}")
            if file.suffix == ".html":
                # the local CDN copies are other builds than the CDN's: drop subresource integrity
                text = re.sub(r'\s(integrity|crossorigin)="[^"]*"', "", file.read_text("utf-8"))
                return route.fulfill(body=text, content_type="text/html; charset=utf-8")
            return route.fulfill(path=str(file))
        local = cdn_file(url)
        if local is not None:
            kind = mimetypes.guess_type(local.name)[0] or "application/octet-stream"
            return route.fulfill(
                path=str(local), content_type=kind, headers={"Access-Control-Allow-Origin": "*"}
            )
        self.refused.append(url)
        return route.abort()
