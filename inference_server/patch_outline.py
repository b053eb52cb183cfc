"""Rung 0's view of a source (:class:`Outline`): its top-level statements with their lines and
what each calls at import, without keeping the syntax tree.

A kept syntax tree costs: a 500 KB module's is about a million objects, which every full garbage
collection of the worker would walk again (half a second each). So an outline keeps plain records
(:class:`Stmt`) and the source's lines, and parses one statement again when a comparison needs its
tree. Parsing runs with the garbage collector paused (a large parse otherwise spends most of its
time in collections that find nothing), a piece at a time (:func:`statements`), so the event
loop's thread is never held up for long.

A save is outlined from the outline of the source before it (:func:`outline_after`): the lines both
share at the top and at the bottom keep their statements (those below move by the lines the save
added), and only the statements in between are parsed, so a save of one function in a large module
parses that function, not the module.
"""

from __future__ import annotations

import ast
import gc
import io
from typing import NamedTuple

DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
MAKES_CODE = (ast.Lambda, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.GeneratorExp)
PIECE = 32 * 1024  # characters parsed at a time, holding the interpreter (the GIL) meanwhile
TOP_LEVEL = ("def ", "async def ", "class ", "@")  # how lines that start a definition begin
CREATED = ("__new__", "__init__", "__post_init__")  # what calling a class runs
SUBCLASSED = ("__init_subclass__",)  # what a class statement runs of its bases

Chain = tuple[str, ...]  # a called name: ("helper",), ("helper", "make"), ("self", "load")
Call = tuple[Chain, tuple[str, ...]]  # a called name, and what calling it runs if it is a class


class Stmt(NamedTuple):
    """A top-level statement. ``kind``: ``def``, ``async def``, ``class``, or "" for any other."""

    kind: str
    name: str
    lineno: int
    col_offset: int
    first: int  # its first line: the first decorator's, for a decorated definition
    end_lineno: int
    calls: tuple[Call, ...]  # what it calls at import (a def: its decorators and default values)
    makes_code: bool  # a statement: whether it makes functions; a def: whether its decorators or defaults do


class Outline:
    def __init__(self, source: str, path: str, statements: list[Stmt], lines: list[str] | None = None):
        self.source, self.path, self.statements = source, path, statements
        self.lines = lines if lines is not None else _lines(source)
        self.definitions: dict[str, Stmt] = {}
        self.rest: list[Stmt] = []
        for statement in statements:
            if statement.kind and statement.name not in self.definitions:
                self.definitions[statement.name] = statement
            else:
                self.rest.append(statement)  # a name defined twice is compared as a statement
        self._nodes: dict[object, ast.stmt] = {}
        self._texts: dict[object, str] = {}
        self._dumps: dict[object, str] = {}

    @property
    def import_calls(self) -> list[Call]:
        return [call for statement in self.statements for call in statement.calls]

    def node(self, item: Stmt | ast.stmt) -> ast.stmt:
        """The syntax tree of a statement (parsed again from its lines when first asked)."""
        if isinstance(item, ast.AST):
            return item
        node = self._nodes.get(_key(item))
        if node is None:
            tree = _parse("".join(self.lines[item.first - 1:item.end_lineno]), self.path)
            ast.increment_lineno(tree, item.first - 1)
            node = next(n for n in tree.body if (n.lineno, n.col_offset) == (item.lineno, item.col_offset))
            self._nodes[_key(item)] = node
        return node

    def text(self, item: Stmt | ast.stmt) -> str:
        """A statement's lines, whole (its decorators included)."""
        key = _key(item)
        if key not in self._texts:
            self._texts[key] = "".join(self.lines[first(item) - 1:item.end_lineno])
        return self._texts[key]

    def dump(self, item: Stmt | ast.stmt) -> str:
        """A statement's tree, without positions: the same for the same code on other lines."""
        key = _key(item)
        if key not in self._dumps:
            self._dumps[key] = ast.dump(self.node(item))
        return self._dumps[key]


