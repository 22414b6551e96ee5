"""The layout says the architecture: the layers import one way, siblings import relatively, and pyproject ships
every sub-package (docs/DESIGN.md, "Layers")."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Folder on disk -> the package it is installed as (pyproject's package-dir).
TOP = {"server": "mentee.server", "memory": "mentee.memory", "ui": "mentee.ui"}

# core <- student, memory <- teachers <- serving <- learning <- service <- api, clients, eval, cli, ui.
# A part may import its own layer's other parts only at the top (e.g. the CLI starts the API and the UI), and
# the parts' graph stays without cycles either way.
LAYERS: dict[str, int] = {
    "core": 0,
    "student": 1,
    "memory": 1,
    "teachers": 2,
    "serving": 3,
    "learning": 4,
    "service": 5,
    "api": 6,
    "clients": 6,
    "eval": 6,
    "cli": 6,
    "ui": 6,
}
TOP_LAYER = max(LAYERS.values())


def _modules() -> dict[str, Path]:
    modules = {}
    for folder, package in TOP.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            relative = path.relative_to(ROOT / folder).with_suffix("")
            parts = [p for p in relative.parts if p != "__init__"]
            modules[".".join([package, *parts])] = path
    return modules


def _part(module: str) -> str | None:
    """The layer part a module belongs to: its sub-package of mentee.server, 'memory', 'ui', or None for the
    mentee.server facade (which re-exports the public names of every layer, lazily)."""
    pieces = module.split(".")
    if pieces[1] in ("memory", "ui"):
        return pieces[1]
    return pieces[2] if len(pieces) > 2 else None


def _imports(module: str, path: Path) -> list[tuple[int, str]]:
    """Every mentee module ``module`` imports (at the top, in functions and under TYPE_CHECKING), with lines."""
    is_package = path.name == "__init__.py"
    package = module if is_package else module.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = [f"{target}.{alias.name}" for alias in node.names]
            found += [(node.lineno, target), *((node.lineno, n) for n in names)]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
    return [(line, name) for line, name in found if name.startswith("mentee.")]


MODULES = _modules()


def test_the_parts_are_the_sub_packages() -> None:
    """A new sub-package gets its place in the layers (and in this test) rather than sitting outside them."""
    parts = {_part(m) for m in MODULES} - {None}
    assert parts == set(LAYERS)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down_the_layers(module: str) -> None:
    source = _part(module)
    if source is None:
        return
    wrong = []
    for line, target in _imports(module, MODULES[module]):
        if target in ("mentee.server", "mentee.memory", "mentee.ui"):
            if source != target.split(".")[1] and target != f"mentee.{source}":
                wrong.append(f"line {line}: {target} (the facade; import the module itself)")
            continue
        if not any(target == m or target.startswith(m + ".") for m in MODULES):
            continue  # a name imported from a module, already checked as the module
        part = _part(target)
        if part is None or part == source:
            continue
        if LAYERS[part] > LAYERS[source] or (LAYERS[part] == LAYERS[source] and LAYERS[source] != TOP_LAYER):
            wrong.append(f"line {line}: {target} ({part}, layer {LAYERS[part]}; {source} is layer {LAYERS[source]})")
    assert not wrong, f"{module} imports against the layers:\n" + "\n".join(wrong)


def test_no_cycles_between_parts() -> None:
    edges: dict[str, set[str]] = {part: set() for part in LAYERS}
    for module, path in MODULES.items():
        source = _part(module)
        for _, target in _imports(module, path):
            part = _part(target) if target.count(".") >= 1 and target not in ("mentee.server",) else None
            if source is not None and part is not None and part != source and part in LAYERS:
                edges[source].add(part)
    seen: dict[str, int] = {}

    def visit(part: str, trail: list[str]) -> None:
        if seen.get(part) == 1:
            pytest.fail("the parts import each other in a cycle: " + " -> ".join([*trail, part]))
        if seen.get(part) == 2:
            return
        seen[part] = 1
        for nxt in sorted(edges[part]):
            visit(nxt, [*trail, part])
        seen[part] = 2

    for part in sorted(edges):
        visit(part, [])


def test_siblings_are_imported_relatively() -> None:
    """Inside the package, mentee's own modules are imported relatively (so the tree shows the layers)."""
    absolute = [
        f"{path.relative_to(ROOT)}:{node.lineno}: {node.module}"
        for path in MODULES.values()
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ImportFrom) and not node.level and (node.module or "").startswith("mentee")
    ]
    assert not absolute


def test_pyproject_lists_every_package() -> None:
    """setuptools installs only the listed packages: a sub-package missing from the list would not ship."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    on_disk = {
        ".".join([TOP[folder], *init.parent.relative_to(ROOT / folder).parts])
        for folder in TOP
        for init in (ROOT / folder).rglob("__init__.py")
    }
    assert set(config["packages"]) == on_disk
    assert config["package-dir"] == {package: folder for folder, package in TOP.items()}
