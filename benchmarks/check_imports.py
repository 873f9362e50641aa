"""Find import cycles in a package from its source (AST), imports inside functions included.

    python benchmarks/check_imports.py                 # src/aar; exit status 1 if there is a cycle
    python benchmarks/check_imports.py --top-level     # only module-level imports (what Python runs first)
    python benchmarks/check_imports.py --json out.json # also write the graph and the cycles

An import hidden inside a function still makes the two modules depend on each other; it only moves the
failure from import time to call time. So every ``import``/``from ... import`` counts, wherever it is,
except those under ``if TYPE_CHECKING:`` (never executed; listed separately). ``from pkg import name``
points at ``pkg.name`` when that is a module, else at ``pkg`` itself. The implicit import of a parent
package's ``__init__`` is not an edge (every submodule would otherwise "depend" on its package).

Output: each strongly connected component of more than one module (a set of modules that all reach each
other), with the edges inside it (file:line, and whether the import is inside a function), and the number
of such components, which is the number of cycles this script reports.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Edge:
    """One import statement from ``src`` to ``dst`` (both module names)."""

    src: str
    dst: str
    line: int
    in_function: bool
    type_checking: bool


def module_files(pkg_dir: Path) -> dict[str, Path]:
    """Map module names (``aar.w2s.cache``; packages by their own name) to their files."""
    base = pkg_dir.parent
    out: dict[str, Path] = {}
    for f in sorted(pkg_dir.rglob("*.py")):
        parts = list(f.relative_to(base).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = f
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_pkg: bool, known: set[str]) -> list[str]:
    """The known modules an import statement refers to."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
        return [_longest_known(n, known) for n in names if _longest_known(n, known)]
    if node.level:
        pkg_parts = module.split(".") if is_pkg else module.split(".")[:-1]
        if node.level > 1:
            pkg_parts = pkg_parts[: len(pkg_parts) - (node.level - 1)]
        base = ".".join(pkg_parts + ([node.module] if node.module else []))
    else:
        base = node.module or ""
    out = []
    for a in node.names:
        full = f"{base}.{a.name}"
        if full in known:
            out.append(full)
        elif _longest_known(base, known):
            out.append(_longest_known(base, known))
    return out


def _longest_known(name: str, known: set[str]) -> str:
    parts = name.split(".")
    while parts:
        if ".".join(parts) in known:
            return ".".join(parts)
        parts.pop()
    return ""


def edges_of(modules: dict[str, Path]) -> list[Edge]:
    """Every import edge between the given modules."""
    known = set(modules)
    edges: list[Edge] = []
    for mod, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        is_pkg = path.name == "__init__.py"

        def visit(node: ast.AST, in_fn: bool, tc: bool, mod: str = mod, is_pkg: bool = is_pkg) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.Import | ast.ImportFrom):
                    for dst in dict.fromkeys(_targets(child, mod, is_pkg, known)):
                        if dst != mod:
                            edges.append(Edge(mod, dst, child.lineno, in_fn, tc))
                elif isinstance(child, ast.If) and _is_type_checking(child.test):
                    for b in child.body:
                        visit(ast.Module(body=[b], type_ignores=[]), in_fn, True)
                    for b in child.orelse:
                        visit(ast.Module(body=[b], type_ignores=[]), in_fn, tc)
                else:
                    fn = isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
                    visit(child, in_fn or fn, tc)

        visit(tree, False, False)
    return edges


def strongly_connected(nodes: list[str], adj: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm (iterative): components with more than one module, each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    comps: list[list[str]] = []
    counter = 0
    for root in nodes:
        if root in index:
            continue
        work = [(root, iter(sorted(adj.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, it = work[-1]
            advanced = False
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(adj.get(w, ())))))
                    advanced = True
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    comps.append(sorted(comp))
    return sorted(comps)


def main() -> int:
    """Print the cycles; exit 1 when there is at least one."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--package", default=str(ROOT / "src" / "aar"), help="package folder to scan")
    ap.add_argument("--top-level", action="store_true", help="ignore imports inside functions")
    ap.add_argument("--json", help="write graph and cycles to this file")
    args = ap.parse_args()
    modules = module_files(Path(args.package))
    all_edges = edges_of(modules)
    used = [e for e in all_edges if not e.type_checking and not (args.top_level and e.in_function)]
    adj: dict[str, set[str]] = {}
    for e in used:
        adj.setdefault(e.src, set()).add(e.dst)
    comps = strongly_connected(sorted(modules), adj)
    n_fn = sum(e.in_function for e in used)
    print(f"{len(modules)} modules, {len(used)} import edges ({n_fn} inside functions), "
          f"{sum(e.type_checking for e in all_edges)} under TYPE_CHECKING (not counted)")
    for comp in comps:
        members = set(comp)
        print(f"\ncycle among {len(comp)} modules:")
        for e in sorted(used, key=lambda e: (e.src, e.line)):
            if e.src in members and e.dst in members:
                where = "in function" if e.in_function else "top level"
                f = modules[e.src]
                shown = f.relative_to(ROOT) if f.is_relative_to(ROOT) else f
                print(f"  {e.src} -> {e.dst}  ({shown}:{e.line}, {where})")
    print(f"\nimport cycles: {len(comps)}")
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"modules": sorted(modules), "edges": [asdict(e) for e in all_edges], "cycles": comps}, indent=1))
    return 1 if comps else 0


if __name__ == "__main__":
    sys.exit(main())