def _key(item: Stmt | ast.stmt) -> object:
    return (item.first, item.end_lineno, item.col_offset) if isinstance(item, Stmt) else id(item)


def first(item: Stmt | ast.stmt) -> int:
    """A statement's first line: its first decorator's, for a decorated definition."""
    if isinstance(item, Stmt):
        return item.first
    decorators = getattr(item, "decorator_list", None)
    return min(item.lineno, *(d.lineno for d in decorators)) if decorators else item.lineno


def kind(item: Stmt | ast.stmt) -> str:
    if isinstance(item, Stmt):
        return item.kind
    return {ast.FunctionDef: "def", ast.AsyncFunctionDef: "async def", ast.ClassDef: "class"}.get(type(item), "")


def split(body: list[ast.stmt]) -> tuple[dict[str, ast.stmt], list[ast.stmt]]:
    """Definitions by name, and every other statement (a docstring included) in order."""
    definitions, rest = {}, []
    for statement in body:
        if isinstance(statement, DEFINITIONS) and statement.name not in definitions:
            definitions[statement.name] = statement
        else:
            rest.append(statement)
    return definitions, rest


def makes_code(node: ast.AST) -> bool:
    return any(isinstance(n, MAKES_CODE) for n in ast.walk(node))


# -- outlining -------------------------------------------------------------------------------------


def outline(source: str, path: str) -> Outline:
    """Parse the whole of SOURCE (SyntaxError when it does not parse)."""
    lines = _lines(source)
    return Outline(source, path, statements(lines, 0, len(lines), path), lines)


def outline_after(before: Outline, source: str) -> Outline:
    """The outline of SOURCE, a save of BEFORE's source: only the statements between the lines
    both share at the top and at the bottom are parsed again."""
    old, new = before.lines, _lines(source)
    top = _shared(old, new, 0, 1)
    bottom = _shared(old, new, top, -1)
    low, high = top + 1, len(old) - bottom  # the old lines that changed (none: high < low)
    while True:  # widened to whole statements
        touched = [s for s in before.statements if not (s.end_lineno < low or s.first > high)]
        wider = (min([low, *(s.first for s in touched)]), max([high, *(s.end_lineno for s in touched)]))
        if wider == (low, high):
            break
        low, high = wider
    moved = len(new) - len(old)
    try:
        region = statements(new, low - 1, high + moved, before.path)
    except SyntaxError:  # it may still parse as a whole (a string opened here, closed below)
        return outline(source, before.path)
    return Outline(source, before.path, [s for s in before.statements if s.end_lineno < low] + region + [
        s._replace(lineno=s.lineno + moved, first=s.first + moved, end_lineno=s.end_lineno + moved)
        for s in before.statements if s.first > high], new)


def statements(lines: list[str], low: int, high: int, path: str) -> list[Stmt]:
    """The statements of ``lines[low:high]``, parsed a piece of about :data:`PIECE` characters at a
    time: between pieces, other threads (the event loop's) get to run.

    A piece ends before a line that starts a top-level definition. When it does not parse on its
    own (it ended inside a string or brackets), it is parsed together with the next one; one that
    parses on its own ends where a statement does, so it parses the same as part of the whole."""
    found: list[Stmt] = []
    start, size = low, 0
    for index in range(low, high):
        if size >= PIECE and lines[index].startswith(TOP_LEVEL):
            try:
                found += _records(_parse("".join(lines[start:index]), path), start)
            except SyntaxError:
                continue  # on, with the next piece
            start, size = index, 0
        size += len(lines[index])
    try:
        return found + _records(_parse("".join(lines[start:high]), path), start)
    except SyntaxError:
        if start == low:
            raise
    # The error as the whole reads it (and its line); should the whole parse after all, its statements.
    return _records(_parse("".join(lines[low:high]), path), low)


def _records(tree: ast.Module, offset: int) -> list[Stmt]:
    return [_record(node, offset) for node in tree.body]


