"""The package's structure rules, checked mechanically (ARCHITECTURE.md).

- No module uses a private name (``_name``, not dunder) of a sibling module:
  neither ``from .x import _name`` nor ``x._name`` on an imported module.
  A module whose own name starts with ``_`` is private to the package, and
  its public names are the package's internal API, so importing it is fine.
- No import circles inside the package, lazy imports in functions included:
  a circle that only works because one side imports late is still a circle.
- No source file over ~500 lines unless ``LONG_FILES`` says why.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "pplx_codec"

# Files allowed over LIMIT lines, each with the reason.
LIMIT = 520
LONG_FILES: dict[str, str] = {}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    found = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    # The compiled modules are package modules too (their .pyx sources may
    # live elsewhere); an import of them names a module, not a private name.
    for stub in PACKAGE.rglob("*.pyi"):
        found.setdefault(_module_name(stub), stub)
    return found


MODULES = _modules()


def _resolve(module: str, is_package: bool, level: int, target: str | None) -> str:
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join(base + ([target] if target else []))


def _imports(module: str, path: Path):
    """(imported module, names taken from it, line) for each intra-package import,
    plus the local names bound to sibling modules."""
    tree = ast.parse(path.read_text(), str(path))
    is_package = path.name == "__init__.py"
    edges: list[tuple[str, list[str], int]] = []
    module_aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                source = _resolve(module, is_package, node.level, node.module)
            elif node.module and node.module.split(".")[0] == "pplx_codec":
                source = node.module
            else:
                continue
            names = []
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                if sub in MODULES:  # `from . import search`: the module itself
                    edges.append((sub, [], node.lineno))
                    module_aliases[alias.asname or alias.name] = sub
                else:
                    names.append(alias.name)
            if names:
                edges.append((source, names, node.lineno))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "pplx_codec":
                    edges.append((alias.name, [], node.lineno))
                    if alias.asname:
                        module_aliases[alias.asname] = alias.name
    return tree, edges, module_aliases


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def test_no_private_names_from_siblings():
    found = []
    for module, path in MODULES.items():
        if path.suffix == ".pyi":
            continue
        tree, edges, aliases = _imports(module, path)
        for source, names, line in edges:
            found += [f"{path.relative_to(ROOT)}:{line}: from {source} import {n}" for n in names if _private(n)]
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
                and _private(node.attr)
            ):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {aliases[node.value.id]}.{node.attr}")
    assert not found, "private names used across modules:\n" + "\n".join(sorted(found))


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for module, path in MODULES.items():
        if path.suffix == ".pyi":
            continue
        for source, _names, _line in _imports(module, path)[1]:
            # Importing pkg.sub runs pkg/__init__ first, but that is the
            # package's own start-up, not a dependency of the importer: only a
            # name taken from __init__ itself (`from . import __version__`)
            # makes an edge to it.
            if source in MODULES and source != module:
                graph[module].add(source)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_circles():
    cycles = _cycles(_graph())
    assert not cycles, "import circles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_cycle_finder_finds_a_circle():
    # The check above must be able to fail.
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def _sources():
    # The package (Python and Cython) and the C core.
    for pattern in ("*.py", "*.pyx", "*.pxd", "*.pxi"):
        yield from PACKAGE.rglob(pattern)
    yield from (ROOT / "codec").rglob("*.h")


@pytest.mark.parametrize("path", sorted(_sources()), ids=lambda p: str(p.relative_to(ROOT)))
def test_file_length(path):
    lines = path.read_text().count("\n")
    name = str(path.relative_to(ROOT))
    if name in LONG_FILES:
        assert lines > LIMIT, f"{name} is {lines} lines now: take it off LONG_FILES"
    else:
        assert lines <= LIMIT, f"{name}: {lines} lines (limit {LIMIT}): split it, or say why in LONG_FILES"
