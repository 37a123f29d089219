"""``python -m refcomp.cli``: the same as ``python -m refcomp``."""

import sys

from . import main

sys.exit(main())
