"""scripts/colab_replay.py: what it installs and what it points the install cells at."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import torch
import torchvision

ROOT = Path(__file__).resolve().parents[1]


def script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(name, module)
    spec.loader.exec_module(module)
    return module


replay = script("colab_replay")
set_repository = script("set_repository")


def test_the_environment_has_colab_packages_and_the_recorded_torch():
    assert replay.pinned("torch") == f"torch=={torch.__version__.split('+')[0]}"
    assert replay.pinned("torchvision") == f"torchvision=={torchvision.__version__.split('+')[0]}"
    assert set(replay.COLAB_PACKAGES) == {
        "numpy",
        "matplotlib",
        "ipywidgets",
        "scikit-learn",
        "pandas",
        "scipy",
        "einops",
    }
    assert "aelib" not in " ".join(replay.COLAB_PACKAGES + replay.RUNNER_PACKAGES)


def git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)


def test_the_replay_installs_head_by_default_as_a_commit():
    head = git("rev-parse", "HEAD").stdout.strip()
    assert replay.replay_commit("head") == head
    assert replay.pip_source(head) == f"git+file://{ROOT}@{head}"
    assert replay.setting_ref() == set_repository.read_setting(ROOT).ref


def test_the_setting_ref_is_replayed_or_refused_in_one_line(monkeypatch):
    monkeypatch.setattr(replay, "setting_ref", lambda: "v0.0.0-no-such-tag")
    try:
        replay.replay_commit("setting")
    except replay.RefMissing as err:
        assert "has no ref 'v0.0.0-no-such-tag'" in str(err) and "git fetch --tags" in str(err)
    else:
        raise AssertionError("a missing ref was replayed")
    monkeypatch.setattr(replay, "setting_ref", lambda: "HEAD~1")  # a ref this clone has
    assert replay.replay_commit("setting") == git("rev-parse", "HEAD~1").stdout.strip()


def test_the_replay_reads_each_notebook_from_the_commit_it_installs(tmp_path):
    head = git("rev-parse", "HEAD").stdout.strip()
    notebook = sorted(ROOT.glob("notebooks/*.ipynb"))[0]
    copied = replay.notebook_at(head, notebook, tmp_path)
    committed = git("show", f"HEAD:notebooks/{notebook.name}").stdout
    assert copied.read_text(encoding="utf-8") == committed


def test_every_install_cell_honours_the_variable_the_replay_sets():
    for path in sorted(ROOT.glob("notebooks/*.ipynb")):
        first = "".join(json.loads(path.read_text(encoding="utf-8"))["cells"][0]["source"])
        assert f'os.environ.get("{set_repository.PIP_SOURCE_VARIABLE}"' in first, path.name
        assert f'"{set_repository.PIP_SOURCE_VARIABLE}" in os.environ' in first, path.name


def test_the_install_cell_installs_the_variable_in_a_kernel(tmp_path):
    """IPython expands {pip_source} in the %pip line: run the cell with pip stubbed out."""
    cell = set_repository.Repository.parse("https://github.com/a/b", "v1").install_cell()
    code = (
        "from IPython.testing.globalipapp import start_ipython\n"
        "ip = start_ipython()\n"
        "seen = []\n"
        "ip.register_magic_function(lambda line: seen.append(line), 'line', 'pip')\n"
        f"ip.run_cell({cell!r})\n"
        "print(seen)\n"
    )
    env = {"AELIB_PIP_SOURCE": "git+file:///x@v1", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert "['install -q \"git+file:///x@v1\"']" in done.stdout, done.stdout + done.stderr
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
    )
    assert "[]" in done.stdout.splitlines()[-1], done.stdout + done.stderr
