"""``python -m devtui.cli``: the same as ``python -m devtui``."""

import sys

from . import main

sys.exit(main())
