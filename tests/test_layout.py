"""The code stays in pieces a reader can hold: no module over 500 lines, no class over 250, no
function with a cyclomatic complexity over 15 (radon's measure), in devtui/ and inference_server/.
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
    for path in modules():
        source = path.read_text()
        where = str(path.relative_to(ROOT))
        found.append(("module lines", where, len(source.splitlines()), MAX_MODULE_LINES))
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ClassDef):
                found.append(("class lines", f"{where}:{node.lineno} {node.name}",
                              node.end_lineno - node.lineno + 1, MAX_CLASS_LINES))
        for block in cc_visit(source):
            name = getattr(block, "fullname", block.name)
            found.append(("complexity", f"{where}:{block.lineno} {name}", block.complexity, MAX_COMPLEXITY))
    return found


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
