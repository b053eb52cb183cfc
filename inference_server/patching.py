"""Rung 0 of the update ladder: apply a save to the running worker without running init() again,
so a loaded model (in RAM or on a GPU) stays loaded.

The decision comes from the old and the new source's syntax trees, never from a text diff. A
module whose module-level statements, imports, class layouts, decorators or init() are unchanged,
and whose run() keeps its signature, can be patched: each changed function (or method) gets the
new code object, defaults and annotations in place, so every reference to it (a name imported
elsewhere, a decorator's wrapper, a bound method) runs the new code, and a function added by the
save is defined in the module. Anything else is a worker swap, with the reason.

Only the standard library is used: ``ast`` and ``compile`` make the code objects, and a function's
``__code__`` is replaced as CPython allows when its free variables match.
"""

from __future__ import annotations

import ast
import functools
import os
import sys
import time
from dataclasses import dataclass, field
from types import FunctionType, ModuleType

# Names the server calls or inspects: a change of their signature (or of init() at all) needs a
# fresh worker, since the server read them when the worker loaded the script.
ENTRY_POINTS = ("init", "run")


class NeedsSwap(Exception):
    """The change cannot be applied in place; the message says why (``init() changed``)."""


@dataclass
class Patch:
    """What a save changed, once decided: the functions to replace and those to add, per module."""

    # (module, path to the function, its old definition, its new one)
    replaced: list[tuple[ModuleType, list[str], ast.stmt, ast.stmt]] = field(default_factory=list)
    added: list[tuple[ModuleType, ast.stmt]] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return [".".join(path) + "()" for _, path, _, _ in self.replaced] + \
               [f"{node.name}()" for _, node in self.added if hasattr(node, "name")]


@dataclass
class Outcome:
    """``patched`` (what), ``swap`` (why) or ``failed`` (the traceback)."""

    kind: str
    detail: str = ""
    traceback: str = ""
    duration_ms: float = 0.0


class Patcher:
    """Keeps the source each user module was loaded from, and applies saves to them. One per
    worker (:data:`current`): the loader of user modules reports to it."""

    def __init__(self) -> None:
        self.sources: dict[str, str] = {}  # file -> the source its module now runs
        self.modules: dict[str, str] = {}  # file -> module name
        self.roots: tuple[str, ...] = ()  # the code folders, where data files may change too
        self.since = time.time()  # when this worker loaded the code (then: when it last applied a save)

    def loaded(self, name: str, path: str, source: bytes | str) -> None:
        """A user module was compiled from ``source`` (the loader calls this)."""
        self.sources[path] = source.decode("utf-8", "replace") if isinstance(source, bytes) else source
        self.modules[path] = name

    def apply(self) -> Outcome:
        started = time.perf_counter()
        try:
            patch, new_sources = self._decide()
        except NeedsSwap as ex:
            return Outcome("swap", str(ex))
        except SyntaxError as ex:
            return Outcome("failed", f"{ex.msg} ({ex.filename}, line {ex.lineno})", _format(ex))
        if not patch.replaced and not patch.added:
            if self._data_changed():  # a file beside the code (read in init()) changed
                return Outcome("swap", "a file other than the loaded Python source changed")
            return Outcome("patched", "", duration_ms=_since(started))  # nothing to apply: a repeated reload
        try:
            _apply(patch, new_sources)
        except NeedsSwap as ex:
            return Outcome("swap", str(ex))
        except Exception as ex:  # a default value or a new function's decorator raised
            return Outcome("failed", f"{type(ex).__name__}: {ex}", _format(ex))
        self.sources.update(new_sources)
        self.since = time.time()
        return Outcome("patched", ", ".join(patch.names), duration_ms=_since(started))

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

    def _decide(self) -> tuple[Patch, dict[str, str]]:
        patch, new_sources = Patch(), {}
        for path, old in self.sources.items():
            module = sys.modules.get(self.modules[path])
            if module is None:
                continue
            try:
                with open(path, encoding="utf-8") as f:
                    new = f.read()
            except OSError:
                raise NeedsSwap(f"{path} cannot be read") from None
            if new == old:
                continue
            _compare_module(module, _outline(old, path), _outline(new, path), patch,
                            entry=self.modules[path] == "entry_module")
            new_sources[path] = new
        return patch, new_sources


@dataclass(frozen=True)
class _Outline:
    """A module's source, parsed: its definitions by name with their dumps, and the dump of
    every other statement."""

    definitions: dict[str, ast.stmt]
    dumps: dict[str, str]
    rest: str


@functools.lru_cache(maxsize=64)
def _outline(source: str, path: str) -> _Outline:
    """Cached: the source a save replaces was outlined when that save was applied, so a patch
    parses and dumps only the new source."""
    definitions, rest = _split(ast.parse(source, path).body)
    return _Outline(definitions, {name: _dump([node]) for name, node in definitions.items()}, _dump(rest))


def _compare_module(module: ModuleType, old: _Outline, new: _Outline, patch: Patch, entry: bool) -> None:
    if old.rest != new.rest:
        raise NeedsSwap(f"module-level statements or imports of {module.__name__} changed")
    for name in old.definitions.keys() - new.definitions.keys():
        raise NeedsSwap(f"{name} was removed from {module.__name__}")
    for name, node in new.definitions.items():
        before = old.definitions.get(name)
        if before is None:
            if isinstance(node, ast.ClassDef) or (entry and name in ENTRY_POINTS):
                raise NeedsSwap(f"{name} was added to {module.__name__}")
            patch.added.append((module, node))
        elif old.dumps[name] != new.dumps[name]:
            _compare_definition(module, [name], before, node, patch, entry)


