"""Serve MathJax 3, require.js and the widgets' HTML manager from the built book, not from CDNs.

Sphinx loads MathJax from cdn.jsdelivr.net and myst-nb loads require.js and
``@jupyter-widgets/html-manager`` from CDNs, so a downloaded copy of ``_build/html`` shows raw TeX
and no widgets without a network. This extension copies the three npm packages' files into
``_build/html/_static/vendor/`` and points ``mathjax_path`` and ``nb_ipywidgets_js`` at them.

The packages are not committed: each is fetched once with ``npm pack`` into
``$AELIB_BOOK_CACHE/npm/`` (default ``~/.cache/aelib-book/npm/``), the folder the browser tests
used before. A build without npm and without that cache keeps the CDN addresses and says so in a
warning, which ``-W`` turns into a failed build.

It also fixes what the manager gets wrong on these pages (``widgets-offline.js``, beside this
file): it typesets widget labels through MathJax 2's ``MathJax.Hub.Queue`` (the book runs
MathJax 3), and its webpack bundle looks for its font files next to the address require.js
gives its module, which is the page's own folder unless require.js is told where the manager
lives.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
from pathlib import Path

from sphinx.util import logging

logger = logging.getLogger(__name__)

CACHE = Path(os.environ.get("AELIB_BOOK_CACHE") or Path.home() / ".cache" / "aelib-book") / "npm"
VENDOR = "vendor"  # under _static

MATHJAX = ("mathjax", "3.2.2")
REQUIREJS = ("requirejs", "2.3.7")
HTML_MANAGER = ("@jupyter-widgets/html-manager", "1.0.6")  # the version myst-nb 1.x loads

FONTS = (".woff2", ".woff", ".ttf")  # what browsers of today ask for (not .eot, .svg)

# (package, path in the package, path under _static/vendor): a folder is copied whole
FILES = [
    (MATHJAX, "es5/tex-mml-chtml.js", "mathjax/tex-mml-chtml.js"),
    # fonts, TeX extensions loaded on demand (autoload), the menu and its accessibility tools
    *((MATHJAX, f"es5/{d}", f"mathjax/{d}") for d in ("output", "input", "ui", "a11y", "sre")),
    (MATHJAX, "LICENSE", "mathjax/LICENSE"),
    (REQUIREJS, "require.js", "requirejs/require.js"),
    (HTML_MANAGER, "dist/embed-amd.js", "html-manager/embed-amd.js"),
    (HTML_MANAGER, "LICENSE", "html-manager/LICENSE"),
]


def npm_package(name: str, version: str) -> Path | None:
    """The unpacked folder of npm package ``name@version``, fetched once into CACHE."""
    folder = CACHE / f"{name.replace('/', '+')}@{version}"
    if (folder / "package" / "package.json").is_file():
        return folder / "package"
    npm = shutil.which("npm")
    if npm is None:
        logger.warning(
            f"offline_assets: no npm to fetch {name}@{version} once (apt-get install npm), and "
            f"no copy in {folder}: the pages load it from a CDN",
            type="offline_assets",
        )
        return None
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [npm, "pack", "--silent", f"{name}@{version}"], cwd=folder, capture_output=True, text=True
    )
    tarballs = list(folder.glob("*.tgz"))
    if done.returncode != 0 or len(tarballs) != 1:
        logger.warning(
            f"offline_assets: `npm pack {name}@{version}` failed (offline?), so the pages load it "
            f"from a CDN: {(done.stdout + done.stderr).strip()[-300:]}",
            type="offline_assets",
        )
        return None
    with tarfile.open(tarballs[0]) as tar:
        tar.extractall(folder, filter="data")
    tarballs[0].unlink()
    return folder / "package"


def copy(source: Path, target: Path) -> None:
    """Copy a file or a folder to ``target``, skipping files already there (same size and time)."""
    files = [source] if source.is_file() else sorted(p for p in source.rglob("*") if p.is_file())
    for file in files:
        dest = target if source.is_file() else target / file.relative_to(source)
        old, new = (dest.stat() if dest.is_file() else None), file.stat()
        if old and (old.st_size, old.st_mtime_ns) == (new.st_size, new.st_mtime_ns):
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(file, dest)


def config_inited(app, config) -> None:
    packages = {p: npm_package(*p) for p in (MATHJAX, REQUIREJS, HTML_MANAGER)}
    app.offline_packages = packages
    if packages[MATHJAX] is not None:
        config.mathjax_path = f"{VENDOR}/mathjax/tex-mml-chtml.js"
    if packages[REQUIREJS] is not None and packages[HTML_MANAGER] is not None:
        manager = "https://cdn.jsdelivr.net/npm/"  # only for widget modules the manager lacks
        config.nb_ipywidgets_js = {
            f"{VENDOR}/requirejs/require.js": {},
            f"{VENDOR}/widgets-offline.js": {},
            f"{VENDOR}/html-manager/embed-amd.js": {"data-jupyter-widgets-cdn": manager},
        }


def builder_inited(app) -> None:
    """Copy the files before the pages are written (so their links carry a checksum)."""
    if app.builder.format != "html":
        return
    static = Path(app.outdir) / "_static" / VENDOR
    for package, path, target in FILES:
        root = app.offline_packages.get(package)
        if root is not None:
            copy(root / path, static / target)
    manager = app.offline_packages.get(HTML_MANAGER)
    if manager is not None:
        copy(Path(__file__).with_name("widgets-offline.js"), static / "widgets-offline.js")
        for font in (manager / "dist").iterdir():
            if font.suffix in FONTS:
                copy(font, static / "html-manager" / font.name)


def setup(app):
    # after myst-parser/myst-nb have set their defaults, before myst-nb reads its configuration
    app.connect("config-inited", config_inited, priority=900)
    app.connect("builder-inited", builder_inited)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
