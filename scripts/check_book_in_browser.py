#!/usr/bin/env python3
"""Build the book with warnings as errors, then check every page in headless Chromium.

    python scripts/check_book_in_browser.py              # build, then pytest tests/browser
    python scripts/check_book_in_browser.py --no-build   # check the existing _build/html

The checks are the pytest tests in ``tests/browser/`` (see there): every page at 1280 px (math
typeset from the book's own MathJax, a clean console, nothing cut off, sharp figures with alt
text), the same measured at 390 px and reported, and a copy of the build opened offline.
Screenshots go to ``_build/screenshots/``. Exit status: that of the build if it failed, else
that of pytest.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUILD = ["jupyter-book", "build", ".", "--all", "-W", "-n", "--keep-going"]


def main(argv: list[str]) -> int:
    if "--no-build" not in argv:
        print("$ " + " ".join(BUILD), flush=True)
        built = subprocess.run(BUILD, cwd=ROOT)
        if built.returncode != 0:
            print(f"FAILED: the build exited with {built.returncode} (its warnings are above)")
            return built.returncode
    extra = [a for a in argv if a != "--no-build"]
    tests = [sys.executable, "-m", "pytest", "tests/browser", "-n", "0", "-p", "no:cacheprovider"]
    tests += extra
    print("$ " + " ".join(tests[2:]), flush=True)
    return subprocess.run(tests, cwd=ROOT).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
