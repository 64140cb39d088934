"""``python -m aelib train ...`` and ``python -m aelib evaluate ...``: see :mod:`aelib.cli`."""

import signal
import sys


def _interrupted_early(signum, frame):  # torch takes seconds to import: stop cleanly meanwhile
    name = signal.Signals(signum).name
    sys.stderr.write(f"python -m aelib: interrupted by {name} before training started\n")
    sys.exit(128 + signum)


for _signal in (signal.SIGINT, signal.SIGTERM):
    signal.signal(_signal, _interrupted_early)

from .cli import main  # noqa: E402

sys.exit(main())
