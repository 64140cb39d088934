"""Draw the book's generated pictures into book/images/ (run from anywhere).

python scripts/make_figures.py            # writes book/images/architecture.png
python scripts/make_figures.py --out DIR  # somewhere else
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

from aelib.diagrams import SEED_LAYERS, architecture_diagram  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "book" / "images",
        help="folder for the PNG files (default: book/images)",
    )
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "architecture.png"
    fig = architecture_diagram(SEED_LAYERS, path=path)
    plt.close(fig)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
