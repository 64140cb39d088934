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
    }
    assert "aelib" not in " ".join(replay.COLAB_PACKAGES + replay.RUNNER_PACKAGES)


def test_pip_source_is_this_clone_at_the_setting_ref_or_head():
    source = replay.pip_source()
    assert source.startswith(f"git+file://{ROOT}@")
    ref = source.rsplit("@", 1)[1]
    head = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    assert ref in (set_repository.read_setting(ROOT).ref, head) and ref != "HEAD"
    assert replay.setting_ref() == set_repository.read_setting(ROOT).ref


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
