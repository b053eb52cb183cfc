"""The code stays in pieces a reader can hold: no module over 500 lines, no class over 250 (with
any base class that only it derives from), no function with a cyclomatic complexity over 15
(radon's measure), in devtui/ and inference_server/.
Run as a script (`make lint`) it prints what is closest to the limits."""

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


def test_only_the_flow_worker_imports_prompt_flow():
    importers = set()
    for path in modules():
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            if any(name == "promptflow" or name.startswith("promptflow.") for name in names):
                importers.add(str(path.relative_to(ROOT)))
    assert importers <= PROMPTFLOW_IMPORTERS, sorted(importers - PROMPTFLOW_IMPORTERS)


def test_nothing_is_over_its_limit():
    over = [f"{what} {size} > {limit}: {where}" for what, where, size, limit in measures() if size > limit]
    assert not over, "\n".join(over)


if __name__ == "__main__":
    rows = sorted(measures(), key=lambda m: m[2] / m[3], reverse=True)[:15]
    for what, where, size, limit in rows:
        print(f"{size:5d} / {limit:<4d} {what:13s} {where}")
    sys.exit(any(size > limit for _, _, size, limit in rows))
