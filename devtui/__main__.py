"""``python -m devtui``: the same as the ``devtui`` command."""

import sys

from .cli import main

sys.exit(main())
