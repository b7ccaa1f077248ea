"""Report import cycles in the audioflex package (stdlib only).

Every ``import`` / ``from ... import`` statement of every file under ``src/audioflex`` counts,
including imports made inside functions; imports under ``if TYPE_CHECKING:`` do not (they never
run). Two graphs are checked:

- **files**: ``a.py -> b.py`` when ``a`` imports module ``b`` (``from pkg import name`` counts as an
  import of ``pkg.name`` when that is a module, else of ``pkg``); the package ``__init__`` files a
  dotted import passes through are not counted as edges.
- **subpackages**: the top-level parts of ``audioflex`` (``audio``, ``models``, ``inference``, ...;
  a top-level module such as ``packing.py`` is a part of its own), ``a -> b`` when a file of ``a``
  imports a file of ``b``.

Usage: ``python tools/check_imports.py [SRC_DIR]`` (default: ``src`` beside this folder). Prints
each cycle with one import that closes it and exits 1 if there is any, else prints ``no import
cycles`` with the graph sizes and exits 0. An import of an ``audioflex`` module that does not
exist is reported (and fails) too.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "audioflex"


@dataclass(frozen=True)
class Edge:
    """One import: ``source`` imports ``target`` at ``line`` of ``path``."""

    source: str
    target: str
    path: str
    line: int


def module_names(src: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file of the package."""
    out = {}
    for f in sorted((src / PACKAGE).rglob("*.py")):
        parts = list(f.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = f
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> Iterable[ast.Import | ast.ImportFrom]:
    """All import statements, skipping the bodies of ``if TYPE_CHECKING:`` blocks."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
            continue
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The longest known module prefix of ``name`` (``pkg.mod.attr`` -> ``pkg.mod``)."""
    parts = name.split(".")
    while parts:
        cand = ".".join(parts)
        if cand in modules:
            return cand
        parts.pop()
    return None


def file_edges(src: Path, missing: list[str] | None = None) -> list[Edge]:
    """Every internal import edge between the package's files; imports of ``audioflex`` modules
    that do not exist are appended to ``missing`` (``path:line name``) when given."""
    modules = module_names(src)
    edges = []
    for mod, path in modules.items():
        is_pkg = path.name == "__init__.py"
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in _imports(tree):
            targets: list[str] = []
            needed: list[str] = []  # modules the statement requires to exist
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
                needed = list(targets)
            else:
                base = node.module or ""
                if node.level:
                    pkg = mod.split(".") if is_pkg else mod.split(".")[:-1]
                    pkg = pkg[: len(pkg) - (node.level - 1)]
                    base = ".".join([*pkg, base] if base else pkg)
                needed = [base]
                for a in node.names:
                    full = f"{base}.{a.name}"
                    targets.append(full if full in modules else base)
            if missing is not None:
                missing += [f"{path.relative_to(src)}:{node.lineno} {n}" for n in needed
                            if n.startswith(PACKAGE) and n not in modules]
            for t in targets:
                if not t.startswith(PACKAGE):
                    continue
                r = _resolve(t, modules)
                if r is not None and r != mod:
                    edges.append(Edge(mod, r, str(path.relative_to(src)), node.lineno))
    return edges


def part_of(module: str) -> str:
    """Top-level part of ``audioflex``: ``audioflex.models.ast`` -> ``models``; the package itself
    -> ``audioflex``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def cycles(nodes: Iterable[str], edges: Iterable[tuple[str, str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan), each sorted."""
    graph: dict[str, set[str]] = {n: set() for n in nodes}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
        graph.setdefault(b, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        work = [(v, iter(sorted(graph[v])))]
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        while work:
            node, it = work[-1]
            nxt = next(it, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == node:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))

    for n in sorted(graph):
        if n not in index:
            visit(n)
    return sorted(out)


def report(src: Path) -> tuple[list[str], dict[str, int]]:
    """(one line per cycle and the imports inside it, and per import of a missing module; graph sizes)."""
    missing: list[str] = []
    edges = file_edges(src, missing)
    modules = module_names(src)
    lines: list[str] = [f"missing module: {m}" for m in missing]
    for comp in cycles(modules, [(e.source, e.target) for e in edges]):
        members = set(comp)
        lines.append("file cycle: " + " <-> ".join(comp))
        lines += sorted({f"    {e.path}:{e.line} imports {e.target}" for e in edges
                         if e.source in members and e.target in members})
    part_edges = [(part_of(e.source), part_of(e.target), e) for e in edges if part_of(e.source) != part_of(e.target)]
    parts = {part_of(m) for m in modules}
    for comp in cycles(parts, [(a, b) for a, b, _ in part_edges]):
        members = set(comp)
        lines.append("subpackage cycle: " + " <-> ".join(comp))
        lines += sorted({f"    {e.path}:{e.line} ({a} -> {b}) imports {e.target}" for a, b, e in part_edges
                         if a in members and b in members})
    sizes = {"files": len(modules), "imports": len(edges), "subpackages": len(parts)}
    return lines, sizes


def main(argv: list[str]) -> int:
    src = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent.parent / "src"
    lines, sizes = report(src)
    for line in lines:
        print(line)  # noqa: T201
    summary = f"{sizes['files']} files, {sizes['imports']} internal imports, {sizes['subpackages']} subpackages"
    if lines:
        print(f"import problems found ({summary})")  # noqa: T201
        return 1
    print(f"no import cycles ({summary})")  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
