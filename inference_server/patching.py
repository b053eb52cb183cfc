"""Rung 0 of the update ladder: apply a save to the running worker without running init() again,
so a loaded model (in RAM or on a GPU) stays loaded.

In two steps, so the slow part stays off the serving path:

- :meth:`Patcher.decide` reads the saved files, parses and compares them with what runs, and
  compiles what changed (``patch_plan``); it also checks what already ran (``patch_reach``): a
  function that module-level code or a decorator called at import, or that made functions still
  in use, cannot be patched faithfully. It changes nothing that runs, so a worker thread may call
  it while requests are served.
- :meth:`Patcher.commit` carries the decision out on the event loop's thread, between run()
  calls: it first makes every new function (default values and a new function's decorators run
  here, against the module's names but into a scratch namespace), and only when all of them
  succeeded puts them in place: a save applies whole or not at all, and :attr:`Patcher.sources`
  always holds what runs.

The decision comes from the old and the new source's syntax trees (text only tells what is the
same, so it need not be parsed or compared again). A module whose module-level statements, imports, class layouts, decorators or init() are unchanged,
and whose run() keeps its signature, can be patched: each changed function (or method) gets the
new code object, defaults and annotations in place, so every reference to it (a name imported
elsewhere, a decorator's wrapper, a bound method) runs the new code; a function added by the save
is defined in the module; code that only moved gets its new line numbers; and a functools cache
over changed code is cleared. Anything else is a worker swap, with the reason.
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections import ChainMap
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import FunctionType, ModuleType

from . import patch_outline, patch_reach
from .patch_outline import Outline, first
from .patch_plan import (ENTRY_POINTS, NeedsSwap, Plan, compare_module, compile_definition, function_code,
                         nested_codes, paired, shifted, target)

__all__ = ["ENTRY_POINTS", "PATCH_LIMIT_BYTES", "Decision", "NeedsSwap", "Outcome", "Patcher"]

# Above this much saved source (the files a save changed, together), a swap. The first save of a
# module parses the source it runs as a whole (later saves parse only what they changed), on the
# serving worker's interpreter: a piece at a time, so the event loop is never held up for long, but
# its requests share the interpreter meanwhile (0.4 s for 0.5 MB, 3.3 s for 5 MB on 2 busy cores).
# A new worker loads a large module in its own process while the old one goes on serving.
PATCH_LIMIT_BYTES = 512 * 1024


@dataclass
class Outcome:
    """What a patch request came to.

    ``kind``: ``patched`` (``detail``: what, e.g. ``run(), helper() (cache cleared)`` or ``the line
    numbers of helper()``; empty when there was nothing to apply, see :attr:`nothing`), ``swap``
    (``detail``: why) or ``failed`` (``detail``: the error, ``traceback``: its text). The running
    code is untouched unless ``kind`` is ``patched``."""

    kind: str
    detail: str = ""
    traceback: str = ""
    duration_ms: float = 0.0  # decide() and commit() together
    commit_ms: float = 0.0  # the part on the event loop

    @property
    def nothing(self) -> bool:
        """Patched, but nothing to apply: the saved code is what runs (a repeated reload, or a save
        that changed only comments or blank lines where no code moved)."""
        return self.kind == "patched" and not self.detail

    @property
    def summary(self) -> str:
        """One line for the worker's log."""
        if self.nothing:
            return "nothing to apply (no code changed)"
        if self.kind == "patched":
            return f"patched {self.detail} in place"
        if self.kind == "swap":
            return f"not a patch ({self.detail})"
        return f"the saved code cannot be applied ({self.detail})"


@dataclass(eq=False)
class Decision:
    """What :meth:`Patcher.decide` found; :meth:`Patcher.commit` carries it out.

    ``kind``: ``patch`` (``detail`` says what), ``nothing`` (no code to change; the saved text is
    recorded at commit), ``swap`` (``detail`` says why) or ``failed`` (the saved code does not
    compile: ``detail`` and ``traceback``)."""

    kind: str
    detail: str = ""
    traceback: str = ""
    plan: Plan | None = None
    sources: dict[str, str] = field(default_factory=dict)  # file -> its saved source, for files that differ
    base: dict[str, str] = field(default_factory=dict)  # file -> the source it was compared with
    outlines: dict[str, Outline] = field(default_factory=dict)
    started: float = 0.0  # time.time() when decide() began
    decide_ms: float = 0.0


