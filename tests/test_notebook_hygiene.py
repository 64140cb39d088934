"""Hygiene of the book: every chapter notebook follows the house conventions, and the book's
table of contents, citations and equation labels hang together.

Checks another copy of the book when ``AELIB_BOOK_ROOT`` names its folder (default: this
repository).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import sys
from functools import cache
from pathlib import Path

import pytest
import yaml
from pybtex.database import parse_file

ROOT = Path(os.environ.get("AELIB_BOOK_ROOT") or Path(__file__).resolve().parents[1])
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
BOOK_PAGES = sorted((ROOT / "book").glob("*.md"))
REQUIRED_KEYS = {
    "seed",
    "goodfellow2016",
    "rumelhart1986",
    "baldi1989",
    "hinton2006",
    "vincent2008",
    "vincent2010",
    "rifai2011",
    "ng2011",
    "kingma2014",
    "kingma2015",
    "lecun1998",
    "xiao2017",
    "bourlard1988",
    "pearson1901",
    "eckart1936",
    "bishop2006",
    "sutskever2013",
    "glorot2010",
}

CITE = re.compile(r"\{cite(?::[a-z]+)?\}`([^`]*)`")
EQ_REF = re.compile(r"\{eq\}`([^`]*)`")
# MyST dollarmath: a label in parentheses right after the closing $$, e.g. "$$ (02-bce)".
DOLLAR_LABEL = re.compile(r"\$\$[ \t]*\(([^()\s]+)\)[ \t]*$", re.MULTILINE)
DIRECTIVE_LABEL = re.compile(r"^:label:[ \t]*(\S+)[ \t]*$", re.MULTILINE)
ADDRESS = re.compile(r"\b0x[0-9a-fA-F]{6,}\b")
COLAB_LINK = re.compile(r"(https://colab\.research\.google\.com/github/[^)\s]+)")
TEXT_MIMES = ("text/plain", "text/html", "text/markdown", "text/latex", "application/javascript")


# ---------------------------------------------------------------- helpers


@cache
def config() -> dict:
    return yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))


@cache
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
    return tuple(
        str(Path(f).with_suffix("")) if Path(f).suffix in (".md", ".ipynb") else f for f in files
    )


@cache
def bib_keys() -> frozenset[str]:
    return frozenset(parse_file(str(ROOT / "references.bib"), bib_format="bibtex").entries.keys())


@cache
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
        texts += [
            (f"{path.relative_to(ROOT)} cell {i}", source(c))
            for i, c in enumerate(load(path)["cells"])
            if c["cell_type"] == "markdown"
        ]
    return texts


def stamp_script():
    """``scripts/set_repository.py``, which defines the install cell and the links it stamps."""
    path = Path(__file__).resolve().parents[1] / "scripts" / "set_repository.py"
    spec = importlib.util.spec_from_file_location("set_repository", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("set_repository", module)
    spec.loader.exec_module(module)
    return module


SET_REPOSITORY = stamp_script()


@cache
def repository():
    """The repository setting of ``_config.yml`` (url, owner, name, ref)."""
    return SET_REPOSITORY.read_setting(ROOT)


notebook = pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])


# ---------------------------------------------------------------- each notebook


@notebook
def test_first_cell_is_the_colab_install(path):
    first = load(path)["cells"][0]
    assert first["cell_type"] == "code", "the first cell must be the Colab install code cell"
    assert "remove-cell" in first.get("metadata", {}).get("tags", []), (
        "tag the install cell remove-cell"
    )
    expected = repository().install_cell()
    assert source(first) == expected, (
        f"the install cell differs from the one for {repository().url} at {repository().ref}; "
        "run python scripts/set_repository.py\n"
        f"--- found:\n{source(first)}\n--- expected:\n{expected}"
    )
    assert "git+{repo_url}@{repo_ref}" in expected and "@main" not in expected


@notebook
def test_title_comes_before_other_markdown(path):
    cells = markdown_cells(load(path))
    assert cells, "no markdown cell"
    first_line = next((line for line in cells[0].splitlines() if line.strip()), "")
    assert re.match(r"# \S", first_line), (
        f"the first markdown cell must open with '# Title', got {first_line!r}"
    )


@notebook
def test_colab_badge_points_to_this_notebook(path):
    expected = repository().colab_link(path.relative_to(ROOT).as_posix())
    links = COLAB_LINK.findall("\n".join(markdown_cells(load(path))))
    assert links, f"no Colab badge; expected a link to {expected}"
    assert all(link == expected for link in links), (
        f"Colab links {links} should all be {expected}: run python scripts/set_repository.py"
    )


@notebook
def test_has_summary(path):
    assert any(
        re.search(r"^## Summary[ \t]*$", md, re.MULTILINE) for md in markdown_cells(load(path))
    ), "no '## Summary' heading"


@notebook
def test_the_setup_cell_seeds(path):
    setup = code_cells(load(path))[1]  # after the Colab install cell
    assert "aelib.seed_everything(" in source(setup), (
        "the setup cell (the first code cell after the install cell) must call "
        "aelib.seed_everything"
    )


# Seeding that AELIB_SEED_OFFSET would not shift (aelib.seed_everything, aelib.generator and the
# seed= arguments of aelib's functions do).
RAW_SEEDING = re.compile(
    r"torch\.manual_seed\(|torch\.Generator\([^)]*\)\.manual_seed\(|torch\.cuda\.manual_seed"
    r"|np\.random\.seed\(|np\.random\.default_rng\(|np\.random\.RandomState\(|\brandom\.seed\("
)
# A prefix or range of a split, which the data sets store sorted by class: x_test[:10] is ten
# zeros. A strided slice (x_test[::20]) or a slice of a random order is not matched.
SORTED_SLICE = re.compile(r"\b\w*[xy]_(?:train|test)\[\s*[\w+*/ -]*:\s*[\w+*/ -]+\]")


@notebook
def test_seeds_go_through_aelib(path):
    bad = [
        (i + 1, line.strip())
        for i, cell in enumerate(code_cells(load(path)))
        for line in source(cell).splitlines()
        if RAW_SEEDING.search(line)
    ]
    assert not bad, (
        "seeded outside aelib, so AELIB_SEED_OFFSET cannot shift it; use aelib.seed_everything "
        f"or aelib.generator (code cell, line): {bad}"
    )


@notebook
def test_no_slice_of_a_class_sorted_split(path):
    bad = [
        (i + 1, match[0])
        for i, cell in enumerate(code_cells(load(path)))
        for match in SORTED_SLICE.finditer(source(cell))
    ]
    assert not bad, (
        "the splits are sorted by class, so a slice is one or two digits; draw with "
        f"aelib.evidence.stratified or shuffled (code cell, slice): {bad}"
    )


@notebook
def test_every_figure_has_alt_text(path):
    bad = [
        i + 1
        for i, cell in enumerate(code_cells(load(path)))
        if any("image/png" in o.get("data", {}) for o in cell.get("outputs", []))
        and not cell.get("metadata", {}).get("mystnb", {}).get("image", {}).get("alt")
    ]
    assert not bad, (
        'code cells whose figures have no alt text (metadata "mystnb": {"image": {"alt": ...}}),'
        f" counted from 1 among code cells: {bad}"
    )


@notebook
def test_no_stored_errors(path):
    errors = [
        (i, o.get("ename"), o.get("evalue"))
        for i, c in enumerate(load(path)["cells"])
        if c["cell_type"] == "code"
        for o in c.get("outputs", [])
        if o["output_type"] == "error"
    ]
    assert not errors, f"stored error outputs (cell, name, value): {errors}"


@notebook
def test_outputs_come_from_a_top_to_bottom_run(path):
    cells = [(i, c) for i, c in enumerate(load(path)["cells"]) if c["cell_type"] == "code"]
    unexecuted = [i for i, c in cells if c.get("outputs") and c.get("execution_count") is None]
    assert not unexecuted, (
        f"cells {unexecuted} have outputs but no execution count (nbval skips them)"
    )
    counts = [c["execution_count"] for _, c in cells if c.get("execution_count") is not None]
    assert counts == sorted(set(counts)) and (not counts or counts[0] == 1), (
        f"execution counts {counts}: run the notebook top to bottom in a fresh kernel"
    )


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


def test_repository_setting_names_a_github_repository_and_a_fixed_ref():
    repo = repository()
    assert repo.url == f"https://github.com/{repo.owner}/{repo.name}"
    assert repo.ref not in ("main", "master", "HEAD"), (
        f"install a tag (or a branch you never move), not the moving {repo.ref!r}"
    )
    assert config()["launch_buttons"]["colab_url"].rstrip("/") == SET_REPOSITORY.COLAB
    assert (config()["repository"].get("path_to_book") or "") == "", (
        "the install cell and the badges assume the book sits at the repository root"
    )


def github_repository() -> tuple[str | None, bool]:
    """The repository a GitHub Actions run works in (None elsewhere), and whether it is a fork."""
    actual = os.environ.get("GITHUB_REPOSITORY") or None
    fork = False
    event = os.environ.get("GITHUB_EVENT_PATH")
    if actual and event and Path(event).is_file():
        payload = json.loads(Path(event).read_text(encoding="utf-8"))
        fork = bool((payload.get("repository") or {}).get("fork"))
    return actual, fork


def test_repository_setting_is_this_repository():
    """On GitHub Actions in the book's own repository, the setting names that repository.

    A fork keeps the setting of the repository it was forked from (readers install from there), and
    a clone elsewhere has nothing to compare with: both skip.
    """
    repo = repository()
    actual, fork = github_repository()
    if not actual:
        pytest.skip("not on GitHub Actions: nothing to compare the setting with")
    if fork:
        pytest.skip(f"{actual} is a fork: it keeps the setting of the repository it came from")
    assert f"{repo.owner}/{repo.name}".lower() == actual.lower(), (
        f"_config.yml names {repo.owner}/{repo.name} but this is {actual}: "
        f"run python scripts/set_repository.py https://github.com/{actual} --ref TAG"
    )


@pytest.mark.parametrize("page", SET_REPOSITORY.PAGES)
def test_pages_point_to_the_repository_setting(page):
    """The clone command, Colab links and pages address of the intro and README use the setting."""
    repo = repository()
    text = (ROOT / page).read_text(encoding="utf-8")
    clones = re.findall(r"git clone (\S+)", text)
    assert all(c == f"{repo.url}.git" for c in clones), (
        f"{page}: clone {clones}, not {repo.url}.git"
    )
    colab = [link for link in COLAB_LINK.findall(text) if not link.endswith(".svg")]
    wrong = [
        link for link in colab if link != repo.colab_link(link.split(f"/blob/{repo.ref}/", 1)[-1])
    ]
    assert not wrong, f"{page}: Colab links not at {repo.owner}/{repo.name}@{repo.ref}: {wrong}"
    pages = re.findall(r"https://[\w-]+\.github\.io/[\w.-]+/", text)
    assert all(p == repo.pages_url() for p in pages), (
        f"{page}: pages {pages}, not {repo.pages_url()}"
    )
    installs = re.findall(r"git\+https://github\.com/[^\s\"'`]+", text)
    assert all(i == f"git+{repo.url}@{repo.ref}" for i in installs), f"{page}: installs {installs}"
    assert SET_REPOSITORY.stamp(repo, ROOT, check=True) == [], (
        "run python scripts/set_repository.py"
    )


def test_toc_files_exist():
    missing = [
        f
        for f in toc_files()
        if not any((ROOT / f).with_suffix(s).is_file() for s in (".md", ".ipynb"))
    ]
    assert not missing, f"_toc.yml lists files that do not exist: {missing}"


def test_bibliography_has_the_book_keys():
    missing = REQUIRED_KEYS - bib_keys()
    assert not missing, f"references.bib lacks {sorted(missing)}"


def test_cited_keys_exist():
    missing = [
        (where, key.strip())
        for where, text in book_texts()
        for keys in CITE.findall(text)
        for key in keys.split(",")
        if key.strip() not in bib_keys()
    ]
    assert not missing, f"cited but not in references.bib (where, key): {missing}"


def test_bibliography_directive_appears_once():
    where = [
        w
        for w, text in book_texts()
        if re.search(r"^[`:]{3,}\{bibliography\}", text, re.MULTILINE)
    ]
    assert len(where) == 1, f"the {{bibliography}} directive should appear once, found in {where}"


def equation_labels() -> list[tuple[str, str]]:
    return [
        (label, where)
        for where, text in book_texts()
        for label in DOLLAR_LABEL.findall(text) + DIRECTIVE_LABEL.findall(text)
    ]


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
    refs = [
        (where, m.split("<")[-1].rstrip(">").strip())
        for where, text in book_texts()
        for m in EQ_REF.findall(text)
    ]
    missing = [(where, ref) for where, ref in refs if ref not in labels]
    assert not missing, f"{{eq}} references to unknown labels (where, label): {missing}"
