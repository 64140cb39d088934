"""``python -m aelib train ...`` and ``python -m aelib evaluate ...``: see :mod:`aelib.cli`.

Importing the package ``aelib`` imports no torch (its names load on first use), so the handler
below is in place before torch's import, which takes seconds: Ctrl-C then ends with one line.
The ``aelib`` console script enters through :func:`main` too.
"""

import os
import signal
import sys


def _interrupted_early(signum, frame):
    """End the process at once: nothing is held yet (no lock, no file written).

    ``os._exit``, not ``sys.exit``: CPython drops an exception raised by a signal handler while
    ``compile`` parses a module (an import without a ``.pyc``, as under
    ``PYTHONDONTWRITEBYTECODE``), so a ``SystemExit`` could be lost and the run go on.
    """
    name = signal.Signals(signum).name
    os.write(2, f"python -m aelib: interrupted by {name} before training started\n".encode())
    os._exit(128 + signum)


def _import_failed(err: BaseException) -> int:
    """One line for a torch (or other dependency) that cannot be loaded; exit 2."""
    reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    if "failed to map segment" in reason or "cannot allocate memory" in reason.lower():
        hint = (
            "the memory limit of this process (ulimit -v, a container's limit) is too low "
            "to load torch's libraries: raise it"
        )
    else:
        hint = "install the dependencies: pip install -e . (and torch)"
    sys.stderr.write(f"python -m aelib: torch could not be loaded ({reason}); {hint}\n")
    return 2


def main() -> int:
    """Install the early Ctrl-C/SIGTERM handler, then import and run :func:`aelib.cli.main`."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _interrupted_early)
    try:
        from .cli import main as cli_main
    except (ImportError, OSError) as err:
        return _import_failed(err)
    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
