"""The package's layers: each folder imports only folders below it (issue 20, "lower layers know nothing of higher
ones"), and no module is left loose at the package root besides the two faces.

The order, lowest first: problems, line_search, reference, targets, compare, engine, properties, fuzz and report
(side by side), suite, then the faces (cli, plugin). The check reads every ``import`` statement (top-level and
inside functions) with :mod:`ast`, so a lazy import counts as much as an eager one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "lbfgs_verify"

LAYERS: list[set[str]] = [
    {"problems"},
    {"line_search"},
    {"reference"},
    {"targets"},
    {"compare"},
    {"engine"},
    {"properties"},
    {"fuzz", "report"},
    {"suite"},
    {"cli", "plugin", "__main__", "__init__"},
]
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}
FACES = {"cli.py", "plugin.py", "__init__.py", "__main__.py"}


def _folder_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "lbfgs_verify" and len(parts) > 1 else None


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "lbfgs_verify":
                found += [(node.lineno, f"lbfgs_verify.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
    return [(line, name) for line, name in found if name.startswith("lbfgs_verify.")]


def test_only_the_faces_are_loose_at_the_root() -> None:
    loose = sorted(p.name for p in PACKAGE.glob("*.py") if p.name not in FACES)
    assert loose == [], f"modules at the package root that belong in a folder: {loose}"


@pytest.mark.parametrize("folder", sorted(name for names in LAYERS[:-1] for name in names))
def test_a_folder_imports_only_lower_layers(folder: str) -> None:
    upward = []
    for path in sorted((PACKAGE / folder).rglob("*.py")):
        for line, module in _imports(path):
            other = _folder_of(module)
            if other is None or other == folder or other == "golden":
                continue
            assert other in RANK, f"{path.relative_to(PACKAGE.parent)}:{line} imports {module}: no layer has {other!r}"
            if RANK[other] >= RANK[folder]:
                upward.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {module}")
    assert upward == [], f"{folder} imports a layer at or above its own:\n" + "\n".join(upward)


def test_every_folder_has_a_layer() -> None:
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders - set(RANK) == set(), f"folders with no layer in this test: {sorted(folders - set(RANK))}"


def test_every_package_folder_is_in_the_wheel() -> None:
    """pyproject.toml lists the packages by name (the golden data ships as ``lbfgs_verify.golden``): a folder left out
    of that list installs from a checkout in editable mode and is missing from ``pip install .``."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: the tomli dependency
        import tomli as tomllib  # type: ignore[no-redef]

    listed = set(tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
                 ["packages"])
    folders = {".".join(p.relative_to(PACKAGE.parent).parts[:-1]) for p in PACKAGE.rglob("__init__.py")}
    assert folders - listed == set(), f"package folders missing from pyproject.toml: {sorted(folders - listed)}"
