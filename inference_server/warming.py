"""The warm parent: what the supervisor imports so that the workers it forks find it loaded.

- The server's own libraries, once, at start.
- Before the first worker: the third-party modules the scoring script imports at its top (read
  from its syntax tree, never by running it), the libraries a pickled model needs (read from
  the pickle's opcodes, never unpickled: scikit-learn for a joblib'd estimator, torch for a
  ``torch.save`` file; model_scan.py reads them within half a second, and of what a pickle
  names only modules of installed packages are imported, never a program's ``__main__``), and
  those a previous run of the same deployment learned (``--warm-file``), so a deployment started
  again is warm from its first save. The worker finds them loaded instead of importing them a
  second time beside the parent.
- While a worker loads the script and runs ``init()`` (it reports every ``LEARN_EVERY_S``), and
  after its first ``run()``: whatever third-party modules it imported (lazily importing
  libraries, transformers or torch submodules, load most there). Told during ``init()``, this
  process imports them on another core meanwhile, and is warm about when the worker is ready.

Warming goes on between the supervisor's other work, a module at a time; a swap that is due goes
first and warming resumes after it. Importing never initialises CUDA or any other runtime that
a fork would break: importing torch does not touch the GPU; only the workers call into it.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import json
import keyword
import logging
import os
import sys
import sysconfig
import time
from collections.abc import Callable, Iterable
from importlib.machinery import ModuleSpec

from . import model_scan

logger = logging.getLogger("azmlinfsrv.supervisor")


class Preloader:
    def __init__(self, enabled: bool, warm_file: str | None = None):
        self.enabled = enabled  # for the user's libraries; the server's are always imported
        self.warm_file = warm_file
        self.learned: set[str] = set()
        self.imported: set[str] = set()
        self.pending: list[str] = []
        self.warmed = 0.0  # ms spent importing

    @staticmethod
    def import_server() -> None:
        """Import everything a worker needs to serve, once, here in the parent."""
        import uvicorn

        from . import app  # noqa: F401  (FastAPI, Starlette, werkzeug)

        async def nothing(scope, receive, send):
            pass

        config = uvicorn.Config(nothing, loop="uvloop", http="httptools", lifespan="off", log_config=None)
        config.load()

    def before_first_worker(self, options) -> None:
        """The script's own third-party imports (for a prompt flow, prompt flow's serving stack),
        the libraries its model's pickles name, and what the last run learned, imported now."""
        if not self.enabled:
            return
        started = time.perf_counter()
        if options.flow_dir:
            from .flow_worker import import_serving

            import_serving()
            logger.info(f"Prompt flow's serving stack imported in {(time.perf_counter() - started) * 1000:.0f} ms")
            started = time.perf_counter()
            names = sorted(self._remembered())
        else:
            # Finding a submodule imports its package: the time counts from here.
            names = (static_imports(options.entry_script, (options.app_root,))
                     + model_imports(options.model_dir, (options.app_root,)) + sorted(self._remembered()))
        self.learn(names)
        self.step(lambda: False)
        if self.imported:
            logger.info(f"Warm before the first worker: {len(self.imported)} modules in "
                        f"{(time.perf_counter() - started) * 1000:.0f} ms")

    def learn(self, modules: Iterable[str]) -> None:
        """Queue what a worker imported; ``step`` imports it."""
        new = [name for name in modules if name not in self.learned]
        self.learned.update(new)
        if self.enabled:
            self.pending.extend(name for name in new if name not in self.imported)
        if new and self.warm_file:
            self._remember()

    def step(self, interrupted: Callable[[], bool], most: int | None = None) -> None:
        """Import queued modules (``most`` of them) until done or until ``interrupted()``."""
        done = 0
        while self.pending and not interrupted() and (most is None or done < most):
            done += 1
            name = self.pending.pop(0)
            if name in self.imported or name in sys.modules or not _safe_name(name):
                self.imported.add(name)  # a program's __main__ is never imported, whoever named it
                continue
            self.imported.add(name)
            started = time.perf_counter()
            try:
                importlib.import_module(name)
            except BaseException as ex:  # a library that cannot load here is simply left to the worker
                logger.debug(f"Not preloading {name}: {ex!r}")
                continue
            self.warmed += (time.perf_counter() - started) * 1000

    def _remembered(self) -> set[str]:
        try:
            with open(self.warm_file, encoding="utf-8") as f:
                names = json.load(f)
        except (OSError, ValueError, TypeError):
            return set()
        return {n for n in names if isinstance(n, str)} if isinstance(names, list) else set()

    def _remember(self) -> None:
        """Keep what was learned for the next start of this deployment."""
        temporary = f"{self.warm_file}.tmp"
        try:
            with open(temporary, "w", encoding="utf-8") as f:
                json.dump(sorted(self.learned | self._remembered()), f)
            os.replace(temporary, self.warm_file)
        except OSError as ex:
            logger.debug(f"Cannot keep the warm imports in {self.warm_file}: {ex}")


