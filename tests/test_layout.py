"""The package layout: which package may import which (read from the source, function bodies included),
and the core's import graph."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FRAMEWORK_PACKAGES = ("wsd_jax", "wsd_torch", "wsd_plan", "jax", "jaxlib", "optax", "flax", "orbax", "torch")


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in a file, at any depth (inside functions too), relative ones
    resolved against the file's package."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = path.parent.relative_to(ROOT).as_posix().replace("/", ".") if path.is_relative_to(ROOT) else ""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            found.append((node.lineno, module))
            # `from wsd_core import _spec` imports the submodule wsd_core._spec
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return found


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def test_the_scan_sees_imports_inside_functions(tmp_path):
    # the check below must not pass because it cannot see a lazy import
    (tmp_path / "m.py").write_text("def f():\n    from wsd_jax import _schedule\n    import torch\n")
    assert [m for _, m in _imports(tmp_path / "m.py")] == ["wsd_jax", "wsd_jax._schedule", "torch"]


@pytest.mark.parametrize("path", _modules("wsd_core"), ids=lambda p: p.name)
def test_the_core_imports_no_framework_package(path):
    bad = [
        f"line {line}: {module}"
        for line, module in _imports(path)
        if module.split(".")[0] in FRAMEWORK_PACKAGES
    ]
    assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [("wsd_jax", ("torch", "wsd_torch", "wsd_plan")), ("wsd_torch", ("jax", "optax", "wsd_jax", "wsd_plan"))],
)
def test_each_framework_side_needs_neither_the_other_nor_the_planner(package, forbidden):
    bad = [
        f"{path.relative_to(ROOT)} line {line}: {module}"
        for path in _modules(package)
        for line, module in _imports(path)
        if module.split(".")[0] in forbidden
    ]
    assert not bad


def test_nothing_in_the_packages_imports_flax_or_the_demo():
    # the demo (a flax model) lives in examples/, outside the wheel
    bad = [
        f"{path.relative_to(ROOT)} line {line}: {module}"
        for package in ("wsd_core", "wsd_jax", "wsd_torch", "wsd_plan")
        for path in _modules(package)
        for line, module in _imports(path)
        if module.split(".")[0] == "flax" or "demo" in module or "charlm" in module
    ]
    assert not bad
