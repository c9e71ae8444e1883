"""The package layout: which package may import which (read from the source, function bodies included),
and the core's import graph."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FRAMEWORK_PACKAGES = ("wsd_jax", "wsd_torch", "wsd_plan", "jax", "jaxlib", "optax", "flax", "orbax", "torch")


def _imports(path: Path, *, runtime_only: bool = False) -> list[tuple[int, str]]:
    """(line, module) of every import in a file, at any depth (inside functions too), relative ones
    resolved against the file's package; ``runtime_only`` leaves out ``if TYPE_CHECKING:`` blocks."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = path.parent.relative_to(ROOT).as_posix().replace("/", ".") if path.is_relative_to(ROOT) else ""
    if runtime_only:
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                node.body = []
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
            # `from wsd_core import _spec` imports the submodule wsd_core._spec; the package itself
            # counts only when a name comes from its __init__
            names = [f"{module}.{alias.name}" for alias in node.names]
            if not all(_is_module(name) for name in names):
                found.append((node.lineno, module))
            found += [(node.lineno, name) for name in names]
    return found


def _is_module(dotted: str) -> bool:
    path = ROOT.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def test_the_scan_sees_imports_inside_functions(tmp_path):
    # the check below must not pass because it cannot see a lazy import
    (tmp_path / "m.py").write_text("def f():\n    from wsd_jax import _schedule\n    import torch\n")
    assert [m for _, m in _imports(tmp_path / "m.py")] == ["wsd_jax._schedule", "torch"]


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


def _module_name(path: Path) -> str:
    name = path.relative_to(ROOT).with_suffix("").as_posix().replace("/", ".")
    return name.removesuffix(".__init__")


PACKAGES = ("wsd_core", "wsd_jax", "wsd_torch", "wsd_plan")


def _cycle(graph: dict[str, list[str]]) -> list[str] | None:
    """An import cycle of ``graph`` (module -> the modules it imports), or None."""
    state: dict[str, str] = {}

    def visit(node: str, trail: list[str]) -> list[str] | None:
        state[node] = "open"
        for nxt in graph[node]:
            if state.get(nxt) == "open":
                return [*trail[trail.index(nxt) :], nxt] if nxt in trail else [node, nxt]
            if nxt not in state and (found := visit(nxt, [*trail, nxt])):
                return found
        state[node] = "done"
        return None

    for name in graph:
        if name not in state and (found := visit(name, [name])):
            return found
    return None


def test_the_cycle_search_finds_a_cycle():
    assert _cycle({"a": ["b"], "b": ["c"], "c": ["a"]}) == ["a", "b", "c", "a"]
    assert _cycle({"a": ["b"], "b": [], "c": ["a", "b"]}) is None


@pytest.mark.parametrize("package", PACKAGES)
def test_no_package_has_an_import_cycle(package):
    # Edges are every import, function bodies and type-checking blocks included: one module defines a
    # concept and the others import it, one way. A package's __init__ re-exports, so imports of the
    # package itself are not edges.
    modules = {_module_name(p): p for p in _modules(package) if p.name != "__init__.py"}
    graph = {
        name: sorted({m for _, m in _imports(path) if m in modules and m != name})
        for name, path in modules.items()
    }
    assert any(graph.values()), "the scan found no imports at all"
    cycle = _cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def _private_module(dotted: str) -> str | None:
    """The private module (or name) an import reaches, ``wsd_plan._fit`` of ``wsd_plan._fit.undetermined``,
    or None for a public one (``__version__`` is public)."""
    parts = dotted.split(".")
    for i, part in enumerate(parts[1:], start=1):
        if part.startswith("_") and not part.startswith("__"):
            return ".".join(parts[: i + 1])
    return None


LIBRARY = ("wsd_core", "wsd_jax", "wsd_torch", "wsd_plan")

