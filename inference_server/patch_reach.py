"""Rung 0's checks on what already ran: code that module-level statements (or decorators) ran at
import, functions that changed code made and that are still in use, and functools caches that
hold answers of old code.

- :class:`Calls`: what a module's import called (``Outline.import_calls``: the calls of
  module-level statements, decorators, default values and class bodies), resolved to the user's
  running functions and followed through their bodies. What those produced was made by the old
  code: a change to any of them needs a fresh worker.
- :func:`live`: the user's function objects reachable from the user's modules (through classes,
  wrappers, closures and module-level containers), and the functools caches among them.

Only reads: nothing here changes running code.
"""

from __future__ import annotations

import ast
import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import _lru_cache_wrapper, partial
from types import FunctionType, MethodType, ModuleType

from .patch_outline import Chain, Outline, calls_in, split
from .patch_plan import filled

CONTAINER_LIMIT = 1000  # items of a module-level list or dict looked into


# -- following calls through the user's functions -------------------------------------------------


@dataclass
class Calls:
    """Resolves called names to the user's running functions and follows their bodies.
    ``outline_of(filename)`` gives the outline of the source that file's module runs (or None)."""

    files: set[str]
    user_classes: Callable[[type], bool]
    outline_of: Callable[[str], Outline | None]
    _callees: dict[int, list[FunctionType]] = field(default_factory=dict)

    def resolve(self, chain: Chain, runs: tuple[str, ...], namespace: dict, owner: type | None = None
                ) -> list[FunctionType]:
        value = owner if owner is not None and chain[0] in ("self", "cls") else namespace.get(chain[0])
        for attr in chain[1:]:
            if value is None:
                return []
            value = inspect.getattr_static(value, attr, None)
        return list(self._functions(value, runs))

    def _functions(self, value, runs: tuple[str, ...]) -> Iterable[FunctionType]:
        for _ in range(8):  # unwrap: staticmethod, bound method, partial, functools.wraps layers
            if isinstance(value, (staticmethod, classmethod, MethodType)):
                value = value.__func__
            elif isinstance(value, partial):
                value = value.func
            elif isinstance(value, type):
                if self.user_classes(value):
                    for name in runs:
                        yield from self._functions(inspect.getattr_static(value, name, None), ())
                return
            elif not isinstance(value, FunctionType) and self.user_classes(type(value)):
                yield from self._functions(inspect.getattr_static(type(value), "__call__", None), ())
                return
            else:
                if isinstance(value, FunctionType) and value.__code__.co_filename in self.files:
                    yield value
                value = wrapped(value)
            if value is None:
                return

    def reach(self, roots: Iterable[FunctionType]) -> dict[int, FunctionType]:
        """ROOTS and every user function their bodies call, by id."""
        reached: dict[int, FunctionType] = {}
        todo = list(roots)
        while todo:
            function = todo.pop()
            if id(function) in reached:
                continue
            reached[id(function)] = function
            todo.extend(self.callees(function))
        return reached

    def callees(self, function: FunctionType) -> list[FunctionType]:
        key = id(function)
        if key not in self._callees:
            self._callees[key] = []  # a recursive call finds this while it is worked out
            node = self._definition(function)
            owner = _owner(function)
            called = [callee for chain, runs in (calls_in(node) if node is not None else ())
                      for callee in self.resolve(chain, runs, function.__globals__, owner)]
            # A wrapper calls what it wraps: the functions it closes over.
            called += [cell.cell_contents for cell in function.__closure__ or ()
                       if filled(cell) and isinstance(cell.cell_contents, FunctionType)
                       and cell.cell_contents.__code__.co_filename in self.files]
            self._callees[key] = called
        return self._callees[key]

    def _definition(self, function: FunctionType) -> ast.AST | None:
        """The running function's definition in the source its module runs."""
        outline = self.outline_of(function.__code__.co_filename)
        parts = [p for p in function.__qualname__.split(".") if p != "<locals>"]
        top = outline.definitions.get(parts[0]) if outline is not None and parts else None
        if top is None:
            return None
        code = function.__code__
        node = outline.node(top)
        for part in parts[1:]:
            node = split(node.body)[0].get(part) if isinstance(node, ast.ClassDef) else None
        if node is not None and node.name == code.co_name and code.co_firstlineno in _lines(node):
            return node
        return next((candidate for candidate in ast.walk(outline.node(top))  # nested: made by a function
                     if isinstance(candidate, (ast.FunctionDef, ast.AsyncFunctionDef))
                     and candidate.name == code.co_name and code.co_firstlineno in _lines(candidate)), None)


