#!/usr/bin/env python3
"""Replay every chapter as a stranger would in Colab: a fresh runtime, then "Run all".

    python scripts/colab_replay.py                      # every notebook, as HEAD has it
    python scripts/colab_replay.py notebooks/01_*.ipynb  # some of them
    python scripts/colab_replay.py --ref setting        # the tag readers install (_config.yml)
    python scripts/colab_replay.py --fresh              # rebuild the environment first

Colab gives a runtime with torch, torchvision, numpy, matplotlib, ipywidgets, scikit-learn, pandas,
scipy and einops installed, and nothing of this project. The replay builds such an environment
once, a virtual environment in ``_build/colab-venv`` holding only those packages and a kernel
(torch and torchvision at the versions ``requirements.txt`` pins). Then, for each chapter, it
uninstalls ``aelib`` and runs the notebook top to bottom with nbclient in a scratch folder (as
Colab's ``/content``), in a kernel of that environment that does not see this checkout. The
chapter's own first cell installs the book's library: it installs ``$AELIB_PIP_SOURCE`` when that
is set, and the replay sets it to this clone, ``git+file://<clone>@<commit>``.

What is replayed is one commit, notebooks and library alike: ``--ref head`` (the default) takes
``HEAD`` (commit what you want replayed), ``--ref setting`` the ref ``_config.yml`` names, the one
readers open in Colab; a clone without that ref fails at once, saying to fetch the tags.
Outputs are not compared with the stored ones; every cell must run and every ``assert`` must
pass, and with ``AELIB_SEED_OFFSET=N`` set (CI sets 1) they run on other seeds. Prints how long
each chapter took (the install included) and exits 1 if any chapter failed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KERNEL = "colab-replay"
# What a Colab runtime already has (torch and torchvision pinned by requirements.txt), plus the
# kernel and the notebook runner.
COLAB_PACKAGES = [
    "numpy",
    "matplotlib",
    "ipywidgets",
    "scikit-learn",
    "pandas",
    "scipy",
    "einops",
]
RUNNER_PACKAGES = ["ipykernel", "nbclient", "nbformat"]


def pinned(name: str) -> str:
    """``name==VERSION`` as pinned in requirements.txt (``name`` alone if it is not pinned)."""
    text = (ROOT / "requirements.txt").read_text(encoding="utf-8")
    match = re.search(rf"^{re.escape(name)}\s*==\s*([\w.+-]+)", text, re.MULTILINE)
    return f"{name}=={match[1]}" if match else name


def git(*args: str) -> str:
    done = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else ""


def setting_ref() -> str:
    """The ref of ``_config.yml``'s repository setting (read without PyYAML)."""
    text = (ROOT / "_config.yml").read_text(encoding="utf-8")
    block = re.search(r"^repository:\n((?:[ \t]+.*\n)*)", text, re.MULTILINE)
    match = re.search(r"^[ \t]+branch:[ \t]*([^\s#]+)", block[1] if block else "", re.MULTILINE)
    if not match:
        raise SystemExit("_config.yml has no repository.branch: run scripts/set_repository.py")
    return match[1].strip("\"'")


class RefMissing(SystemExit):
    """The ref to replay is not in this clone."""


def replay_commit(which: str = "head") -> str:
    """The commit to replay: ``HEAD``'s, or that of the ref ``_config.yml`` names (``setting``).

    Raises:
        RefMissing: ``setting`` and this clone lacks that ref (exit status 2, one line).
    """
    if which == "setting":
        ref = setting_ref()
        commit = git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
        if not commit:
            raise RefMissing(
                f"colab_replay.py: this clone has no ref {ref!r}, the one _config.yml tells "
                "readers to install: fetch it (git fetch --tags; actions/checkout with "
                "fetch-tags: true) or tag it"
            )
        return commit
    commit = git("rev-parse", "HEAD")
    if git("status", "--porcelain", "--untracked-files=no", "--", "aelib", "notebooks"):
        print(
            "note: aelib/ or notebooks/ has uncommitted changes; the replay runs the "
            f"committed {commit[:12]}"
        )
    return commit


def pip_source(commit: str) -> str:
    """``git+file://<this clone>@<commit>`` (pip takes a commit, not the name HEAD)."""
    return f"git+file://{ROOT}@{commit}"


def notebook_at(commit: str, notebook: Path, folder: Path) -> Path:
    """``notebook`` as ``commit`` holds it, written into ``folder``."""
    relative = notebook.resolve().relative_to(ROOT).as_posix()
    done = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{commit}:{relative}"], capture_output=True
    )
    if done.returncode != 0:
        raise SystemExit(f"colab_replay.py: {commit[:12]} has no {relative}")
    target = folder / notebook.name
    target.write_bytes(done.stdout)
    return target