def _compare_definition(module: ModuleType, path: list[str], old: ast.stmt, new: ast.stmt, patch: Patch,
                        entry: bool) -> None:
    name = ".".join(path)
    if type(old) is not type(new):
        raise NeedsSwap(f"{name} changed from a {_kind(old)} to a {_kind(new)}")
    if _dump(old.decorator_list) != _dump(new.decorator_list):
        raise NeedsSwap(f"the decorators of {name} changed")
    if isinstance(new, ast.ClassDef):
        _compare_class(module, path, old, new, patch)
        return
    if entry and len(path) == 1 and path[0] == "init":
        raise NeedsSwap("init() changed")
    if entry and len(path) == 1 and path[0] in ENTRY_POINTS and _dump([old.args]) != _dump([new.args]):
        raise NeedsSwap(f"the signature of {name}() changed")
    patch.replaced.append((module, path, old, new))


def _compare_class(module: ModuleType, path: list[str], old: ast.ClassDef, new: ast.ClassDef, patch: Patch) -> None:
    name = ".".join(path)
    if _dump(old.bases + old.keywords) != _dump(new.bases + new.keywords):
        raise NeedsSwap(f"the bases of class {name} changed")
    old_defs, old_rest = _split(old.body)
    new_defs, new_rest = _split(new.body)
    if _dump(old_rest) != _dump(new_rest) or old_defs.keys() != new_defs.keys():
        raise NeedsSwap(f"the layout of class {name} changed")
    for member, node in new_defs.items():
        if _dump([old_defs[member]]) != _dump([node]):
            _compare_definition(module, [*path, member], old_defs[member], node, patch, entry=False)


def _apply(patch: Patch, new_sources: dict[str, str]) -> None:
    """Check every replacement first, then make them all: a save applies whole or not at all."""
    plans = [(_target(module, path, old), _compiled(module, path, new)) for module, path, old, new in patch.replaced]
    for target, fresh in plans:
        if target.__code__.co_freevars != fresh.__code__.co_freevars:
            raise NeedsSwap(f"{target.__qualname__}() closes over other names now")
    for target, fresh in plans:
        target.__code__ = fresh.__code__
        target.__defaults__ = fresh.__defaults__
        target.__kwdefaults__ = fresh.__kwdefaults__
        target.__annotations__ = fresh.__annotations__
        target.__doc__ = fresh.__doc__
    for module, node in patch.added:
        exec(compile(ast.Module([node], type_ignores=[]), module.__file__, "exec"), module.__dict__)


def _target(module: ModuleType, path: list[str], old: ast.FunctionDef | ast.AsyncFunctionDef) -> FunctionType:
    """The function object now running: the module's (or class's) attribute, unwrapped from
    staticmethod/classmethod and from decorators made with functools.wraps (inference-schema's),
    and checked against where the old source defines it."""
    holder, value = module, None
    for part in path:
        value = holder.__dict__.get(part) if isinstance(holder, type) else getattr(holder, part, None)
        holder = value
    value = getattr(value, "__func__", value)
    while hasattr(value, "__wrapped__"):
        value = value.__wrapped__
    lines = {old.lineno, *(d.lineno for d in old.decorator_list[:1])}
    if (not isinstance(value, FunctionType) or value.__code__.co_name != path[-1]
            or value.__code__.co_firstlineno not in lines):
        raise NeedsSwap(f"{'.'.join(path)} is not a plain function in the running worker")
    return value


def _compiled(module: ModuleType, path: list[str], node: ast.FunctionDef | ast.AsyncFunctionDef) -> FunctionType:
    """The new function, compiled where it stands (a method inside its class, for super() and
    private names) from the file's name and lines, so tracebacks and breakpoints point at it."""
    bare = _without_decorators(node)
    statement: ast.stmt = bare
    for class_name in reversed(path[:-1]):
        statement = ast.ClassDef(class_name, [], [], [statement], [], lineno=node.lineno, col_offset=0,
                                 end_lineno=node.end_lineno, end_col_offset=0)
    tree = ast.fix_missing_locations(ast.Module([statement], type_ignores=[]))
    namespace = dict(module.__dict__)  # defaults are evaluated against the module's names
    exec(compile(tree, module.__file__, "exec"), namespace)
    value = namespace[path[0]]
    for part in path[1:]:
        value = value.__dict__[part]
    return getattr(value, "__func__", value)


def _without_decorators(node):
    bare = type(node)(**{name: getattr(node, name) for name in node._fields})
    bare.decorator_list = []
    ast.copy_location(bare, node)
    bare.end_lineno, bare.end_col_offset = node.end_lineno, node.end_col_offset
    return bare


def _split(body: list[ast.stmt]) -> tuple[dict[str, ast.stmt], list[ast.stmt]]:
    """Definitions by name, and every other statement (a docstring included) in order."""
    definitions, rest = {}, []
    for statement in body:
        if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            if statement.name in definitions:
                rest.append(statement)  # a name defined twice: compare it as a statement
            else:
                definitions[statement.name] = statement
        else:
            rest.append(statement)
    return definitions, rest


def _dump(nodes) -> str:
    return "\n".join(ast.dump(node) for node in nodes)


def _kind(node: ast.stmt) -> str:
    return "class" if isinstance(node, ast.ClassDef) else "function"


def _since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def _format(ex: BaseException) -> str:
    import traceback

    return "".join(traceback.format_exception_only(type(ex), ex))


current = Patcher()
