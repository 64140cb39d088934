"""After pip install -r requirements.txt, `jupyter lab notebooks/` starts and draws the widgets."""

from __future__ import annotations

import re
import subprocess
import sys


def jupyter(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "jupyter", *args], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"jupyter {' '.join(args)} failed:\n{done.stderr}"
    return re.sub(r"\x1b\[[0-9;]*m", "", done.stdout + done.stderr)  # no terminal colours


def test_jupyter_lab_runs_with_the_widgets_extension_enabled():
    # one `jupyter` process (each one costs seconds): it starts JupyterLab's application, which
    # prints its version, and lists the lab extensions it would load
    text = jupyter("labextension", "list")
    version = re.search(r"^JupyterLab v(\d+)\.", text, re.MULTILINE)
    assert version and int(version.group(1)) >= 4, text
    line = next((x for x in text.splitlines() if "@jupyter-widgets/jupyterlab-manager" in x), "")
    assert re.search(r"\benabled\b.*\bOK\b", line), (
        f"ipywidgets' lab extension (jupyterlab_widgets) is missing or broken:\n{text}"
    )
