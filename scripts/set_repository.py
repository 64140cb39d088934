#!/usr/bin/env python3
"""Name the book's GitHub repository and the ref to install, and stamp them everywhere.

    python scripts/set_repository.py https://github.com/OWNER/NAME --ref v0.2.0
    python scripts/set_repository.py            # re-stamp from _config.yml (e.g. after a merge)
    python scripts/set_repository.py --check    # exit 1 if a file is not stamped

The setting is ``repository.url`` and ``repository.branch`` (a branch or a tag) in
``_config.yml``; Jupyter Book builds the launch buttons from them. The script writes it there, then
rewrites from it:

- every notebook's first cell (the Colab install cell, :func:`install_cell`), which installs
  ``git+URL@REF`` so that an older page installs the code it was written with;
- every notebook's Colab badge (``.../github/OWNER/NAME/blob/REF/notebooks/FILE.ipynb``);
- the clone command, the Colab badge and the pages address in ``book/intro.md`` and ``README.md``.

Tests (``tests/test_notebook_hygiene.py``) check every one of these against the setting.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]
COLAB = "https://colab.research.google.com"
BADGE_SVG = f"{COLAB}/assets/colab-badge.svg"
# Environment variable that makes the install cell run outside Colab with another pip source
# (scripts/colab_replay.py sets it to git+file://<clone>@<ref>).
PIP_SOURCE_VARIABLE = "AELIB_PIP_SOURCE"
PAGES = ("book/intro.md", "README.md")

INSTALL_CELL = """\
# In Colab, install the book's library (aelib) at the version this chapter
# was written with. Elsewhere this cell does nothing, unless {variable}
# names a pip source, e.g. git+file:///path/to/clone@v0.2.0.
import os
import sys

repo_url = "{url}"
repo_ref = "{ref}"
pip_source = os.environ.get("{variable}", f"git+{{repo_url}}@{{repo_ref}}")
if "google.colab" in sys.modules or "{variable}" in os.environ:
    %pip install -q "{{pip_source}}\""""

URL = re.compile(r"https://github\.com/([\w.-]+)/([\w.-]+?)(?:\.git)?/?")
# What the script rewrites in the markdown pages, each with the text that replaces it.
CLONE = re.compile(r"git clone https://github\.com/[\w.-]+/[\w.-]+?\.git\n(cd [\w.-]+\n)?")
COLAB_LINK = re.compile(rf"{re.escape(COLAB)}/github/[\w.-]+/[\w.-]+/blob/[\w./-]+?/(\S+?\.ipynb)")
PAGES_URL = re.compile(r"https://[\w-]+\.github\.io/[\w.-]+/")
BADGE = re.compile(rf"\[!\[Open In Colab\]\({re.escape(BADGE_SVG)}\)\]\(([^)\s]*)\)")


class Repository(NamedTuple):
    """The book's GitHub repository and the ref (branch or tag) that readers install."""

    url: str
    owner: str
    name: str
    ref: str

    @classmethod
    def parse(cls, url: str, ref: str) -> Repository:
        match = URL.fullmatch(url.strip())
        if not match:
            raise ValueError(f"expected a URL like https://github.com/OWNER/NAME, got {url!r}")
        if not re.fullmatch(r"[\w][\w./-]*", ref) or ".." in ref:
            raise ValueError(f"expected a branch or tag name such as main or v0.2.0, got {ref!r}")
        owner, name = match[1], match[2]
        return cls(f"https://github.com/{owner}/{name}", owner, name, ref)

    def install_cell(self) -> str:
        return INSTALL_CELL.format(url=self.url, ref=self.ref, variable=PIP_SOURCE_VARIABLE)

    def colab_link(self, notebook: str) -> str:
        """The Colab address of ``notebook`` (a path from the repository root)."""
        return f"{COLAB}/github/{self.owner}/{self.name}/blob/{self.ref}/{notebook}"

    def clone_command(self) -> str:
        return f"git clone {self.url}.git\ncd {self.name}\n"

    def pages_url(self) -> str:
        return f"https://{self.owner.lower()}.github.io/{self.name}/"


# ---------------------------------------------------------------- _config.yml


def read_setting(root: Path = ROOT) -> Repository:
    """The repository named in ``root/_config.yml``."""
    import yaml

    config = yaml.safe_load((root / "_config.yml").read_text(encoding="utf-8"))
    repo = config.get("repository") or {}
    if "url" not in repo or "branch" not in repo:
        raise ValueError("_config.yml needs repository.url and repository.branch (the ref)")
    return Repository.parse(repo["url"], str(repo["branch"]))