def static_imports(entry_script: str, user_roots: Iterable[str]) -> list[str]:
    """The modules ``entry_script`` imports at its top level that are installed libraries (not
    the user's own modules, not relative imports), read from its syntax tree."""
    try:
        with open(entry_script, encoding="utf-8") as f:
            tree = ast.parse(f.read(), entry_script)
    except (OSError, SyntaxError, ValueError, RecursionError, MemoryError):  # too deeply nested for the parser
        return []  # the worker will say what is wrong
    names = []
    for statement in tree.body:
        if isinstance(statement, ast.Import):
            names += [alias.name for alias in statement.names]
        elif isinstance(statement, ast.ImportFrom) and statement.module and not statement.level:
            names.append(statement.module)
    roots = tuple(os.path.join(os.path.abspath(r), "") for r in user_roots)
    return [name for name in dict.fromkeys(names) if _installed(name, roots)]


# Of the modules a model's pickles name, how many are looked up (each lookup may import a library).
MODEL_NAMES_CHECKED = 200


def model_imports(model_dir: str | None, user_roots: Iterable[str]) -> list[str]:
    """The installed libraries the pickles in ``model_dir`` name, read from their opcodes (never
    unpickled), within model_scan's bound; a scan that stops short says so. Only modules of an
    installed package, never a program (``__main__``) nor a top-level module outside a package:
    a pickle is data from anywhere, and what it names is imported in the supervisor."""
    if not model_dir:
        return []
    names, scan = model_scan.scan(model_dir)
    if scan.stopped:
        logger.info(f"Model scan stopped {scan.stopped}: the first worker imports what else the model needs")
    roots = tuple(os.path.join(os.path.abspath(r), "") for r in user_roots)
    return [name for name in list(dict.fromkeys(names))[:MODEL_NAMES_CHECKED]
            if _safe_name(name) and _installed(name, roots, top_package=True)]


def _safe_name(name: str) -> bool:
    """Whether importing ``name`` runs no program: dotted identifiers, none a dunder name. A
    package's ``__main__`` is its command line (``python -m flask`` runs ``flask/__main__.py``),
    which would run in the supervisor."""
    return all(part.isidentifier() and not keyword.iskeyword(part)
               and not (part.startswith("__") and part.endswith("__")) for part in name.split("."))


def _installed(name: str, user_roots: tuple[str, ...], top_package: bool = False) -> bool:
    """Whether ``name`` is a module of an installed library (with ``top_package``: of an
    installed package, not a top-level single-file module, where scripts installed as modules
    live). Its top-level package is looked up first, which imports nothing: a package of the
    user's (the code folder is on sys.path) is never imported here, since its __init__ may do
    anything, initialise CUDA included. Finding a library's submodule imports the library, as
    preloading it would anyway."""
    top = name.partition(".")[0]
    spec = _library_module(top, user_roots)
    if spec is None or (top_package and not _is_package(spec)):
        return False
    return top == name or _library_module(name, user_roots) is not None


def _is_package(spec: ModuleSpec) -> bool:
    """Whether ``spec`` is a package's, read from its file: a module may claim to be one once
    imported (six sets ``__spec__.submodule_search_locations``), and find_spec returns what an
    imported module says of itself."""
    return os.path.splitext(os.path.basename(spec.origin or ""))[0] == "__init__"


def _library_module(name: str, user_roots: tuple[str, ...]) -> ModuleSpec | None:
    try:
        spec = importlib.util.find_spec(name)
    except Exception:  # a library that cannot even be found here is left to the worker
        return None
    origin = spec.origin if spec else None
    library = bool(origin) and not origin.startswith(user_roots) and origin.startswith(_library_roots())
    return spec if library else None


def _library_roots() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    roots = {paths[key] for key in ("purelib", "platlib")}
    return tuple(os.path.join(r, "") for r in roots | {os.path.realpath(r) for r in roots})