def _lines(node) -> set[int]:
    return {node.lineno, *(d.lineno for d in node.decorator_list)}


def _owner(function: FunctionType) -> type | None:
    """The class a method was defined in, for ``self.x()`` and ``cls.x()``."""
    parts = function.__qualname__.split(".")
    if len(parts) < 2 or "<locals>" in parts:
        return None
    module = inspect.getmodule(function)
    value = module
    for part in parts[:-1]:
        value = inspect.getattr_static(value, part, None)
    return value if isinstance(value, type) else None


# -- what is alive --------------------------------------------------------------------------------


@dataclass
class Live:
    functions: list[FunctionType] = field(default_factory=list)  # the user's, reachable
    caches: list[object] = field(default_factory=list)  # functools caches (lru_cache, cache)


def live(modules: Iterable[ModuleType], files: set[str], user_classes: Callable[[type], bool]) -> Live:
    """The user's function objects reachable from the user's modules: module attributes, class
    members, what wrappers wrap (``__wrapped__``, closures), the items of module-level
    containers and the attributes of module-level instances of the user's classes."""
    found = Live()
    seen: set[int] = set()
    todo = [(value, 0) for module in modules for value in list(vars(module).values())]
    while todo:
        value, depth = todo.pop()
        if value is None or id(value) in seen or isinstance(value, ModuleType) or depth > 4:
            continue
        seen.add(id(value))
        todo.extend((inner, depth + 1) for inner in _inside(value, depth, files, user_classes, found))
    return found


def _inside(value, depth: int, files: set[str], user_classes, found: Live) -> list:
    """What VALUE holds that may be (or hold) the user's functions."""
    if isinstance(value, FunctionType):
        if value.__code__.co_filename in files:
            found.functions.append(value)
        return [cell.cell_contents for cell in value.__closure__ or () if filled(cell)] + [wrapped(value)]
    for types, attributes in _HOLDERS:
        if isinstance(value, types):
            return [getattr(value, attribute) for attribute in attributes]
    if isinstance(value, type):
        return list(vars(value).values()) if user_classes(value) else []
    if isinstance(value, _lru_cache_wrapper):
        found.caches.append(value)
        return [wrapped(value)]
    return _held(value, depth, user_classes)


def _held(value, depth: int, user_classes) -> list:
    """The items of a module-level container, the attributes of an instance of the user's
    classes, or what a wrapper wraps."""
    if depth == 0 and isinstance(value, (list, tuple, set, frozenset, dict)) and len(value) <= CONTAINER_LIMIT:
        return list(value.values() if isinstance(value, dict) else value)
    if depth <= 1 and user_classes(type(value)):
        return list(getattr(value, "__dict__", {}).values())
    return [wrapped(value)]


_HOLDERS = (((staticmethod, classmethod, MethodType), ("__func__",)), (property, ("fget", "fset", "fdel")),
            (partial, ("func",)))


def wrapped(value):
    """What a wrapper made by functools.wraps (or a functools cache) wraps, read without running
    any ``__getattr__`` of the object's."""
    try:
        return vars(value).get("__wrapped__")
    except TypeError:  # no __dict__
        return None


def innermost(value) -> FunctionType | None:
    """The function at the bottom of a functools cache (or wraps) chain."""
    for _ in range(8):
        inner = wrapped(value)
        if inner is None:
            break
        value = inner
    return value if isinstance(value, FunctionType) else None