# The internals the tests reach into, each for a reason a public name cannot serve; nothing else
# private is imported by a test (test_tests_import_private_names_only_from_the_internals_under_test).
INTERNALS_UNDER_TEST = {
    "wsd_core._clock": "token_ramp, the token clock's ramp, against its closed form",
    "wsd_jax._fingerprint": "the fingerprint and its lanes, against bit flips and other hosts' layout",
    "wsd_jax._integrity": "the record's seal, to forge a damaged record that still looks sealed",
    "wsd_torch._device_lr": "the rate kernel, replaced to count launches and to test its fallback",
    "wsd_torch._container": "the container's module, patched to fail a load midway (atomicity)",
    "wsd_plan._cli": "the wsd plan parser, checked before any work",
    "wsd_plan._command": "the wsd plan / fit commands, run in-process, and their plot",
    "wsd_plan._logs": "read_log, the CSV / JSONL log reader, on every format it takes",
    "wsd_plan._tensorboard": "read_event_log, against TensorBoard's own writer",
    "wsd_plan._loss_buffer": "the Lightning callback's on-device loss buffer",
    "wsd_plan._fit": "undetermined (the notes of a fit), and the module patched to count refits",
    "wsd_plan._optimize": "final_loss and isotonic_non_increasing, against direct evaluations",
    "wsd_plan._uncertainty": "LAW_ERROR_BASE, the interval's base width",
    "wsd_plan._transfer": "TRANSFER_SD, how much a prior widens between runs",
    "wsd_plan._forecast": "the once-per-process compile notice, reset as in a fresh process",
}


def test_the_private_scan_finds_private_modules_and_names():
    assert _private_module("wsd_plan._fit.undetermined") == "wsd_plan._fit"
    assert _private_module("wsd_jax._fingerprint._device_lanes") == "wsd_jax._fingerprint"
    assert _private_module("wsd_core.__version__") is None and _private_module("wsd_plan.laws.LAWS") is None


@pytest.mark.parametrize("package", [*LIBRARY, "examples", "benchmarks"])
def test_no_package_imports_a_private_name_of_another(package):
    # the packages use each other, and the examples and benchmarks use them, through public names only
    # (the core's adapter interface is wsd_core.backend)
    bad = [
        f"{path.relative_to(ROOT)} line {line}: {module}"
        for path in _modules(package)
        for line, module in _imports(path)
        if module.split(".")[0] in LIBRARY and module.split(".")[0] != package and _private_module(module)
    ]
    assert not bad


def test_tests_import_private_names_only_from_the_internals_under_test():
    reached = {
        (private, f"{path.name} line {line}")
        for path in _modules("tests")
        for line, module in _imports(path)
        if module.split(".")[0] in LIBRARY and (private := _private_module(module))
    }
    bad = sorted(f"{where}: {private}" for private, where in reached if private not in INTERNALS_UNDER_TEST)
    assert not bad, "a private name outside INTERNALS_UNDER_TEST (use the public one, or list it with why)"
    unused = set(INTERNALS_UNDER_TEST) - {private for private, _ in reached}
    assert not unused, f"listed but no longer imported by any test: {sorted(unused)}"


def _code_lines(source: str, node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """A function's lines that hold code: not blank, not a comment, not its docstring."""
    first = node.body[0]
    doc = range(0)
    if (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    ):
        doc = range(first.lineno, (first.end_lineno or first.lineno) + 1)
    lines = source.splitlines()[node.lineno - 1 : node.end_lineno]
    return sum(
        1
        for number, line in enumerate(lines, start=node.lineno)
        if number not in doc and line.strip() and not line.strip().startswith("#")
    )


def test_the_line_count_skips_docstrings_comments_and_blank_lines():
    source = 'def f():\n    """doc\n    more"""\n\n    # why\n    x = 1\n    return x\n'
    (node,) = ast.parse(source).body
    assert isinstance(node, ast.FunctionDef) and _code_lines(source, node) == 3


@pytest.mark.parametrize("package", PACKAGES)
def test_no_function_is_over_60_code_lines(package):
    long = []
    for path in _modules(package):
        source = path.read_text()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _code_lines(source, node) > 60:
                long.append(
                    f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({_code_lines(source, node)})"
                )
    assert not long


def test_the_planner_never_branches_on_a_laws_name():
    # each law is one record (wsd_plan._laws.Law): its name is a key of LAWS, never a condition
    from wsd_plan.laws import LAWS

    found = [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for path in _modules("wsd_plan")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Compare)
        and any(isinstance(c, ast.Constant) and c.value in LAWS for c in [node.left, *node.comparators])
    ]
    assert not found


