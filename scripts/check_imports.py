"""Fail when modules of the package import each other in a cycle.

Every executed import counts, also those deferred into functions: a deferred import hides a
cycle from Python's loader but not from a reader who has to understand both modules.
Imports of a package's ``__init__`` re-exports count as imports of the package.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = "napari_rockseg"


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, name: str, is_package: bool, known: set[str]) -> set[str]:
    """The package's modules that ``name`` imports (resolved to known module names)."""
    found = set()
    base = name.split(".") if is_package else name.split(".")[:-1]
    tree = ast.parse(path.read_text())
    typing_only = {
        id(n)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and getattr(block.test, "id", "") == "TYPE_CHECKING"
        for n in ast.walk(block)
    }
    for node in ast.walk(tree):
        if id(node) in typing_only:  # never executed: annotations only
            continue
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = base[: len(base) - (node.level - 1)]
                mod = ".".join(anchor + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            targets = [f"{mod}.{a.name}" for a in node.names] + [mod]
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name and t.startswith(PACKAGE) and not name.startswith(t + "."):
                found.add(t)
    return found


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10_000)
    for v in graph:
        if v not in index:
            visit(v)
    return out


def main(src: str = "src") -> int:
    root = Path(src)
    files = {module_name(p, root): p for p in (root / PACKAGE).rglob("*.py")}
    known = set(files)
    graph = {n: imports_of(p, n, p.name == "__init__.py", known) for n, p in files.items()}
    cycles = find_cycles(graph)
    for c in cycles:
        print("import cycle: " + " <-> ".join(c))
    print(f"{len(files)} modules, {len(cycles)} import cycles")
    return 1 if cycles else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
