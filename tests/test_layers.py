"""The package's layers, read from its source: the import graph of jaxnet's modules has no cycle,
the core never imports the application layers (the sweep engine, the paper's reproduction, the
command line, the package's `__init__`), the plots never import the sweep engine, and no module
is longer than 450 lines.

Every import is read with `ast`, those inside functions too (an import deferred into a function
is still a dependency, and a cycle hidden that way is still a cycle); only those under
`if TYPE_CHECKING:` are left out, since they never run. Layers are named by path prefix, so the
rules hold whether the sweep engine is `jaxnet/_sweep.py` or a `jaxnet/sweep/` package and the
reproduction `jaxnet/_reproduce.py` or a `jaxnet/paper/` package.
"""

from __future__ import annotations

import ast
import functools
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "jaxnet"
MAX_LINES = 450

# Path prefixes, relative to the repository root. Every other module is the core.
ENGINE = ("jaxnet/sweep", "jaxnet/_sweep.py", "jaxnet/_config.py", "jaxnet/_checkpoint.py")
APPLICATION = ENGINE + ("jaxnet/paper", "jaxnet/_reproduce.py", "jaxnet/cli.py", "jaxnet/demo.py",
                        "jaxnet/__init__.py", "jaxnet/__main__.py")
PLOTS = ("jaxnet/_plot",)


def module_name(path: pathlib.Path) -> str:
    """`jaxnet/rules/_base.py` -> `jaxnet.rules._base`; a package's `__init__.py` is the package."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@functools.cache
def package_modules() -> dict[str, pathlib.Path]:
    """`{module name: path}` of every Python module under `jaxnet/`."""
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py")) if "__pycache__" not in p.parts}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def import_nodes(node: ast.AST):
    """Every `import` and `from ... import` under `node`, in functions and classes too; the body
    of an `if TYPE_CHECKING:` is skipped (its `else:` is not)."""
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        yield node
        return
    children = node.orelse if isinstance(node, ast.If) and _is_type_checking(node.test) else ast.iter_child_nodes(node)
    for child in children:
        yield from import_nodes(child)


def _prefixes(name: str) -> list[str]:
    """`a.b.c` -> `[a, a.b, a.b.c]`: the modules that importing `a.b.c` runs."""
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def imported_modules(module: str, is_package: bool, source: str, known: set[str]) -> dict[str, int]:
    """`{jaxnet module: first line}` that `module` imports (its source `source`; `known`, every
    module of the package).

    An import of `a.b.c` depends on `a.b.c` and runs the packages `a` and `a.b` first, except
    those the importer sits in (they are already being imported). `from X import n` depends on
    the module `X.n` where there is one, and on `X` itself for any other name. Relative imports
    are resolved against the importer's package (a package's `__init__` is its own package).
    Raises `ValueError` for a relative import beyond the top package, or a `jaxnet` module that
    does not exist.
    """
    here = module if is_package else module.rpartition(".")[0]
    enclosing = set(_prefixes(module))  # the importer and the packages it sits in
    found: dict[str, int] = {}

    def depend(name: str, line: int, explicit: bool) -> None:
        if name != "jaxnet" and not name.startswith("jaxnet."):
            return
        if name not in known:
            raise ValueError(f"{module} line {line} imports {name}, which is no module under jaxnet/.")
        if name != module and (explicit or name not in enclosing):
            found.setdefault(name, line)

    for node in import_nodes(ast.parse(source)):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
            namespaces = targets
        else:
            if node.level == 0:
                base = node.module or ""
            else:
                parts = here.split(".") if here else []
                if node.level - 1 >= len(parts):
                    raise ValueError(f"{module} line {node.lineno}: relative import beyond the top package.")
                base = ".".join(parts[: len(parts) - (node.level - 1)] + ([node.module] if node.module else []))
            submodules = [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in known]
            targets = [base] + submodules
            namespaces = submodules + ([base] if len(submodules) < len(node.names) else [])
        for target in targets:
            for prefix in _prefixes(target):
                depend(prefix, node.lineno, explicit=False)
        for name in namespaces:
            depend(name, node.lineno, explicit=True)
    return found


def import_graph() -> dict[str, dict[str, int]]:
    """`{module: {imported jaxnet module: line}}` for every module under `jaxnet/`."""
    modules = package_modules()
    known = set(modules)
    return {name: imported_modules(name, path.name == "__init__.py", path.read_text(encoding="utf-8"), known)
            for name, path in modules.items()}


def find_cycle(graph: dict[str, dict[str, int]]) -> list[str] | None:
    """One cycle of `graph` as `[a, b, ..., a]`, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def _in(module: str, prefixes: tuple[str, ...]) -> bool:
    path = package_modules()[module].relative_to(ROOT).as_posix()
    return path.startswith(prefixes)