def _shared(old: list[str], new: list[str], taken: int, step: int) -> int:
    """How many lines OLD and NEW share from the top (step 1) or the bottom (step -1), leaving
    TAKEN lines of each to the other end."""
    limit = min(len(old), len(new)) - taken
    count = 0
    if step == 1:
        while count < limit and old[count] == new[count]:
            count += 1
    else:
        while count < limit and old[-1 - count] == new[-1 - count]:
            count += 1
    return count


def _lines(source: str) -> list[str]:
    """The source's lines as Python counts them (only \\n, \\r\\n and \\r end a line)."""
    return io.StringIO(source, newline="").readlines()


def _parse(source: str, path: str) -> ast.Module:
    enabled = gc.isenabled()
    gc.disable()
    try:
        return ast.parse(source, path)
    except ValueError as ex:  # null bytes
        raise SyntaxError(str(ex), (path, 1, 0, "")) from None
    finally:
        if enabled:
            gc.enable()


def _record(node: ast.stmt, offset: int) -> Stmt:
    finder = _CallFinder(at_import=True)
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        parts = finder.definition(node)
        makes = any(makes_code(part) for part in parts)
    else:
        finder.visit(node)
        makes = not isinstance(node, ast.ClassDef) and makes_code(node)
    return Stmt(kind(node), getattr(node, "name", ""), node.lineno + offset, node.col_offset, first(node) + offset,
                node.end_lineno + offset, tuple(finder.found), makes)


# -- what a statement calls ------------------------------------------------------------------------


def calls_in(node: ast.AST) -> list[Call]:
    """The names a function's body calls (lambdas in it included: they may be called there)."""
    finder = _CallFinder(at_import=False)
    for statement in node.body:
        finder.visit(statement)
    return finder.found


class _CallFinder(ast.NodeVisitor):
    """The calls of module-level statements, decorators, default values and class bodies; not
    what an ``if __name__ == "__main__":`` block calls (it runs as a program, never on import)."""

    def __init__(self, at_import: bool):
        self.at_import = at_import
        self.found: list[Call] = []

    def _add(self, node: ast.AST, runs: tuple[str, ...] = CREATED) -> None:
        chain = _chain(node)
        if chain:
            self.found.append((chain, runs))

    def visit_Call(self, node: ast.Call) -> None:
        self._add(node.func)
        self.generic_visit(node)

    def definition(self, node) -> list[ast.AST]:
        """A def runs its decorators, default values and annotations, not its body."""
        arguments = node.args
        parts = [*node.decorator_list, *arguments.defaults, *(d for d in arguments.kw_defaults if d is not None)]
        for argument in (*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs,
                         arguments.vararg, arguments.kwarg):
            if argument is not None and argument.annotation is not None:
                parts.append(argument.annotation)
        if node.returns is not None:
            parts.append(node.returns)
        for decorator in node.decorator_list:
            self._add(decorator)
        for part in parts:
            self.visit(part)
        return parts

    def visit_FunctionDef(self, node) -> None:
        self.definition(node)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for decorator in node.decorator_list:
            self._add(decorator)
        for base in node.bases:
            self._add(base, SUBCLASSED)
        for keyword in node.keywords:
            self._add(keyword.value)
        for part in [*node.decorator_list, *node.bases, *node.keywords, *node.body]:
            self.visit(part)

    def visit_If(self, node: ast.If) -> None:
        if self.at_import and _is_main_check(node.test):
            for statement in node.orelse:
                self.visit(statement)
            return
        self.generic_visit(node)


def _is_main_check(test: ast.AST) -> bool:
    return (isinstance(test, ast.Compare) and isinstance(test.left, ast.Name) and test.left.id == "__name__"
            and len(test.comparators) == 1 and isinstance(test.comparators[0], ast.Constant)
            and test.comparators[0].value == "__main__")


def _chain(node: ast.AST) -> Chain:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return ()
    return (node.id, *reversed(parts))
