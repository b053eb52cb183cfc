"""Rung 0's comparison: what a save changed in one module, from the old and the new source.

Each source is outlined (``patch_outline``): its top-level definitions by name and every other
statement. Definitions are compared by their text first (whole lines, decorators included), which
is cheap; only a definition whose text differs is dumped (``ast.dump``, positions left out) to tell
a change of code from a change of comments or layout. Each definition ends up as one of:

- unchanged: same text, same lines;
- moved: the same code on other lines. Its running code object gets the new line numbers (shifted
  when the text is identical, recompiled otherwise), so tracebacks and breakpoints name the lines
  the file has now;
- changed: compiled anew (a :class:`Change`), or a swap with the reason (:class:`NeedsSwap`);
- added: a new top-level function (an :class:`Add`), defined with its decorators at commit.

Nothing here touches running code: the plan is carried out by ``patching.Patcher.commit``.
"""

from __future__ import annotations

import __future__
import ast
from dataclasses import dataclass, field
from types import CodeType, FunctionType, MethodType, ModuleType

from .patch_outline import Outline, Stmt, first, kind, makes_code, split

# Names the server calls or inspects: a change of their signature (or of init() at all) needs a
# fresh worker, since the server read them when the worker loaded the script.
ENTRY_POINTS = ("init", "run")
NAMES_SHOWN = 6  # a detail lists this many functions, then "and N more"


class NeedsSwap(Exception):
    """The change cannot be applied in place; the message says why (``init() changed``)."""


@dataclass(eq=False)
class Change:
    """A function whose code changed: ``code`` is its definition compiled where it stands (a
    method inside a shell of its class), run at commit to make the new function."""

    module: ModuleType
    path: list[str]
    old: ast.stmt
    new: ast.stmt
    code: CodeType | None = None
    target: FunctionType | None = None  # the running function
    running: CodeType | None = None  # its code when decided

    @property
    def name(self) -> str:
        return ".".join(self.path) + "()"


