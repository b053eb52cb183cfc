"""The code stays in pieces a reader can hold: no module over 500 lines, no class over 250 (with
any base class that only it derives from), no function with a cyclomatic complexity over 15
(radon's measure), in devtui/ and inference_server/. The scoring server's modules import one
another without a cycle, and none writes another's globals. Run as a script (`make lint`) it
prints what is closest to the limits."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

from radon.complexity import cc_visit

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("devtui", "inference_server")
MAX_MODULE_LINES, MAX_CLASS_LINES, MAX_COMPLEXITY = 500, 250, 15


def modules() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


def measures() -> list[tuple[str, str, int, int]]:
    """(what, where, size, limit) for every module, class and function."""
    found = []
    sources = {str(path.relative_to(ROOT)): path.read_text() for path in modules()}
    found += [("class lines", where, size, MAX_CLASS_LINES) for where, size in class_sizes(sources)]
    for where, source in sources.items():
        found.append(("module lines", where, len(source.splitlines()), MAX_MODULE_LINES))
        for block in cc_visit(source):
            name = getattr(block, "fullname", block.name)
            found.append(("complexity", f"{where}:{block.lineno} {name}", block.complexity, MAX_COMPLEXITY))
    return found


def class_sizes(sources: dict[str, str]) -> list[tuple[str, int]]:
    """(where, lines) for every class, counted together with each base class of ours that only
    it derives from and that nothing instantiates: such a base is the same object cut in two,
    not a seam, so the two halves count as one."""
    classes: dict[str, list[tuple[str, ast.ClassDef]]] = {}
    instantiated: set[str] = set()  # named as a value: called, or kept to be called (builder_class = X)
    for where, source in sources.items():
        tree = ast.parse(source)
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                classes.setdefault(node.name, []).append((where, node))
        instantiated |= _values(tree)
    derived: dict[str, int] = {}
    for _, node in (pair for pairs in classes.values() for pair in pairs):
        for base in _base_names(node):
            derived[base] = derived.get(base, 0) + 1

    def lines(node: ast.ClassDef) -> int:
        own = node.end_lineno - node.lineno + 1
        halves = [classes[b][0][1] for b in _base_names(node)
                  if len(classes.get(b, ())) == 1 and derived[b] == 1 and b not in instantiated]
        return own + sum(lines(half) for half in halves)

    return [(f"{where}:{node.lineno} {name}", lines(node)) for name, pairs in classes.items() for where, node in pairs]


def _values(tree: ast.AST) -> set[str]:
    """The names a module uses as values: not in annotations, class bases or imports."""
    names: set[str] = set()
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            skipped.update(map(id, node.bases))
        elif isinstance(node, (ast.AnnAssign, ast.arg)) and node.annotation is not None:
            skipped.add(id(node.annotation))
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.returns is not None:
            skipped.add(id(node.returns))
    stack = [tree]
    while stack:
        node = stack.pop()
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, ast.Attribute):
            names.add(node.attr)
        stack.extend(ast.iter_child_nodes(node))
    return names


def _base_names(node: ast.ClassDef) -> list[str]:
    return [getattr(b, "id", None) or getattr(b, "attr", "") for b in node.bases]


def test_a_base_class_only_one_class_derives_from_counts_with_it():
    """A 200-line class split into a base and its only subclass is still a 200-line class; a
    base that something instantiates, or that two classes derive from, is a class of its own."""
    body = "\n".join(f"    x{n} = {n}" for n in range(130))
    half = f"class Half:\n{body}\n\nclass Whole(Half):\n{body}\n"
    sizes = dict(class_sizes({"a.py": half}))
    assert sizes["a.py:1 Half"] == 131 and sizes["a.py:133 Whole"] == 262
    for use in ("Half()\n", "kind = Half\n"):
        assert dict(class_sizes({"a.py": half, "b.py": use}))["a.py:133 Whole"] == 131, use
    annotated = "from a import Half\ndef f(h: Half) -> Half:\n    x: Half = h\n"
    assert dict(class_sizes({"a.py": half, "b.py": annotated}))["a.py:133 Whole"] == 262
    sizes = dict(class_sizes({"a.py": half, "b.py": "from a import Half\nclass Other(Half):\n    pass\n"}))
    assert sizes["a.py:133 Whole"] == 131


# Prompt flow is in maintenance until its retirement (April 2027): only these modules may import it.
PROMPTFLOW_IMPORTERS = {"inference_server/flow_worker.py", "inference_server/flow_connections.py"}


def importers_of(package: str) -> set[str]:
    importers = set()
    for path in modules():
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            if any(name == package or name.startswith(f"{package}.") for name in names):
                importers.add(str(path.relative_to(ROOT)))
    return importers


def test_only_the_flow_worker_imports_prompt_flow():
    importers = importers_of("promptflow")
    assert importers <= PROMPTFLOW_IMPORTERS, sorted(importers - PROMPTFLOW_IMPORTERS)


def test_only_the_mlflow_scoring_script_imports_mlflow():
    """mlflow is an extra (devtui[mlflow]): the spec reads an MLmodel without it."""
    assert importers_of("mlflow") <= {"inference_server/mlflow_score.py"}, importers_of("mlflow")


SERVER = "inference_server"


def server_modules() -> dict[str, ast.Module]:
    """inference_server's modules by dotted name (the package itself for __init__.py), parsed."""
    found = {}
    for path in sorted((ROOT / SERVER).rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = ast.parse(path.read_text(), str(path))
    return found


def imported(module: str, node: ast.Import | ast.ImportFrom, known: set[str]) -> list[tuple[str, str]]:
    """(name bound in MODULE, the inference_server module it refers to, or the object's module
    for ``from m import obj``) for one import statement; imports from elsewhere are left out."""
    if isinstance(node, ast.Import):
        return [(a.asname or a.name.partition(".")[0], a.name) for a in node.names if a.name in known]
    base = node.module or ""
    if node.level:
        package = module if module == SERVER or f"{module}.__init__" in known else module.rpartition(".")[0]
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        base = f"{package}.{base}" if node.module else package
    found = []
    for alias in node.names:
        target = f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
        if target in known:
            found.append((alias.asname or alias.name, target))
    return found


def import_graph() -> dict[str, set[str]]:
    """Which inference_server modules each one imports, anywhere in it: at the top, inside a
    function (an import that runs later still makes a cycle), or under TYPE_CHECKING."""
    parsed = server_modules()
    known = set(parsed)
    graph: dict[str, set[str]] = {name: set() for name in parsed}
    for name, tree in parsed.items():
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                graph[name].update(target for _, target in imported(name, node, known))
    return graph


def import_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One cycle in GRAPH as the path around it (its first module repeated at its end), or []."""
    state: dict[str, int] = {}  # 1: on the path being walked, 2: walked, no cycle through it

    def walk(node: str, path: list[str]) -> list[str]:
        state[node] = 1
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state:
                cycle = walk(target, path + [target])
                if cycle:
                    return cycle
        state[node] = 2
        return []

    for start in sorted(graph):
        if start not in state:
            cycle = walk(start, [start])
            if cycle:
                return cycle
    return []


def test_the_server_imports_without_a_cycle():
    cycle = import_cycle(import_graph())
    assert not cycle, "import cycle in inference_server: " + " -> ".join(cycle)


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    """Every module START imports, directly or through others."""
    seen, pending = set(), [start]
    while pending:
        for target in graph[pending.pop()] - seen:
            seen.add(target)
            pending.append(target)
    return seen


# One module per kind of worker, each on serving.py's harness; the supervisor picks one (worker_process.py).
WORKERS = ("inference_server.script_worker", "inference_server.flow_worker")


def test_each_kind_of_worker_stands_on_the_harness_alone():
    graph = import_graph()
    for worker in WORKERS:
        others = set(WORKERS) - {worker}
        assert not reachable(graph, worker) & others, f"{worker} imports another kind of worker"
    assert not reachable(graph, "inference_server.serving") & set(WORKERS), "the harness imports a worker"


def test_the_cycle_check_sees_imports_inside_functions():
    tree = ast.parse("def serve():\n    from . import b\n")
    found = [target for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
             for _, target in imported("inference_server.a", node, {"inference_server.a", "inference_server.b"})]
    assert found == ["inference_server.b"]
    assert import_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert import_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def _root_name(target: ast.expr) -> str | None:
    """The name a store's target starts from (``patching`` in ``patching.current.roots = x``)
    when the target is an attribute or item of it; None for a plain name."""
    if not isinstance(target, (ast.Attribute, ast.Subscript)):
        return None
    while isinstance(target, (ast.Attribute, ast.Subscript)):
        target = target.value
    return target.id if isinstance(target, ast.Name) else None


def _stores(tree: ast.Module):
    for node in ast.walk(tree):
        targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else \
            [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else []
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("setattr", "delattr") \
                and node.args:
            targets = [ast.Attribute(value=node.args[0], attr="?")]
        for target in targets:
            for element in target.elts if isinstance(target, ast.Tuple) else [target]:
                yield node.lineno, element


def foreign_writes(module: str, tree: ast.Module, known: set[str]) -> list[str]:
    """Where MODULE writes to another server module's globals: ``patching.current = p``,
    ``patching.current.roots = r`` or ``setattr(patching, ...)``, through whatever name it
    imported them under (``from .patching import current`` too)."""
    bound = {}
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update((name, target) for name, target in imported(module, node, known) if target != module)
    return [f"{module}:{line} writes to {bound[root]} ({ast.unparse(target)})"
            for line, target in _stores(tree) if (root := _root_name(target)) in bound]


def test_no_server_module_writes_another_modules_globals():
    parsed = server_modules()
    writes = [w for name, tree in parsed.items() for w in foreign_writes(name, tree, set(parsed))]
    assert not writes, "pass the object explicitly instead:\n" + "\n".join(writes)


def test_the_globals_check_sees_a_write_through_an_imported_module():
    known = {"inference_server.a", "inference_server.patching"}
    tree = ast.parse("from . import patching\ndef f():\n    patching.current.roots = ()\n    patching.x = 1\n")
    assert len(foreign_writes("inference_server.a", tree, known)) == 2
    assert foreign_writes("inference_server.a", ast.parse("import os\nos.environ['A'] = '1'\n"), known) == []


def test_nothing_is_over_its_limit():
    over = [f"{what} {size} > {limit}: {where}" for what, where, size, limit in measures() if size > limit]
    assert not over, "\n".join(over)


if __name__ == "__main__":
    rows = sorted(measures(), key=lambda m: m[2] / m[3], reverse=True)[:15]
    for what, where, size, limit in rows:
        print(f"{size:5d} / {limit:<4d} {what:13s} {where}")
    sys.exit(any(size > limit for _, _, size, limit in rows))
