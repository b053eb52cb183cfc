"""The commands: ``up``, ``show``, ``list``, ``invoke``, ``logs``, ``down``, ``validate``, and
``devtui [PATH]``, the terminal app.

The verbs mirror ``az ml online-endpoint/online-deployment ... --local``. Every command prints
for people; errors name file, line and field and exit non-zero (2 for bad input), and no devtui
traceback ever reaches the terminal.

``parser`` reads the command line, ``up`` and ``commands`` carry out the verbs, ``host`` runs an
engine in this process (for ``up`` and the app alike), and ``views`` turns its events into lines,
the registry record and log files.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import traceback

from .. import registry
from .errors import BAD_INPUT, CommandError, error, warn
from .parser import parse

__all__ = ["BAD_INPUT", "CommandError", "LaunchConfig", "Printer", "Recorder", "main"]


def __getattr__(name: str):
    """The engine's views, loaded when asked for: a verb like `show` never needs the engine."""
    if name in ("LaunchConfig", "Printer", "Recorder"):
        from . import views

        return getattr(views, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _check_home() -> None:
    """DEVTUI_HOME must be a folder devtui can write: the registry and the logs live there."""
    home = registry.home()
    try:
        registry.private_folder(home / "endpoints")
        # A file of its own: several devtui commands may check at the same moment.
        tempfile.TemporaryFile(dir=home).close()
    except OSError as ex:
        raise CommandError(f"DEVTUI_HOME={home} is not a folder devtui can write ({ex.strerror}); point DEVTUI_HOME "
                           "at a writable folder (default ~/.devtui)", BAD_INPUT) from None


def _crashed(ex: Exception) -> int:
    """A devtui bug: the user gets one line, the details go to a file."""
    crash = registry.home() / "crash.log"
    try:
        registry.private_folder(crash.parent)
        with open(crash, "a", opener=registry.private_opener) as f:
            f.write(f"--- {time.ctime()} devtui {' '.join(sys.argv[1:])}\n{traceback.format_exc()}\n")
        where = f"Details are in {crash}"
    except OSError:
        where = "Run it again with DEVTUI_HOME set to a writable folder to keep the details"
    error(f"devtui failed unexpectedly ({type(ex).__name__}: {ex}). {where}; please report it.")
    return 70


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    try:
        _check_home()
        return args.func(args)
    except BrokenPipeError:
        # The reader went away (`devtui logs | head`): not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except CommandError as ex:
        error(str(ex))
        return ex.code
    except registry.BadName as ex:
        error(str(ex))
        return BAD_INPUT
    except KeyboardInterrupt:
        return 130
    except Exception as ex:
        if _is_spec_error(ex):
            for problem in ex.problems:
                error(str(problem))
            warn(ex.warnings)  # a misspelled section is often why another one is "missing"
            return BAD_INPUT
        return _crashed(ex)


def _is_spec_error(ex: Exception) -> bool:
    """A problem in the user's YAML; only verbs that read it load the models that raise it."""
    spec = sys.modules.get("devtui.spec")
    return spec is not None and isinstance(ex, spec.SpecError)