def _describe(edges: list[tuple[str, str, int]]) -> str:
    return "\n".join(f"  {a} -> {b} (line {line})" for a, b, line in edges)


def test_the_import_graph_reader_resolves_every_kind_of_import():
    known = {"jaxnet", "jaxnet.rules", "jaxnet.rules._base", "jaxnet.rules._coupled", "jaxnet._states",
             "jaxnet._network", "jaxnet._sweep", "jaxnet.sweep", "jaxnet.sweep._engine", "jaxnet.cli"}
    source = '''
from __future__ import annotations
from typing import TYPE_CHECKING
import numpy as np
from . import _base
from .. import _states
from ..sweep._engine import run
if TYPE_CHECKING:
    from .._sweep import nothing
else:
    from .._network import Network

def late():
    from jaxnet import cli, RESULTS
'''
    got = imported_modules("jaxnet.rules._coupled", False, source, known)
    assert got == {"jaxnet.rules._base": 5, "jaxnet._states": 6, "jaxnet.sweep": 7, "jaxnet.sweep._engine": 7,
                   "jaxnet._network": 11, "jaxnet.cli": 14, "jaxnet": 14}
    # A package's __init__ is its own package; `from .rules import _base` runs jaxnet.rules too.
    got = imported_modules("jaxnet", True, "from . import rules\nfrom .rules import _base\nimport jaxnet._sweep\n", known)
    assert got == {"jaxnet.rules": 1, "jaxnet.rules._base": 2, "jaxnet._sweep": 3}
    got = imported_modules("jaxnet.rules", True, "from ._base import Rule\nfrom . import _coupled\n", known)
    assert got == {"jaxnet.rules._base": 1, "jaxnet.rules._coupled": 2}
    assert imported_modules("jaxnet.cli", False, "import jaxnet as jn\n", known) == {"jaxnet": 1}
    with pytest.raises(ValueError, match="beyond the top package"):
        imported_modules("jaxnet.cli", False, "from .. import x\n", known)
    with pytest.raises(ValueError, match="no module under jaxnet"):
        imported_modules("jaxnet.cli", False, "from ._gone import x\n", known)
    assert find_cycle({"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b": 1}, "b": {}, "c": {"a": 1}}) is None


def test_the_import_graph_has_no_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_core_does_not_import_the_application_layers():
    graph = import_graph()
    wrong = [(a, b, line) for a, targets in graph.items() if not _in(a, APPLICATION)
             for b, line in targets.items() if _in(b, APPLICATION)]
    assert not wrong, "core modules importing the application layers:\n" + _describe(wrong)


def test_the_plots_do_not_import_the_sweep_engine():
    graph = import_graph()
    wrong = [(a, b, line) for a, targets in graph.items() if _in(a, PLOTS)
             for b, line in targets.items() if _in(b, ENGINE)]
    assert not wrong, "plot modules importing the sweep engine:\n" + _describe(wrong)


def test_every_module_is_at_most_450_lines():
    long = {name: n for name, path in package_modules().items()
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"