class Patcher:
    """Keeps the source each user module runs, and applies saves to them. One per worker, made
    by the worker and handed to what needs it: the loader of user modules reports to
    :meth:`loaded`, the patch requests call :meth:`decide` and :meth:`commit`.

    decide() may run on any thread; commit() and apply() run on the thread that runs the
    user's code between requests (the event loop's), one at a time."""

    def __init__(self, roots: Iterable[str] = ()) -> None:
        self.sources: dict[str, str] = {}  # file -> the source its module now runs
        self.modules: dict[str, str] = {}  # file -> module name
        self.roots = tuple(os.path.abspath(r) for r in roots)  # the code folders, where data files may change too
        self.since = time.time()  # when this worker loaded the code (then: when it last applied a save)
        self._outlines: dict[str, Outline] = {}  # file -> the outline of the source it runs

    def loaded(self, name: str, path: str, source: bytes | str) -> None:
        """A user module was compiled from ``source`` (the loader calls this)."""
        self.sources[path] = source.decode("utf-8", "replace") if isinstance(source, bytes) else source
        self.modules[path] = name
        self._outlines.pop(path, None)

    def apply(self) -> Outcome:
        """Decide and commit in one step (on the thread that runs the user's code)."""
        return self.commit(self.decide())

    # -- decide -----------------------------------------------------------------------------------

    def decide(self) -> Decision:
        """Read the saved files, compare them with what runs and compile what changed. Changes
        nothing that runs; safe to call from a worker thread while requests are served."""
        started, began = time.time(), time.perf_counter()
        base = dict(self.sources)
        decision = Decision("nothing", base=base, started=started)
        try:
            decision.plan = self._compare(base, decision)
            if not decision.plan.empty:
                _Checks(self, base, decision).run()
                decision.kind, decision.detail = "patch", decision.plan.detail()
            elif self._data_changed():  # a file beside the code (read in init()) changed
                raise NeedsSwap("a file other than the loaded Python source changed")
        except NeedsSwap as ex:
            decision.kind, decision.detail, decision.plan = "swap", str(ex), None
        except SyntaxError as ex:
            decision.kind, decision.plan = "failed", None
            decision.detail, decision.traceback = f"{ex.msg} ({ex.filename}, line {ex.lineno})", _format(ex)
        except Exception as ex:  # what the comparison did not foresee: a fresh worker is faithful
            decision.kind, decision.plan = "swap", None
            decision.detail = f"the change could not be compared ({type(ex).__name__}: {ex})"
        decision.decide_ms = _since(began)
        return decision

    def _compare(self, base: dict[str, str], decision: Decision) -> Plan:
        saved = []
        for path, old in base.items():
            module = sys.modules.get(self.modules[path])
            if module is None:
                continue
            try:
                with open(path, encoding="utf-8", newline="") as f:
                    new = f.read()
            except (OSError, UnicodeDecodeError):
                raise NeedsSwap(f"{path} cannot be read") from None
            if new != old:
                saved.append((path, module, new))
        _check_size(saved)
        for path, _, new in saved:  # every file first: a syntax error anywhere fails the save
            decision.outlines[path] = patch_outline.outline_after(self.outline(path, base[path]), new)
            decision.sources[path] = new
        plan = Plan()
        for path, module, _ in saved:
            compare_module(plan, module, self.outline(path, base[path]), decision.outlines[path],
                           entry=self.modules[path] == "entry_module")
        return plan

    def outline(self, path: str, source: str) -> Outline:
        """The outline of ``source``, the source ``path`` runs (kept: a save is compared with it)."""
        outline = self._outlines.get(path)
        if outline is None or outline.source is not source and outline.source != source:
            outline = self._outlines[path] = patch_outline.outline(source, path)
        return outline

    def _data_changed(self) -> bool:
        """Whether a file in the code folders other than a loaded module changed since ``since``."""
        for root in self.roots:
            for folder, folders, names in os.walk(root):
                folders[:] = [f for f in folders if f != "__pycache__" and not f.startswith(".")]
                for name in names:
                    path = os.path.join(folder, name)
                    if path in self.sources or name.startswith("."):
                        continue
                    try:
                        if os.stat(path).st_mtime >= self.since - 1:
                            return True
                    except OSError:
                        return True  # removed meanwhile: a change
        return False

    # -- commit -----------------------------------------------------------------------------------

    def commit(self, decision: Decision) -> Outcome:
        """Carry out DECISION, whole or not at all, on the thread that runs the user's code while
        no run() call executes. A decision made before another commit is made again first."""
        began = time.perf_counter()
        if decision.kind in ("patch", "nothing") and self._stale(decision):
            decision = self.decide()
        if decision.kind in ("swap", "failed"):
            return _outcome(decision, began, decision.kind, decision.detail, decision.traceback)
        if decision.kind == "patch":
            try:
                made = _make(decision.plan)
            except NeedsSwap as ex:
                return _outcome(decision, began, "swap", str(ex))
            except Exception as ex:  # a default value or a new function's decorator raised
                return _outcome(decision, began, "failed", f"{type(ex).__name__}: {ex}", _format(ex))
            _install(decision.plan, made)
        self.sources.update(decision.sources)
        self._outlines.update(decision.outlines)
        self.since = decision.started
        return _outcome(decision, began, "patched", decision.detail)

    def _stale(self, decision: Decision) -> bool:
        if any(self.sources.get(path) is not source for path, source in decision.base.items()):
            return True
        plan = decision.plan
        return plan is not None and any(item.target.__code__ is not item.running
                                        for item in [*plan.changes, *plan.relines])