def test_the_spec_is_lean():
    # before: 26 public attributes (evaluations twice over, presets by signature surgery) and a
    # _spec.py of 722 lines; what moved keeps working until 0.3 with a warning (wsd_core._deprecated)
    import dataclasses

    from wsd_core import WSDSpec

    fields = {f.name for f in dataclasses.fields(WSDSpec)}
    public = {n for n in dir(WSDSpec) if not n.startswith("_") and n not in fields}
    deprecated = {n for n in public if (getattr(WSDSpec, n).__doc__ or "").startswith("Deprecated:")}
    assert len(public - deprecated) <= 16, sorted(public - deprecated)
    assert deprecated == {
        *(f"from_{p}" for p in ("transformers", "torchtitan", "pytorch_accelerated", "megatron", "olmo_core",
                                "maxtext", "levanter")),
        "multiplier_in_units", "stable_fraction_in_units", "phase_in_units", "resolved",
    }  # fmt: skip
    assert len((ROOT / "wsd_core" / "_spec.py").read_text().splitlines()) <= 400


def test_the_typed_fields_are_the_specs_fields():
    import dataclasses
    import typing

    from wsd_core import WSDFields, WSDSpec

    spec_fields = {f.name: f.type for f in dataclasses.fields(WSDSpec)}
    hints = typing.get_type_hints(WSDFields)
    assert set(hints) == set(spec_fields)  # the same names
    for name, hint in hints.items():  # and the same types
        assert hint == typing.get_type_hints(WSDSpec)[name], name


def test_every_entry_point_that_takes_spec_fields_shows_them_to_type_checkers():
    # before: wsd_schedule, WSDLR, WSDDeviceLR and three more took **fields: Any (15 untyped fields)
    untyped = []
    for package in PACKAGES:
        for path in _modules(package):
            for node in ast.walk(ast.parse(path.read_text())):
                if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) or node.args.kwarg is None:
                    continue
                annotation = ast.unparse(node.args.kwarg.annotation) if node.args.kwarg.annotation else ""
                # the dataclass guard, a deprecated alias, and the presets' builder of (value, origin) pairs
                forwarding = node.name in ("__new__", "build", "_build")
                if annotation in ("", "Any") and not forwarding:
                    untyped.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}")
                typed = annotation.startswith("Unpack[")  # a TypedDict: WSDFields, GridFields, ...
                if node.args.kwarg.arg == "fields" and not typed and not forwarding:
                    untyped.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: {annotation}")
    assert not untyped


@pytest.mark.parametrize("package", LIBRARY)
def test_no_module_of_the_project_is_imported_under_another_name(package):
    # `from wsd_core import backend as v` hid where each `v.check_int` came from
    bad = []
    for path in _modules(package):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in LIBRARY:
                bad += [
                    f"{path.relative_to(ROOT)} line {node.lineno}: {node.module}.{a.name} as {a.asname}"
                    for a in node.names
                    if a.asname not in (None, a.name) and _is_module(f"{node.module}.{a.name}")
                ]
            elif isinstance(node, ast.Import):
                bad += [
                    f"{path.relative_to(ROOT)} line {node.lineno}: {a.name} as {a.asname}"
                    for a in node.names
                    if a.name.split(".")[0] in LIBRARY and a.asname
                ]
    assert not bad


def test_the_planners_public_names_are_listed_once_for_runtime_and_once_for_type_checkers():
    import wsd_plan

    tree = ast.parse((ROOT / "wsd_plan" / "__init__.py").read_text())
    block = next(n for n in tree.body if isinstance(n, ast.If) and "TYPE_CHECKING" in ast.unparse(n.test))
    typed = {
        alias.asname or alias.name: (node.module or "").removeprefix("wsd_plan.")
        for node in block.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    assert typed == wsd_plan._HOMES
    assert wsd_plan.__all__ == sorted(typed)
    for name in wsd_plan.__all__:  # each resolves at run time, from the module named
        assert getattr(wsd_plan, name) is getattr(__import__(f"wsd_plan.{typed[name]}", fromlist=["_"]), name)