@dataclass(eq=False)
class Reline:
    """A function whose code moved to other lines: ``codes`` maps each running code object (the
    function's and those nested in it, by id) to the same code with the new lines."""

    module: ModuleType
    path: list[str]
    old: Stmt | ast.stmt
    new: Stmt | ast.stmt  # a tree where not exact
    exact: bool  # the same text: shift the lines; else recompile
    target: FunctionType | None = None
    running: CodeType | None = None
    codes: dict[int, tuple[CodeType, CodeType]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return ".".join(self.path) + "()"


@dataclass(eq=False)
class Add:
    """A function the save added: its definition with its decorators, run at commit."""

    module: ModuleType
    node: ast.stmt
    code: CodeType | None = None

    @property
    def name(self) -> str:
        return f"{self.node.name}()"


@dataclass(eq=False)
class Plan:
    changes: list[Change] = field(default_factory=list)
    relines: list[Reline] = field(default_factory=list)
    adds: list[Add] = field(default_factory=list)
    products: list[tuple[FunctionType, CodeType, CodeType]] = field(default_factory=list)  # re-lined too
    caches: list[tuple[object, str]] = field(default_factory=list)  # (functools cache, its function's name)

    @property
    def empty(self) -> bool:
        return not (self.changes or self.relines or self.adds)

    def detail(self) -> str:
        """What the patch does, for the log: ``run(), helper() (cache cleared)`` and, for code
        that only moved, ``the line numbers of helper()``."""
        cleared = {name for _, name in self.caches}
        changed = [c.name for c in self.changes] + [a.name for a in self.adds]
        shown = [f"{name} (cache cleared)" if name in cleared else name for name in changed]
        shown += [f"{name} (cache cleared)" for name in sorted(cleared - set(changed))]
        moved = [r.name for r in sorted(self.relines, key=lambda r: first(r.new))]
        parts = [_names(shown)] if shown else []
        if moved:
            parts.append(f"the line numbers of {_names(moved)}")
        return " and ".join(parts)


def _names(names: list[str]) -> str:
    if len(names) <= NAMES_SHOWN:
        return ", ".join(names)
    return f"{', '.join(names[:NAMES_SHOWN])} and {len(names) - NAMES_SHOWN} more"


# -- comparing ------------------------------------------------------------------------------------


def compare_module(plan: Plan, module: ModuleType, old: Outline, new: Outline, entry: bool) -> None:
    name = module.__name__
    _compare_rest(plan, module, [], old, new, old.rest, new.rest, f"module-level statements or imports of {name}",
                  f"module-level code of {name}")
    for removed in old.definitions.keys() - new.definitions.keys():
        raise NeedsSwap(f"{removed} was removed from {name}")
    for member, statement in new.definitions.items():
        before = old.definitions.get(member)
        if before is not None:
            _compare_definition(plan, module, [member], old, new, before, statement, entry)
        elif statement.kind == "class" or (entry and member in ENTRY_POINTS):
            raise NeedsSwap(f"{member} was added to {name}")
        elif member in module.__dict__:
            raise NeedsSwap(f"{member} was added to {name}, where other code defines it too")
        else:
            plan.adds.append(Add(module, new.node(statement)))


def _compare_rest(plan: Plan, module: ModuleType, path: list[str], old: Outline, new: Outline, old_rest: list,
                  new_rest: list, what: str, where: str) -> None:
    """Statements other than definitions must be the same code. Where they moved, a function they
    define (a property's setter, defined under the getter's name) gets its new lines; anything
    else they made that is code (a module-level lambda) would keep the lines it was compiled
    with: a swap."""
    if [old.text(s) for s in old_rest] == [new.text(s) for s in new_rest]:
        if [first(s) for s in old_rest] == [first(s) for s in new_rest]:
            return
    elif len(old_rest) != len(new_rest) or any(old.dump(a) != new.dump(b) for a, b in zip(old_rest, new_rest)):
        raise NeedsSwap(f"{what} changed")
    for before, after in zip(old_rest, new_rest):
        _moved_statement(plan, module, path, old, new, before, after, where)


def _moved_statement(plan: Plan, module: ModuleType, path: list[str], old: Outline, new: Outline, before, after,
                     where: str) -> None:
    exact = old.text(before) == new.text(after)
    if exact and first(before) == first(after):
        return
    if kind(after) in ("def", "async def") and not _outside_body_makes_code(after):
        if not exact:
            before, after = old.node(before), new.node(after)
        plan.relines.append(Reline(module, [*path, after.name], before, after, exact=exact))
    elif _makes_code(new, after):
        raise NeedsSwap(f"{where} that makes functions moved (line {first(after)}): "
                        "they would keep their old line numbers")


def _makes_code(outline: Outline, item: Stmt | ast.stmt) -> bool:
    if isinstance(item, Stmt):
        return item.makes_code
    return makes_code(item)


def _outside_body_makes_code(item: Stmt | ast.stmt) -> bool:
    """Whether a def's decorators or default values make functions (made at import, they keep
    the lines they were made with)."""
    if isinstance(item, Stmt):
        return item.makes_code
    return any(makes_code(n) for n in [*item.decorator_list, *item.args.defaults, *item.args.kw_defaults] if n)


def _compare_definition(plan: Plan, module: ModuleType, path: list[str], old_outline: Outline,
                        new_outline: Outline, old: Stmt | ast.stmt, new: Stmt | ast.stmt, entry: bool) -> None:
    same_text = old_outline.text(old) == new_outline.text(new)
    if same_text and first(old) == first(new):
        return
    name = ".".join(path)
    if kind(old) != kind(new):
        raise NeedsSwap(f"{name} changed from {_kind(old)} to {_kind(new)}")
    if kind(new) == "class":
        _compare_class(plan, module, path, old_outline, new_outline, old_outline.node(old), new_outline.node(new))
        return
    if same_text or old_outline.dump(old) == new_outline.dump(new):  # the same code on other lines
        if _outside_body_makes_code(new):
            raise NeedsSwap(f"{name} moved, and a lambda in its decorators or defaults would keep its old lines")
        if not same_text:  # recompiled from its tree
            old, new = old_outline.node(old), new_outline.node(new)
        plan.relines.append(Reline(module, path, old, new, exact=same_text))
        return
    plan.changes.append(_changed(module, path, old_outline.node(old), new_outline.node(new), entry))


def _changed(module: ModuleType, path: list[str], old: ast.stmt, new: ast.stmt, entry: bool) -> Change:
    name = ".".join(path)
    if _dump(old.decorator_list) != _dump(new.decorator_list):
        raise NeedsSwap(f"the decorators of {name} changed")
    if entry and path == ["init"]:
        raise NeedsSwap("init() changed")
    if entry and len(path) == 1 and path[0] in ENTRY_POINTS and _dump([old.args]) != _dump([new.args]):
        raise NeedsSwap(f"the signature of {name}() changed")
    return Change(module, path, old, new)


def _compare_class(plan: Plan, module: ModuleType, path: list[str], old_outline: Outline, new_outline: Outline,
                   old: ast.ClassDef, new: ast.ClassDef) -> None:
    name = ".".join(path)
    if _dump(old.decorator_list) != _dump(new.decorator_list):
        raise NeedsSwap(f"the decorators of {name} changed")
    if _dump(old.bases + old.keywords) != _dump(new.bases + new.keywords):
        raise NeedsSwap(f"the bases of class {name} changed")
    old_defs, old_rest = split(old.body)
    new_defs, new_rest = split(new.body)
    if old_defs.keys() != new_defs.keys():
        raise NeedsSwap(f"the layout of class {name} changed")
    _compare_rest(plan, module, path, old_outline, new_outline, old_rest, new_rest, f"the layout of class {name}",
                  f"class {name}'s code")
    for member, node in new_defs.items():
        _compare_definition(plan, module, [*path, member], old_outline, new_outline, old_defs[member], node, False)


def _dump(nodes) -> str:
    return "\n".join(ast.dump(node) for node in nodes)


def _kind(item) -> str:
    return {"class": "a class", "async def": "an async function"}.get(kind(item), "a function")


# -- compiling and re-lining ----------------------------------------------------------------------


def compile_definition(module: ModuleType, filename: str, path: list[str], node: ast.stmt,
                       decorated: bool = False) -> CodeType:
    """The definition compiled where it stands (a method inside a shell of its class, for super()
    and private names), from the file's name and lines, with the module's ``__future__`` flags:
    run with the module's globals, it makes the new function."""
    statement = node if decorated else _without_decorators(node)
    for class_name in reversed(path[:-1]):
        shell = ast.ClassDef(class_name, [], [], [statement], [], lineno=node.lineno, col_offset=0,
                             end_lineno=node.end_lineno, end_col_offset=0)
        if "type_params" in ast.ClassDef._fields:  # Python 3.12 and later
            shell.type_params = []
        statement = shell
    tree = ast.fix_missing_locations(ast.Module([statement], type_ignores=[]))
    return compile(tree, filename, "exec", flags=_future_flags(module), dont_inherit=True)


def function_code(module_code: CodeType, path: list[str]) -> CodeType:
    """The code of the function at ``path`` inside a definition compiled by :func:`compile_definition`."""
    code = module_code
    for part in path:
        code = next(c for c in code.co_consts if isinstance(c, CodeType) and c.co_name == part)
    return code


def _future_flags(module: ModuleType) -> int:
    """The flags of the module's ``from __future__ import`` statements (each binds its name)."""
    flags = 0
    for name in __future__.all_feature_names:
        value = module.__dict__.get(name)
        if isinstance(value, __future__._Feature):
            flags |= value.compiler_flag
    return flags


def _without_decorators(node):
    """The definition with its decorators left out: in their place, one that changes nothing, where
    the first one stood, so the code's first line is the first decorator's, as on import."""
    bare = type(node)(**{name: getattr(node, name) for name in node._fields})
    bare.decorator_list = []
    if node.decorator_list:
        argument = ast.arguments(posonlyargs=[], args=[ast.arg("f")], kwonlyargs=[], kw_defaults=[], defaults=[])
        keep = ast.Lambda(argument, ast.Name("f", ast.Load()))
        bare.decorator_list = [ast.copy_location(keep, node.decorator_list[0])]
    ast.copy_location(bare, node)
    bare.end_lineno, bare.end_col_offset = node.end_lineno, node.end_col_offset
    return bare


def shifted(code: CodeType, delta: int, codes: dict[int, tuple[CodeType, CodeType]]) -> CodeType:
    """CODE and the code nested in it, ``delta`` lines further down; ``codes`` gets each pair."""
    consts = tuple(shifted(c, delta, codes) if isinstance(c, CodeType) else c for c in code.co_consts)
    new = code.replace(co_firstlineno=code.co_firstlineno + delta, co_consts=consts)
    codes[id(code)] = (code, new)
    return new


def paired(old: CodeType, new: CodeType, codes: dict[int, tuple[CodeType, CodeType]]) -> bool:
    """Pair OLD's code objects with NEW's (the same code, compiled from other lines); False where
    they do not match one to one."""
    if old.co_name != new.co_name or old.co_freevars != new.co_freevars:
        return False
    old_nested = [c for c in old.co_consts if isinstance(c, CodeType)]
    new_nested = [c for c in new.co_consts if isinstance(c, CodeType)]
    if len(old_nested) != len(new_nested):
        return False
    codes[id(old)] = (old, new)
    return all(paired(a, b, codes) for a, b in zip(old_nested, new_nested))


def nested_codes(code: CodeType) -> list[CodeType]:
    """The code objects inside CODE that can make functions that outlive a call."""
    found = []
    for const in code.co_consts:
        if isinstance(const, CodeType):
            if not const.co_name.startswith("<") or const.co_name == "<lambda>":
                found.append(const)
            found.extend(nested_codes(const))
    return found


# -- the running functions ------------------------------------------------------------------------


def target(module: ModuleType, filename: str, path: list[str], old: ast.stmt) -> FunctionType:
    """The function object now running the old definition: the module's (or class's) attribute,
    unwrapped from staticmethod, classmethod and property, from decorators made with
    functools.wraps (inference-schema's, functools caches) and from a custom decorator's
    closure, and checked against where the old source defines it."""
    holder, value = module, None
    for part in path:
        value = holder.__dict__.get(part) if isinstance(holder, type) else getattr(holder, part, None)
        holder = value
    lines = {old.lineno, first(old)}
    found = _underlying(value, path[-1], filename, lines)
    if found is None:
        raise NeedsSwap(f"{'.'.join(path)} is not a plain function in the running worker")
    return found


def _underlying(value, name: str, filename: str, lines: set[int]) -> FunctionType | None:
    seen: set[int] = set()
    layer = [value]
    for _ in range(4):  # wrappers of wrappers, a few deep
        following = []
        for item in layer:
            if item is None or id(item) in seen:
                continue
            seen.add(id(item))
            if isinstance(item, FunctionType):
                code = item.__code__
                if code.co_name == name and code.co_filename == filename and code.co_firstlineno in lines:
                    return item
                following.extend(cell.cell_contents for cell in item.__closure__ or () if filled(cell))
            elif isinstance(item, (staticmethod, classmethod, MethodType)):
                following.append(item.__func__)
            elif isinstance(item, property):
                following.extend((item.fget, item.fset, item.fdel))
            following.append(_wrapped(item))
        layer = following
    return None


def filled(cell) -> bool:
    try:
        cell.cell_contents
    except ValueError:
        return False
    return True


def _wrapped(value):
    try:
        return vars(value).get("__wrapped__")
    except TypeError:  # no __dict__
        return None
