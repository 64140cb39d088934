"""``python -m aelib train ...``: see :mod:`aelib.cli`."""

import sys

from .cli import main

sys.exit(main())