class _Checks:
    """The part of decide() that looks at the running worker: the functions to change, their new
    code, and what already ran (``patch_reach``)."""

    def __init__(self, patcher: Patcher, base: dict[str, str], decision: Decision):
        self.patcher, self.base, self.plan = patcher, base, decision.plan
        self.changed = set(decision.sources)
        self.files = set(base)
        names = set(patcher.modules[p] for p in base)
        self.user_classes = lambda cls: getattr(cls, "__module__", None) in names
        self.calls = patch_reach.Calls(self.files, self.user_classes, self._outline_of)

    def run(self) -> None:
        plan = self.plan
        for change in plan.changes:
            change.target = target(change.module, _file(change.module), change.path, change.old)
            change.running = change.target.__code__
            change.code = compile_definition(change.module, _file(change.module), change.path, change.new)
            if function_code(change.code, change.path).co_freevars != change.running.co_freevars:
                raise NeedsSwap(f"{change.target.__qualname__}() closes over other names now")
        for reline in plan.relines:
            self._reline(reline)
        for add in plan.adds:
            add.code = compile_definition(add.module, _file(add.module), [add.node.name], add.node, decorated=True)
        modules = [sys.modules[self.patcher.modules[p]] for p in self.files if self.patcher.modules[p] in sys.modules]
        if plan.changes:
            self._ran_at_import(modules)
        alive = patch_reach.live(modules, self.files, self.user_classes)
        self._products(alive)
        if plan.changes:
            self._caches(alive)

    def _reline(self, reline) -> None:
        filename = _file(reline.module)
        reline.target = target(reline.module, filename, reline.path, reline.old)
        reline.running = reline.target.__code__
        if reline.exact:
            shifted(reline.running, first(reline.new) - first(reline.old), reline.codes)
            return
        fresh = function_code(compile_definition(reline.module, filename, reline.path, reline.new), reline.path)
        if not paired(reline.running, fresh, reline.codes):
            raise NeedsSwap(f"{reline.name[:-2]} moved, and its running code does not match its new lines")

    def _products(self, alive: patch_reach.Live) -> None:
        """Functions that changed code made (a factory's, a custom decorator's wrapper) keep the old
        code: a swap. Those that moved code made get the new lines too."""
        made = {id(code): change for change in self.plan.changes for code in nested_codes(change.running)}
        moved = {key: pair for reline in self.plan.relines for key, pair in reline.codes.items()}
        targets = {id(item.target) for item in [*self.plan.changes, *self.plan.relines]}
        for function in alive.functions:
            key = id(function.__code__)
            if id(function) in targets:
                continue
            if key in made:
                raise NeedsSwap(f"{made[key].name} made {function.__name__}(), which keeps the old code")
            if key in moved:
                self.plan.products.append((function, *moved[key]))

    def _ran_at_import(self, modules: list[ModuleType]) -> None:
        """A changed function that module-level code (or a decorator) called at import made what
        is in use now with the old code: a swap."""
        names = {change.target.__code__.co_name for change in self.plan.changes}
        names |= {self.patcher.modules[p].rpartition(".")[2] for p in self.changed}
        mentions = re.compile(r"\b(?:%s)\b" % "|".join(map(re.escape, sorted(names))))
        roots = []
        for module in modules:
            path = _file(module)
            if path not in self.files or (path not in self.changed and not mentions.search(self.base[path])):
                continue
            for chain, runs in self._outline_of(path).import_calls:
                roots.extend(self.calls.resolve(chain, runs, module.__dict__))
        reached = self.calls.reach(roots)
        for change in self.plan.changes:
            if id(change.target) in reached:
                raise NeedsSwap(f"{change.target.__qualname__}() ran at import: what it made keeps the old code")

    def _caches(self, alive: patch_reach.Live) -> None:
        """A functools cache over a changed function, or over one that calls it, is cleared."""
        changed = {id(change.target) for change in self.plan.changes}
        for cache in alive.caches:
            function = patch_reach.innermost(cache)
            if function is not None and (id(function) in changed or changed & self.calls.reach([function]).keys()):
                self.plan.caches.append((cache, f"{function.__qualname__}()"))

    def _outline_of(self, path: str) -> Outline | None:
        if path not in self.base:
            return None
        source = self.base[path]
        if len(source) > PATCH_LIMIT_BYTES and self.patcher._outlines.get(path) is None:
            raise NeedsSwap(f"{os.path.basename(path)} is {_size(len(source))}, too large to check "
                            "what its import ran without holding up requests")
        return self.patcher.outline(path, source)


