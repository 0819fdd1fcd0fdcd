"""No import cycles in the package, between modules or between the stage packages.

The walk is static (the AST of every file under vlmdyn_cli/), so an import
inside a function counts as much as one at the top, and so does one under
``if TYPE_CHECKING:``: a cycle that only lazy imports keep from crashing is
still two modules that cannot be understood one without the other. What
counts as an edge A -> B:

* ``import vlmdyn_cli.x.y`` and ``from vlmdyn_cli.x import y`` where y is a
  module: A -> vlmdyn_cli.x.y; ``from vlmdyn_cli.x import name`` of anything
  else: A -> vlmdyn_cli.x (its ``__init__``); relative imports likewise.
* Not counted: the parent packages Python initialises on the way (else every
  package whose ``__init__`` re-exports a submodule would be a "cycle"), and
  registry entries written as "module:attr" strings (resolved when a backend
  is asked for by id: the registry pattern of DESIGN.md convention 4).

Two levels are checked: modules, and the stage packages (vlmdyn_cli.<x>,
e.g. judging, calibration, store; a module directly under vlmdyn_cli/ is its
own unit). The stages must form a one-way flow: judging -> calibration ->
judging is a cycle even when no single module imports itself back.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = "vlmdyn_cli"
ROOT = Path(__file__).resolve().parents[1]

def module_files(root: Path, package: str) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file of the package."""
    out = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def import_edges(root: Path, package: str) -> dict[tuple[str, str], list[str]]:
    """(importer, imported) -> ["file.py:line", ...] for every import inside the package."""
    mods = module_files(root, package)
    edges: dict[tuple[str, str], list[str]] = defaultdict(list)
    for mod, path in mods.items():
        is_pkg = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the importing module's package, up level-1 more
                    anchor = mod.split(".") if is_pkg else mod.split(".")[:-1]
                    anchor = anchor[:len(anchor) - (node.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
            if not targets:
                continue
            where = f"{path.relative_to(root)}:{node.lineno}"
            for t in targets:
                if t in mods and t != mod and where not in edges[(mod, t)]:
                    edges[(mod, t)].append(where)
    return edges


def stage(module: str, package: str) -> str:
    """vlmdyn_cli.judging.backends.rules -> vlmdyn_cli.judging; vlmdyn_cli.errors stays itself."""
    return ".".join(module.split(".")[:2]) if module.startswith(package + ".") else module


def stage_edges(edges: dict[tuple[str, str], list[str]], package: str) -> dict[tuple[str, str], list[str]]:
    out: dict[tuple[str, str], list[str]] = defaultdict(list)
    for (a, b), where in edges.items():
        sa, sb = stage(a, package), stage(b, package)
        if sa != sb:
            out[(sa, sb)] += [f"{w} ({a} -> {b})" for w in where]
    return out


def cycles(edges: dict[tuple[str, str], list[str]]) -> list[frozenset[str]]:
    """The strongly connected components with more than one node (Tarjan, iterative)."""
    graph: dict[str, list[str]] = defaultdict(list)
    for a, b in sorted(edges):
        graph[a].append(b)
        graph.setdefault(b, [])
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(graph[start]))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    comp = set()
                    while True:
                        n = stack.pop()
                        on_stack.discard(n)
                        comp.add(n)
                        if n == node:
                            break
                    if len(comp) > 1:
                        found.append(frozenset(comp))
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(graph[child])))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return found


def describe(comp: frozenset[str], edges: dict[tuple[str, str], list[str]]) -> str:
    """One cycle through the component, each step with the import lines that make it."""
    inside = {(a, b): w for (a, b), w in edges.items() if a in comp and b in comp}
    start = min(comp)
    path, seen = [start], {start}
    while True:  # walk inside the component until a node repeats: that closes a cycle
        nxt = sorted(b for (a, b) in inside if a == path[-1])
        step = next((b for b in nxt if b not in seen), None) or nxt[0]
        path.append(step)
        if step in seen:
            path = path[path.index(step):]
            break
        seen.add(step)
    lines = [" -> ".join(path)]
    for a, b in zip(path, path[1:]):
        lines.append(f"    {a} -> {b}: " + "; ".join(inside[(a, b)][:3]))
    return "\n".join(lines)


def check(root: Path, package: str, allowed=frozenset()) -> tuple[list[str], list[str]]:
    """(cycles not allowed, allow-list entries that match no cycle any more)."""
    edges = import_edges(root, package)
    problems, present = [], set()
    for level, level_edges in (("module", edges), ("package", stage_edges(edges, package))):
        for comp in cycles(level_edges):
            present.add((level, comp))
            if (level, comp) not in allowed:
                problems.append(f"{level} cycle {describe(comp, level_edges)}")
    stale = [f"{level}: {' <-> '.join(sorted(comp))}" for level, comp in sorted(allowed, key=str)
             if (level, comp) not in present]
    return problems, stale


def test_the_package_has_no_import_cycle():
    problems, _ = check(ROOT, PACKAGE)
    assert not problems, "import cycles:\n" + "\n".join(problems)


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")


def test_the_walk_finds_function_level_relative_and_stage_cycles(tmp_path):
    _write(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/errors.py": "",
        "pkg/a/__init__.py": "from pkg.a.one import f\n",        # a package re-exporting: no cycle
        "pkg/a/one.py": "import pkg.errors\n\ndef f():\n    from pkg.a import two\n",
        "pkg/a/two.py": "from . import one\n",                     # relative, back to one: a module cycle
        "pkg/b/__init__.py": "",
        "pkg/b/x.py": "from pkg.c.y import g\nREGISTRY = {'y': 'pkg.c.y:g'}\n",
        "pkg/c/__init__.py": "",
        "pkg/c/y.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.b import x\n",
        "pkg/c/z.py": "from pkg.errors import E\n",
    })
    problems, stale = check(tmp_path, "pkg")
    text = "\n".join(problems)
    assert len(problems) == 3, text
    assert "module cycle pkg.a.one -> pkg.a.two -> pkg.a.one" in text
    assert "pkg/a/one.py:4" in text and "pkg/a/two.py:1" in text  # the function-level and relative imports
    assert "module cycle pkg.b.x -> pkg.c.y -> pkg.b.x" in text and "pkg/c/y.py:3" in text  # TYPE_CHECKING
    assert "package cycle pkg.b -> pkg.c -> pkg.b" in text
    assert "pkg.errors" not in text and "pkg.c.z" not in text
    allowed = {("module", frozenset({"pkg.a.one", "pkg.a.two"})), ("package", frozenset({"pkg.a", "pkg.errors"}))}
    problems, stale = check(tmp_path, "pkg", allowed)
    assert len(problems) == 2 and stale == ["package: pkg.a <-> pkg.errors"]
