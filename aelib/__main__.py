"""``python -m aelib train ...`` and ``python -m aelib evaluate ...``: see :mod:`aelib.cli`.

Importing the package ``aelib`` imports no torch (its names load on first use), so the handler
below is in place before torch's import, which takes seconds: Ctrl-C then ends with one line.
The ``aelib`` console script enters through :func:`main` too.
"""

import signal
import sys


def _interrupted_early(signum, frame):
    name = signal.Signals(signum).name
    sys.stderr.write(f"python -m aelib: interrupted by {name} before training started\n")
    sys.exit(128 + signum)


def main() -> int:
    """Install the early Ctrl-C/SIGTERM handler, then import and run :func:`aelib.cli.main`."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _interrupted_early)
    from .cli import main as cli_main

    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