def _make(plan: Plan) -> tuple[list, list]:
    """Every new function, made but not put in place: a new function with its decorators (which
    run now), a changed one with its default values. Raises what they raise."""
    scratch: dict[int, dict] = {}
    adds = []
    for add in plan.adds:
        namespace = scratch.setdefault(id(add.module), {})
        exec(add.code, add.module.__dict__, namespace)
        adds.append((add.module, add.node.name, namespace[add.node.name]))
    changes = []
    for change in plan.changes:
        local = ChainMap({}, scratch.get(id(change.module), {}))
        exec(change.code, change.module.__dict__, local)
        value = local.maps[0][change.path[0]]
        for part in change.path[1:]:
            value = value.__dict__[part]
        fresh = getattr(value, "__func__", value)
        if not isinstance(fresh, FunctionType) or fresh.__code__.co_freevars != change.running.co_freevars:
            raise NeedsSwap(f"{change.target.__qualname__}() closes over other names now")
        changes.append((change.target, fresh))
    return changes, adds


def _install(plan: Plan, made: tuple[list, list]) -> None:
    """Put everything in place; if anything cannot be, undo what was (nothing here is expected to
    fail: every check ran before)."""
    changes, adds = made
    undo = []

    def put(obj, attr: str, value) -> None:
        undo.append((obj, attr, getattr(obj, attr)))
        setattr(obj, attr, value)

    try:
        for running, fresh in changes:
            for attr in ("__code__", "__defaults__", "__kwdefaults__", "__annotations__", "__doc__"):
                put(running, attr, getattr(fresh, attr))
        for reline in plan.relines:
            put(reline.target, "__code__", reline.codes[id(reline.running)][1])
        for function, old, new in plan.products:
            if function.__code__ is old:
                put(function, "__code__", new)
        for module, name, value in adds:
            undo.append((module.__dict__, name, None))
            module.__dict__[name] = value
    except BaseException:
        for obj, attr, value in reversed(undo):
            if isinstance(obj, dict):
                obj.pop(attr, None)
            else:
                setattr(obj, attr, value)
        raise
    for cache, _ in plan.caches:
        cache.cache_clear()


def _check_size(saved: list[tuple[str, ModuleType, str]]) -> None:
    size = sum(len(new) for _, _, new in saved)
    if size > PATCH_LIMIT_BYTES:
        names = ", ".join(os.path.basename(path) for path, _, _ in saved)
        raise NeedsSwap(f"{names} {'is' if len(saved) == 1 else 'are'} {_size(size)}, over the "
                        f"{_size(PATCH_LIMIT_BYTES)} a patch compares without holding up requests")


def _file(module: ModuleType) -> str:
    return module.__spec__.origin if module.__spec__ is not None and module.__spec__.origin else module.__file__


def _size(size: int) -> str:
    return f"{size / 2 ** 20:.1f} MB" if size >= 2 ** 20 else f"{size // 1024} KB"


def _outcome(decision: Decision, began: float, kind: str, detail: str, traceback: str = "") -> Outcome:
    commit_ms = _since(began)
    return Outcome(kind, detail, traceback, duration_ms=round(decision.decide_ms + commit_ms, 3), commit_ms=commit_ms)


def _since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def _format(ex: BaseException) -> str:
    import traceback

    return "".join(traceback.format_exception_only(type(ex), ex))
