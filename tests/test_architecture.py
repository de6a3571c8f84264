"""The floor plan of docs/architecture.md, read from the code's own imports.

Every import of ours, at the top of a module or inside a function, is an arrow. Arrows
point down or stay within a package; nothing imports a package above it or beside it on
its floor; no two modules import each other, directly or round a circle. A new top-level
package fails here until it is given a floor.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Bottom to top. A package may import its own modules and any package on a lower floor.
FLOORS: dict[str, int] = {
    "rivyahooks_protocol": 0,
    "rivyahooks_foundation": 1,
    "rivyahooks_simulator": 1,
    "models": 2,
    "storage": 2,
    "receiver": 3,
    "tasks": 3,
    "rivyahooks": 4,
}
# What the packages import of the Python world that a floor must never: the web framework
# stays in the web role (and the simulator, which is a web app of its own).
NEVER_IMPORTS: dict[str, tuple[str, ...]] = {
    "models": ("flask", "celery"),
    "storage": ("flask", "celery"),
    "tasks": ("flask",),
    "rivyahooks_protocol": ("flask", "celery", "sqlalchemy"),
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    """Every module of our packages, by dotted name."""
    found: dict[str, Path] = {}
    for package in FLOORS:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" in path.parts and "versions" in path.parts:
                continue  # Alembic loads revisions by path; each imports models.base only
            found[_module_name(path)] = path
    return found


def _imported(path: Path, module: str) -> Iterator[str]:
    """Yield every module name an import in `path` names, absolute and relative alike."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                # `from package import module` names the module; `from module import name`
                # names the module itself.
                candidate = f"{base}.{alias.name}"
                yield candidate if candidate in modules() else base


@cache
def arrows() -> dict[str, frozenset[str]]:
    """Each module's imports of our own modules."""
    ours = set(modules())
    graph: dict[str, frozenset[str]] = {}
    for module, path in modules().items():
        targets = set()
        for name in _imported(path, module):
            # `import a.b.c` of ours lands on the deepest module that exists.
            while name and name not in ours and name.split(".")[0] in FLOORS:
                name = name.rpartition(".")[0]
            if name in ours and name != module:
                targets.add(name)
        graph[module] = frozenset(targets)
    return graph


def _package(module: str) -> str:
    return module.split(".")[0]


def test_every_top_level_package_has_a_floor() -> None:
    packages = {
        path.parent.name
        for path in ROOT.glob("*/__init__.py")
        if path.parent.name not in ("tests", "bench", "deploy")
    }
    assert packages == set(FLOORS)


def test_imports_point_down_only() -> None:
    upward = [
        f"{module} -> {target}"
        for module, targets in arrows().items()
        for target in sorted(targets)
        if _package(target) != _package(module)
        and FLOORS[_package(target)] >= FLOORS[_package(module)]
    ]
    assert upward == []


@pytest.mark.parametrize(
    ("package", "allowed"),
    [
        # The protocol imports nothing of ours: anything may use it, it depends on nothing.
        ("rivyahooks_protocol", set()),
        # The simulator is Rivya: it knows the protocol and nothing of the service.
        ("rivyahooks_simulator", {"rivyahooks_protocol"}),
        ("rivyahooks_foundation", {"rivyahooks_protocol"}),
        # Models import neither role; the receiver never loads the worker's code.
        ("models", {"rivyahooks_protocol", "rivyahooks_foundation"}),
        ("receiver", {"rivyahooks_protocol", "rivyahooks_foundation", "models", "storage"}),
    ],
)
def test_what_each_package_may_import(package: str, allowed: set[str]) -> None:
    imported = {
        _package(target)
        for module, targets in arrows().items()
        if _package(module) == package
        for target in targets
    } - {package}
    assert imported <= allowed, f"{package} imports {sorted(imported - allowed)}"


def test_the_simulator_is_loaded_only_by_the_simulate_command() -> None:
    importers = sorted(
        module
        for module, targets in arrows().items()
        if _package(module) != "rivyahooks_simulator"
        and any(_package(t) == "rivyahooks_simulator" for t in targets)
    )
    assert importers == ["rivyahooks.cli"]


@pytest.mark.parametrize("package", sorted(NEVER_IMPORTS))
def test_packages_stay_clear_of_frameworks_above_them(package: str) -> None:
    banned = NEVER_IMPORTS[package]
    found = sorted(
        f"{module} imports {name}"
        for module, path in modules().items()
        if _package(module) == package
        for name in _imported(path, module)
        if name.split(".")[0] in banned
    )
    assert found == []


def test_no_circle_between_modules() -> None:
    graph = arrows()
    circles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                circles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target)
        path.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)
    assert circles == []


def test_the_checker_sees_arrows() -> None:
    # Guards the tests above against passing on an empty graph: known arrows are read,
    # relative and absolute, at the top of a module and inside a function.
    graph = arrows()
    assert "models.base" in graph["models.events"]
    assert "rivyahooks_protocol.contract" in graph["rivyahooks_protocol.signatures"]
    assert "storage.files" in graph["storage"]  # imported inside open_storage's helper
    assert sum(len(targets) for targets in graph.values()) > 200
