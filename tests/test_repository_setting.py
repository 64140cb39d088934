"""scripts/set_repository.py: one setting names the repository, and one command stamps it."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "set_repository.py"
NEW_URL, NEW_REF = "https://github.com/Some-Owner/ae.book", "v0.2.0"


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """The files the script stamps, copied into a scratch folder."""
    for name in (
        "_config.yml",
        "README.md",
        "book/intro.md",
        "notebooks",
        "references.bib",
        "_toc.yml",
        "book",
    ):
        source = ROOT / name
        target = tmp_path / name
        if source.is_dir():
            shutil.copytree(
                source,
                target,
                dirs_exist_ok=True,
                ignore=shutil.ignore_patterns(".*", "generated", "images"),
            )
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, target)
    return tmp_path


def hygiene(root: Path, monkeypatch):
    """A fresh import of tests/test_notebook_hygiene.py that checks the book in ``root``."""
    monkeypatch.setenv("AELIB_BOOK_ROOT", str(root))
    path = ROOT / "tests" / "test_notebook_hygiene.py"
    spec = importlib.util.spec_from_file_location(f"hygiene_{id(root)}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, SCRIPT, *map(str, args)], capture_output=True, text=True
    )


def all_text(root: Path) -> str:
    paths = [root / "_config.yml", root / "README.md", root / "book" / "intro.md"]
    return "\n".join(
        p.read_text(encoding="utf-8") for p in paths + sorted(root.glob("notebooks/*.ipynb"))
    )


def test_stamp_rewrites_every_url_and_the_hygiene_test_agrees(copy, monkeypatch):
    done = run(NEW_URL, "--ref", NEW_REF, "--root", copy)
    assert done.returncode == 0, done.stderr
    config = yaml.safe_load((copy / "_config.yml").read_text(encoding="utf-8"))
    assert config["repository"]["url"] == NEW_URL and config["repository"]["branch"] == NEW_REF
    text = all_text(copy)
    old = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))["repository"]["url"]
    assert old.split("github.com/")[1] not in text, "an old URL survived the stamp"
    notebooks = sorted(copy.glob("notebooks/*.ipynb"))
    for path in notebooks:
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        install = "".join(cells[0]["source"])
        assert f'repo_url = "{NEW_URL}"' in install and f'repo_ref = "{NEW_REF}"' in install
        badge = (
            f"https://colab.research.google.com/github/Some-Owner/ae.book/blob/{NEW_REF}/"
            f"notebooks/{path.name})"
        )
        assert badge in "".join(cells[1]["source"])
    intro = (copy / "book" / "intro.md").read_text(encoding="utf-8")
    assert f"git clone {NEW_URL}.git\ncd ae.book\n" in intro
    # nothing left to stamp, and the hygiene test's repository checks pass on the stamped copy
    assert run("--root", copy, "--check").returncode == 0
    monkeypatch.setenv("GITHUB_REPOSITORY", "Some-Owner/ae.book")
    monkeypatch.delenv("GITHUB_EVENT_PATH", raising=False)
    check = hygiene(copy, monkeypatch)
    for path in notebooks:
        check.test_first_cell_is_the_colab_install(path)
        check.test_colab_badge_points_to_this_notebook(path)
    check.test_repository_setting_names_a_github_repository_and_a_fixed_ref()
    check.test_repository_setting_is_this_repository()
    for page in check.SET_REPOSITORY.PAGES:
        check.test_pages_point_to_the_repository_setting(page)


def test_stamp_changes_only_the_stamped_lines(copy):
    setting = yaml.safe_load((copy / "_config.yml").read_text(encoding="utf-8"))["repository"]
    stamped_before = setting["url"].split("github.com/")[1]  # OWNER/NAME, whatever it is now
    before = {
        p: p.read_text(encoding="utf-8").splitlines() for p in copy.glob("notebooks/*.ipynb")
    }
    assert run(NEW_URL, "--ref", NEW_REF, "--root", copy).returncode == 0
    for path, old in before.items():
        new = path.read_text(encoding="utf-8").splitlines()
        removed = set(old) - set(new)
        assert all(stamped_before in line or "repo_" in line for line in removed), (
            f"{path.name}: the stamp removed other lines: {sorted(removed)[:5]}"
        )


def test_check_mode_reports_an_unstamped_copy_and_writes_nothing(copy):
    assert run(NEW_URL, "--ref", NEW_REF, "--root", copy).returncode == 0
    config = copy / "_config.yml"
    config.write_text(
        config.read_text(encoding="utf-8").replace(NEW_REF, "v0.3.0"), encoding="utf-8"
    )
    snapshot = all_text(copy)
    done = run("--root", copy, "--check")
    assert done.returncode == 1 and "not stamped: notebooks/" in done.stdout
    assert all_text(copy) == snapshot


def test_hygiene_test_rejects_a_notebook_that_disagrees(copy, monkeypatch):
    assert run(NEW_URL, "--ref", NEW_REF, "--root", copy).returncode == 0
    path = sorted(copy.glob("notebooks/*.ipynb"))[0]
    path.write_text(
        path.read_text(encoding="utf-8").replace(f"blob/{NEW_REF}/", "blob/main/"),
        encoding="utf-8",
    )
    check = hygiene(copy, monkeypatch)
    with pytest.raises(AssertionError, match="blob/main/"):
        check.test_colab_badge_points_to_this_notebook(path)
    check.test_first_cell_is_the_colab_install(path)


def github_event(tmp_path: Path, monkeypatch, repository: str, fork: bool) -> None:
    """Pretend to be a GitHub Actions run in ``repository``, with its event payload."""
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"repository": {"full_name": repository, "fork": fork}}))
    monkeypatch.setenv("GITHUB_REPOSITORY", repository)
    monkeypatch.setenv("GITHUB_EVENT_PATH", str(event))


def test_hygiene_test_rejects_a_setting_that_is_not_this_repository(copy, monkeypatch, tmp_path):
    github_event(tmp_path, monkeypatch, "someone/else", fork=False)
    with pytest.raises(AssertionError, match="someone/else"):
        hygiene(copy, monkeypatch).test_repository_setting_is_this_repository()


def test_a_fork_keeps_the_setting_of_the_repository_it_came_from(copy, monkeypatch, tmp_path):
    github_event(tmp_path, monkeypatch, "someone/autoencoder-book", fork=True)
    with pytest.raises(pytest.skip.Exception, match="is a fork"):
        hygiene(copy, monkeypatch).test_repository_setting_is_this_repository()


def test_a_stamped_repository_passes_its_own_suite(copy, monkeypatch, tmp_path):
    """A book stamped with a made-up repository: its setting tests pass as that repository."""
    other = "https://github.com/Other-Owner/other.book"
    assert run(other, "--ref", "v0.3.0", "--root", copy).returncode == 0
    github_event(tmp_path, monkeypatch, "Other-Owner/other.book", fork=False)
    check = hygiene(copy, monkeypatch)
    check.test_repository_setting_is_this_repository()
    check.test_repository_setting_names_a_github_repository_and_a_fixed_ref()
    for path in sorted(copy.glob("notebooks/*.ipynb")):
        check.test_first_cell_is_the_colab_install(path)
        check.test_colab_badge_points_to_this_notebook(path)
    test_stamp_changes_only_the_stamped_lines(copy)  # re-stamping a stamped book


def test_hygiene_test_rejects_a_moving_ref(copy, monkeypatch):
    assert run(NEW_URL, "--ref", "main", "--root", copy).returncode == 0
    with pytest.raises(AssertionError, match="moving"):
        hygiene(
            copy, monkeypatch
        ).test_repository_setting_names_a_github_repository_and_a_fixed_ref()


@pytest.mark.parametrize(
    "url, ref", [("https://gitlab.com/a/b", "v1"), (NEW_URL, "a b"), (NEW_URL, "../x")]
)
def test_bad_settings_are_refused(copy, url, ref):
    done = run(url, "--ref", ref, "--root", copy)
    assert done.returncode == 2 and "expected" in done.stderr