def write_setting(text: str, repo: Repository) -> str:
    """``_config.yml``'s text with ``repository.url`` and ``repository.branch`` replaced."""
    block = re.search(r"^repository:\n((?:[ \t]+.*\n|\n)*)", text, re.MULTILINE)
    if not block:
        raise ValueError("_config.yml has no 'repository:' block")
    body = block[1]
    for key, value in (("url", repo.url), ("branch", repo.ref)):
        body, count = re.subn(
            rf"^([ \t]+{key}:[ \t]*)\S[^#\n]*?([ \t]*(#.*)?)$",
            rf"\g<1>{value}\g<2>",
            body,
            count=1,
            flags=re.MULTILINE,
        )
        if count != 1:
            raise ValueError(f"_config.yml's repository block has no '{key}:' line")
    return text[: block.start(1)] + body + text[block.end(1) :]


# ---------------------------------------------------------------- notebooks and pages


def as_lines(text: str) -> list[str]:
    """A notebook's ``source``: the lines of ``text``, each but the last with its newline."""
    return text.splitlines(keepends=True)


def stamp_notebook(text: str, notebook: str, repo: Repository) -> str:
    """A notebook's text with its install cell and Colab badges for ``repo``.

    Args:
        text: the ``.ipynb`` file's content.
        notebook: its path from the repository root, for the badge's link.
        repo: the repository setting.
    """
    nb = json.loads(text)
    first = nb["cells"][0]
    if first["cell_type"] != "code" or "remove-cell" not in first["metadata"].get("tags", []):
        raise ValueError(
            f"{notebook}: the first cell must be the Colab install cell "
            f"(code, tagged remove-cell), got a {first['cell_type']} cell"
        )
    first["source"] = as_lines(repo.install_cell())
    badge = f"[![Open In Colab]({BADGE_SVG})]({repo.colab_link(notebook)})"
    badges = 0
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown":
            new, count = BADGE.subn(lambda m: badge, "".join(cell["source"]))
            if count:
                cell["source"] = as_lines(new)
                badges += count
    if not badges:
        raise ValueError(
            f"{notebook}: no Colab badge in a markdown cell; put {badge} under the title"
        )
    # nbformat's own layout, so that a stamp changes only the stamped lines
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


def stamp_page(text: str, repo: Repository) -> str:
    """A markdown page's text with the clone command, Colab links and pages URL of ``repo``."""
    text = CLONE.sub(lambda m: repo.clone_command(), text)
    text = COLAB_LINK.sub(lambda m: repo.colab_link(m[1]), text)
    return PAGES_URL.sub(lambda m: repo.pages_url(), text)


def stamped(repo: Repository, root: Path = ROOT) -> dict[Path, tuple[str, str]]:
    """{file: (its text, its stamped text)} for ``_config.yml``, every notebook and the pages."""
    texts = {}
    config = root / "_config.yml"
    text = config.read_text(encoding="utf-8")
    texts[config] = (text, write_setting(text, repo))
    for path in sorted((root / "notebooks").glob("*.ipynb")):
        text = path.read_text(encoding="utf-8")
        texts[path] = (text, stamp_notebook(text, path.relative_to(root).as_posix(), repo))
    for page in PAGES:
        path = root / page
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            texts[path] = (text, stamp_page(text, repo))
    return texts


def stamp(repo: Repository, root: Path = ROOT, check: bool = False) -> list[str]:
    """Stamp ``repo`` into every file that names it; returns the files that changed (or would)."""
    changed = []
    for path, (old, new) in stamped(repo, root).items():
        if new != old:
            changed.append(path.relative_to(root).as_posix())
            if not check:
                path.write_text(new, encoding="utf-8")
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "url", nargs="?", help="https://github.com/OWNER/NAME (default: _config.yml's)"
    )
    parser.add_argument("--ref", help="branch or tag to install (default: _config.yml's)")
    parser.add_argument("--root", type=Path, default=ROOT, help="the book's folder")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if unstamped")
    args = parser.parse_args(argv)
    current = read_setting(args.root)
    try:
        repo = Repository.parse(args.url or current.url, args.ref or current.ref)
    except ValueError as error:
        parser.error(str(error))
    changed = stamp(repo, args.root, check=args.check)
    verb = "not stamped" if args.check else "stamped"
    for path in changed:
        print(f"{verb}: {path}")
    print(f"repository {repo.url} at ref {repo.ref}: {len(changed)} files {verb}")
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
