"""Hygiene of the book: every chapter notebook follows the house conventions, and the book's
table of contents, citations and equation labels hang together.

Checks another copy of the book when ``AELIB_BOOK_ROOT`` names its folder (default: this repository).
"""

from __future__ import annotations

import json
import os
import re
from functools import lru_cache
from pathlib import Path

import pytest
import yaml
from pybtex.database import parse_file

ROOT = Path(os.environ.get("AELIB_BOOK_ROOT") or Path(__file__).resolve().parents[1])
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
BOOK_PAGES = sorted((ROOT / "book").glob("*.md"))
REQUIRED_KEYS = {"seed", "goodfellow2016", "rumelhart1986", "baldi1989", "hinton2006", "vincent2008",
                 "vincent2010", "rifai2011", "ng2011", "kingma2014", "kingma2015", "lecun1998",
                 "xiao2017", "bourlard1988", "pearson1901", "eckart1936", "bishop2006",
                 "sutskever2013", "glorot2010"}

CITE = re.compile(r"\{cite(?::[a-z]+)?\}`([^`]*)`")
EQ_REF = re.compile(r"\{eq\}`([^`]*)`")
# MyST dollarmath: a label in parentheses right after the closing $$, e.g. "$$ (02-bce)".
DOLLAR_LABEL = re.compile(r"\$\$[ \t]*\(([^()\s]+)\)[ \t]*$", re.MULTILINE)
DIRECTIVE_LABEL = re.compile(r"^:label:[ \t]*(\S+)[ \t]*$", re.MULTILINE)
ADDRESS = re.compile(r"\b0x[0-9a-fA-F]{6,}\b")
TEXT_MIMES = ("text/plain", "text/html", "text/markdown", "text/latex", "application/javascript")


# ---------------------------------------------------------------- helpers

@lru_cache(maxsize=None)
def config() -> dict:
    return yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))


@lru_cache(maxsize=None)
def toc_files() -> tuple[str, ...]:
    """Every ``file:`` (and the root) of ``_toc.yml``, without suffix, in order."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    files = [toc["root"]]

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                files.append(node["file"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk({k: v for k, v in toc.items() if k != "root"})
    return tuple(str(Path(f).with_suffix("")) if Path(f).suffix in (".md", ".ipynb") else f for f in files)


@lru_cache(maxsize=None)
def bib_keys() -> frozenset[str]:
    return frozenset(parse_file(str(ROOT / "references.bib"), bib_format="bibtex").entries.keys())


@lru_cache(maxsize=None)
def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def markdown_cells(nb: dict) -> list[str]:
    return [source(c) for c in nb["cells"] if c["cell_type"] == "markdown"]


def code_cells(nb: dict) -> list[dict]:
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def output_texts(output: dict):
    """The text an output shows (images excluded: their base64 could contain anything)."""
    if output["output_type"] == "stream":
        yield "".join(output.get("text", ""))
    for mime in TEXT_MIMES:
        value = output.get("data", {}).get(mime)
        if value is not None:
            yield "".join(value) if isinstance(value, list) else str(value)


def book_texts() -> list[tuple[str, str]]:
    """(where, markdown text) for every book page and every notebook's markdown cells."""
    texts = [(str(p.relative_to(ROOT)), p.read_text(encoding="utf-8")) for p in BOOK_PAGES]
    for path in NOTEBOOKS:
        texts += [(f"{path.relative_to(ROOT)} cell {i}", source(c))
                  for i, c in enumerate(load(path)["cells"]) if c["cell_type"] == "markdown"]
    return texts


def repository() -> tuple[str, str, str, str]:
    """(url, owner, repo, branch) from ``_config.yml``."""
    repo = config()["repository"]
    url = repo["url"].rstrip("/").removesuffix(".git")
    match = re.fullmatch(r"https://github\.com/([^/]+)/([^/]+)", url)
    assert match, f"_config.yml repository.url must be https://github.com/OWNER/REPO, got {url!r}"
    return url, match[1], match[2], repo.get("branch", "main")


def expected_colab_link(path: Path) -> str:
    _, owner, repo, branch = repository()
    colab = config()["launch_buttons"]["colab_url"].rstrip("/")
    book = (config()["repository"].get("path_to_book") or "").strip("/")
    rel = f"{book}/" if book else ""
    return f"{colab}/github/{owner}/{repo}/blob/{branch}/{rel}notebooks/{path.name}"


notebook = pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])


# ---------------------------------------------------------------- each notebook

@notebook
def test_first_cell_is_the_colab_install(path):
    first = load(path)["cells"][0]
    text = source(first)
    assert first["cell_type"] == "code", "the first cell must be the Colab install code cell"
    assert "remove-cell" in first.get("metadata", {}).get("tags", []), "tag the install cell remove-cell"
    assert '"google.colab" in sys.modules' in text, "install only inside Colab"
    match = re.search(r"git\+(https://[^@\"'\s]+)@([\w./-]+)", text)
    assert match, f"no pip install of git+<url>@<branch> in the first cell:\n{text}"
    url, _, _, branch = repository()
    assert match[1].removesuffix(".git") == url, f"install URL {match[1]} differs from _config.yml {url}"
    assert match[2] == branch, f"install branch {match[2]} differs from _config.yml {branch}"