def python_of(env: Path) -> Path:
    return env / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def make_environment(env: Path, fresh: bool) -> Path:
    """A virtual environment like a fresh Colab runtime; built once, reused unless ``fresh``."""
    python = python_of(env)
    ready = env / ".colab-replay-ready"
    wanted = " ".join([pinned("torch"), pinned("torchvision"), *COLAB_PACKAGES, *RUNNER_PACKAGES])
    if fresh or not ready.is_file() or ready.read_text() != wanted:
        shutil.rmtree(env, ignore_errors=True)
        print(f"== building the Colab-like environment in {env}: {wanted}", flush=True)
        start = time.monotonic()
        venv.create(env, with_pip=True, clear=True)
        pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        subprocess.run([*pip, *wanted.split()], check=True)
        subprocess.run(
            [
                str(python),
                "-m",
                "ipykernel",
                "install",
                "--prefix",
                str(env),
                "--name",
                KERNEL,
                "--display-name",
                "Colab replay",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        ready.write_text(wanted)
        print(f"   built in {time.monotonic() - start:.0f} s", flush=True)
    return python


def run_notebook(python: Path, env: Path, notebook: Path, source: str, timeout: int) -> dict:
    """Uninstall aelib, then run ``notebook`` with nbclient inside ``env``; returns its record."""
    subprocess.run(
        [str(python), "-m", "pip", "uninstall", "-q", "-y", "aelib"], capture_output=True
    )
    environ = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "VIRTUAL_ENV", "JUPYTER_PATH", "MPLBACKEND")
    }
    environ.update(
        AELIB_PIP_SOURCE=source,
        JUPYTER_PATH=str(env / "share" / "jupyter"),
        PATH=f"{python.parent}{os.pathsep}{environ.get('PATH', '')}",
    )
    with tempfile.TemporaryDirectory(prefix="colab-content-") as content:
        done = subprocess.run(
            [
                str(python),
                str(Path(__file__).resolve()),
                "--inside",
                str(notebook),
                "--timeout",
                str(timeout),
            ],
            cwd=content,
            env=environ,
            capture_output=True,
            text=True,
        )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        return {"ok": False, "error": (done.stdout + done.stderr)[-3000:]}
    return json.loads(lines[-1])


def inside(notebook: Path, timeout: int) -> int:
    """Runs in the Colab-like environment: execute ``notebook`` top to bottom, print a record."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(notebook, as_version=4)
    client = NotebookClient(
        nb, kernel_name=KERNEL, timeout=timeout, resources={"metadata": {"path": os.getcwd()}}
    )
    times: list[float] = []
    record = {"ok": True, "error": None}
    start = time.monotonic()
    with client.setup_kernel():
        for index, cell in enumerate(nb.cells):
            t0 = time.monotonic()
            try:
                client.execute_cell(cell, index)
            except CellExecutionError as error:
                # what the install cell printed (pip's errors) says why aelib could be missing
                install = "".join(o.get("text", "") for o in nb.cells[0].get("outputs", []))
                record.update(
                    ok=False,
                    error=f"install cell printed: {install[-1500:]}\n"
                    f"cell {index + 1} (counted from 1): {str(error)[-3000:]}",
                )
                break
            times.append(time.monotonic() - t0)
    record.update(seconds=time.monotonic() - start, install_seconds=times[0] if times else None)
    print(json.dumps(record))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "notebooks",
        nargs="*",
        type=Path,
        help="notebooks to replay (default: every notebooks/*.ipynb)",
    )
    parser.add_argument(
        "--env",
        type=Path,
        default=ROOT / "_build" / "colab-venv",
        help="the virtual environment (default: _build/colab-venv)",
    )
    parser.add_argument(
        "--ref",
        choices=("head", "setting"),
        default="head",
        help="replay HEAD (default) or the ref _config.yml names (fails if the clone lacks it)",
    )
    parser.add_argument("--fresh", action="store_true", help="rebuild the environment first")
    parser.add_argument("--timeout", type=int, default=1200, help="seconds allowed per cell")
    parser.add_argument("--inside", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.inside:
        return inside(args.inside, args.timeout)

    notebooks = [p.resolve() for p in args.notebooks] or sorted(ROOT.glob("notebooks/*.ipynb"))
    commit = replay_commit(args.ref)
    source = pip_source(commit)
    python = make_environment(args.env.resolve(), args.fresh)
    offset = os.environ.get("AELIB_SEED_OFFSET", "") or "0"
    print(
        f"== replaying {len(notebooks)} chapters of {commit[:12]} ({args.ref}), each installing "
        f"{source}, seed offset {offset}",
        flush=True,
    )
    results = {}
    with tempfile.TemporaryDirectory(prefix="colab-notebooks-") as folder:
        for notebook in notebooks:
            committed = notebook_at(commit, notebook, Path(folder))
            record = run_notebook(python, args.env.resolve(), committed, source, args.timeout)
            results[notebook.name] = record
            if record["ok"]:
                print(
                    f"PASS {notebook.name}: {record['seconds']:.0f} s "
                    f"(of which {record['install_seconds']:.0f} s installing aelib)",
                    flush=True,
                )
            else:
                print(f"FAILED {notebook.name}:\n{record['error']}", flush=True)
    print("\n| chapter | Run all (s) | of which the install cell (s) |\n|---|---:|---:|")
    for name, record in results.items():
        if record["ok"]:
            print(f"| {name} | {record['seconds']:.0f} | {record['install_seconds']:.0f} |")
        else:
            print(f"| {name} | failed | |")
    failed = [name for name, record in results.items() if not record["ok"]]
    if failed:
        print(f"\nFAILED: {len(failed)} of {len(results)} chapters: {', '.join(failed)}")
        return 1
    print(
        f"\nOK: {len(results)} chapters ran top to bottom from their install cell, every assert "
        "passed"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
