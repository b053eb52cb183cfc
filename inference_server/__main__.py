"""``python -m inference_server``: the azmlinfsrv command line, plus what devtui needs (the
flags are read in ``options``).
"""

from __future__ import annotations

import sys

from . import __version__
from .options import options_from, parse
from .supervisor import run


def main(argv: list[str] | None = None) -> int:
    options = options_from(parse(argv))
    # Logs are read through a pipe by devtui; without this they would arrive in 8 KiB chunks.
    sys.stdout.reconfigure(line_buffering=True)
    sys.stderr.reconfigure(line_buffering=True)
    print(f"\ndevtui inference server v{__version__} (azmlinfsrv compatible)\n", flush=True)
    return run(options)


if __name__ == "__main__":
    sys.exit(main())