@notebook
def test_title_comes_before_other_markdown(path):
    cells = markdown_cells(load(path))
    assert cells, "no markdown cell"
    first_line = next((line for line in cells[0].splitlines() if line.strip()), "")
    assert re.match(r"# \S", first_line), f"the first markdown cell must open with '# Title', got {first_line!r}"


@notebook
def test_colab_badge_points_to_this_notebook(path):
    colab = re.escape(config()["launch_buttons"]["colab_url"].rstrip("/"))
    links = re.findall(rf"\]\(({colab}/github/[^)\s]+)\)", "\n".join(markdown_cells(load(path))))
    expected = expected_colab_link(path)
    assert links, f"no Colab badge; expected a link to {expected}"
    assert all(link == expected for link in links), f"Colab links {links} should all be {expected}"


@notebook
def test_has_summary(path):
    assert any(re.search(r"^## Summary[ \t]*$", md, re.MULTILINE) for md in markdown_cells(load(path))), \
        "no '## Summary' heading"


@notebook
def test_seeds_once(path):
    calls = sum(source(c).count("seed_everything(") for c in code_cells(load(path)))
    assert calls == 1, f"seed_everything( is called {calls} times; the setup cell should call it once"


@notebook
def test_no_stored_errors(path):
    errors = [(i, o.get("ename"), o.get("evalue")) for i, c in enumerate(load(path)["cells"])
              if c["cell_type"] == "code" for o in c.get("outputs", []) if o["output_type"] == "error"]
    assert not errors, f"stored error outputs (cell, name, value): {errors}"


@notebook
def test_outputs_come_from_a_top_to_bottom_run(path):
    cells = [(i, c) for i, c in enumerate(load(path)["cells"]) if c["cell_type"] == "code"]
    unexecuted = [i for i, c in cells if c.get("outputs") and c.get("execution_count") is None]
    assert not unexecuted, f"cells {unexecuted} have outputs but no execution count (nbval skips them)"
    counts = [c["execution_count"] for _, c in cells if c.get("execution_count") is not None]
    assert counts == sorted(set(counts)) and (not counts or counts[0] == 1), \
        f"execution counts {counts}: run the notebook top to bottom in a fresh kernel"


@notebook
def test_no_unstable_reprs(path):
    bad = []
    for i, cell in enumerate(load(path)["cells"]):
        for output in cell.get("outputs", []) if cell["cell_type"] == "code" else []:
            for text in output_texts(output):
                if ADDRESS.search(text) or "<matplotlib." in text:
                    bad.append((i, text.strip()[:120]))
    assert not bad, f"outputs with memory addresses or matplotlib reprs (cell, text): {bad}"


@notebook
def test_listed_in_toc(path):
    entry = str(path.relative_to(ROOT).with_suffix(""))
    assert entry in toc_files(), f"{entry} is not in _toc.yml"


# ---------------------------------------------------------------- the whole book

def test_toc_files_exist():
    missing = [f for f in toc_files()
               if not any((ROOT / f).with_suffix(s).is_file() for s in (".md", ".ipynb"))]
    assert not missing, f"_toc.yml lists files that do not exist: {missing}"


def test_bibliography_has_the_book_keys():
    missing = REQUIRED_KEYS - bib_keys()
    assert not missing, f"references.bib lacks {sorted(missing)}"


def test_cited_keys_exist():
    missing = [(where, key.strip()) for where, text in book_texts() for keys in CITE.findall(text)
               for key in keys.split(",") if key.strip() not in bib_keys()]
    assert not missing, f"cited but not in references.bib (where, key): {missing}"


def test_bibliography_directive_appears_once():
    where = [w for w, text in book_texts() if re.search(r"^[`:]{3,}\{bibliography\}", text, re.MULTILINE)]
    assert len(where) == 1, f"the {{bibliography}} directive should appear once, found in {where}"


def equation_labels() -> list[tuple[str, str]]:
    return [(label, where) for where, text in book_texts()
            for label in DOLLAR_LABEL.findall(text) + DIRECTIVE_LABEL.findall(text)]


def test_equation_labels_are_unique():
    seen: dict[str, str] = {}
    duplicates = []
    for label, where in equation_labels():
        if label in seen:
            duplicates.append((label, seen[label], where))
        seen.setdefault(label, where)
    assert not duplicates, f"equation labels used twice (label, first, again): {duplicates}"


def test_equation_references_resolve():
    labels = {label for label, _ in equation_labels()}
    refs = [(where, m.split("<")[-1].rstrip(">").strip()) for where, text in book_texts()
            for m in EQ_REF.findall(text)]
    missing = [(where, ref) for where, ref in refs if ref not in labels]
    assert not missing, f"{{eq}} references to unknown labels (where, label): {missing}"
