"""The README's and the docs' Python blocks run as written (each on its own, as pasted), and every
value they state is the value the code gives. (The docstring examples run as pytest's doctests of
the packages themselves: ``--doctest-modules`` over ``testpaths`` in pyproject.toml, so no list can
miss a module.)

A line of a block written ``expression  # -> expected`` is checked: ``repr(expression)`` must match
``expected``, where ``...`` stands for any text (as in doctest's ELLIPSIS). So a comment cannot drift
from the code it describes.
"""

from __future__ import annotations

import doctest
import logging
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_CHECKED = re.compile(r"^(?P<indent>\s*)(?P<expr>\S.*?)\s+# -> (?P<expected>.+)$")
_ELLIPSIS = doctest.OutputChecker()


def _python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)


def _instrument(block: str) -> tuple[str, int]:
    """Rewrites each ``expr  # -> expected`` line into a check; returns the code and their number."""
    lines, checks = [], 0
    for line in block.splitlines():
        match = _CHECKED.match(line)
        if match:
            indent, expr, expected = match.group("indent", "expr", "expected")
            line = f"{indent}__check__(({expr}), {expected.strip()!r}, {expr!r})"
            checks += 1
        lines.append(line)
    return "\n".join(lines) + "\n", checks


def _check(value: object, expected: str, expr: str) -> None:
    got = repr(value)
    if not _ELLIPSIS.check_output(expected, got, doctest.ELLIPSIS):
        raise AssertionError(f"{expr}\n  the page says: {expected}\n  the code gives: {got}")


@pytest.mark.parametrize("page", PAGES, ids=[p.relative_to(ROOT).as_posix() for p in PAGES])
def test_python_blocks_run_and_state_true_values(page, tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)  # anything the examples write lands in a scratch folder
    # each block on its own, as a reader pastes it: its imports and setup in the block itself
    for block in _python_blocks(page):
        code, _ = _instrument(block)
        namespace: dict = {"__check__": _check, "__name__": "__docs__"}
        with caplog.at_level(logging.WARNING, logger="wsd_core"):
            exec(compile(code, str(page.relative_to(ROOT)), "exec"), namespace)
    # an example shows what is meant: none is a spec the library calls rarely meant
    assert not [r.getMessage() for r in caplog.records if "rarely meant" in r.getMessage()]


def test_the_readme_states_values_and_runs_twice(tmp_path, monkeypatch):
    """The README's blocks state checked values, and running them again in the same place works."""
    monkeypatch.chdir(tmp_path)
    blocks = _python_blocks(ROOT / "README.md")
    assert sum(_instrument(b)[1] for b in blocks) >= 8
    for _ in range(2):
        namespace: dict = {"__check__": _check, "__name__": "__docs__"}
        for block in blocks:
            exec(compile(_instrument(block)[0], "README.md", "exec"), namespace)


def test_a_wrong_stated_value_fails():
    code, checks = _instrument("x = 2\nx + 1  # -> 4\n")
    assert checks == 1
    with pytest.raises(AssertionError, match="the page says: 4"):
        exec(compile(code, "t", "exec"), {"__check__": _check})


def test_no_link_leaves_the_repository():
    for page in PAGES:
        for target in re.findall(r"\]\(([^)]+)\)", page.read_text()):
            if "://" in target or target.startswith("#"):
                continue
            resolved = (page.parent / target.split("#")[0]).resolve()
            assert resolved.is_relative_to(ROOT), f"{page.name} links outside the repository: {target}"
            assert resolved.exists(), f"{page.name} links to a missing file: {target}"


@pytest.mark.slow
def test_the_api_reference_names_every_public_method_in_our_own_words(tmp_path):
    # before: WSDLR and WSDDeviceLR inherited phase(), load_state_dict() and more from a private
    # base, and the page listed none of them
    import functools
    import importlib
    import inspect
    import os
    import subprocess
    import sys

    pytest.importorskip("mkdocs")
    for package in ("wsd_jax", "wsd_torch", "wsd_plan"):
        pytest.importorskip(package)
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    subprocess.run([sys.executable, "-m", "mkdocs", "build", "--quiet", "--site-dir", str(tmp_path)],
                   cwd=ROOT, env=env, check=True, capture_output=True)  # fmt: skip
    page = (tmp_path / "api" / "index.html").read_text()
    # a value shown with Python's builtin docstring ("int([x]) -> integer" under an int field) is a
    # name rendered by inspection, not from our source (12 such blocks under WSDSpec's fields before)
    builtin = re.findall(r"int\(\[x\]\)|str\(object=''\)|Built-in immutable sequence|float\(x=0", page)
    assert not builtin, f"the API page shows builtin docstrings: {builtin}"
    ids = set(re.findall(r'id="([\w.]+)"', page))
    missing = []
    for package in ("wsd_core", "wsd_jax", "wsd_torch", "wsd_plan"):
        module = importlib.import_module(package)
        for name in module.__all__:
            cls = getattr(module, name)
            if not inspect.isclass(cls) or issubclass(cls, BaseException):
                continue
            ours = [c for c in cls.__mro__ if c.__module__.split(".")[0] == package]
            kinds = (property, classmethod, staticmethod, functools.cached_property)
            deprecated = lambda v: (
                inspect.getdoc(v.__func__ if isinstance(v, classmethod) else v) or ""
            ).startswith("Deprecated:")  # (0.1's spellings, until 0.3: not on the page)
            members = {
                m
                for c in ours
                for m, v in vars(c).items()
                if not m.startswith("_")
                and (inspect.isfunction(v) or isinstance(v, kinds))
                and not deprecated(v)
            }
            missing += [
                f"{package}.{name}.{m}" for m in sorted(members) if f"{package}.{name}.{m}" not in ids
            ]
    assert not missing, " ".join(missing)


_DOTTED = re.compile(r"\b((?:wsd_core|wsd_jax|wsd_torch|wsd_plan)(?:\.[A-Za-z_]\w*)+)")


def _resolve(dotted: str) -> object:
    """The object a dotted name names: the longest importable module, then attributes."""
    import importlib

    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ModuleNotFoundError(dotted)


def test_every_name_a_page_mentions_exists():
    # before: planner.md named wsd_plan.LAWS, which never existed
    for package in ("wsd_jax", "wsd_torch", "wsd_plan"):
        pytest.importorskip(package)
    pages = [*PAGES, ROOT / "CONTRIBUTING.md"]
    missing = []
    for page in pages:
        for code in re.findall(r"`([^`\n]+)`", page.read_text()):
            for dotted in _DOTTED.findall(code):
                if dotted.endswith("_"):  # a prefix the text names (`wsd_core._`, `presets.from_`)
                    continue
                try:
                    _resolve(dotted)
                except (AttributeError, ModuleNotFoundError):
                    missing.append(f"{page.name}: {dotted}")
                except ImportError:  # the module is there, its extra (lightning, ...) is not installed
                    continue
    assert not missing, missing


def test_the_name_check_finds_a_missing_name():
    with pytest.raises(AttributeError):
        _resolve("wsd_core.WSDSpec.no_such_method")
    assert _resolve("wsd_core.backend.check_int").__name__ == "check_int"  # type: ignore[attr-defined]


def test_every_extra_an_import_error_names_is_an_extra_in_the_readmes_table():
    # before: the Lightning callback asked for [integrations], missing from the table, and the HF one
    # for [peers], a development extra
    import tomllib

    extras = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    readme = (ROOT / "README.md").read_text()
    table = {
        name
        for row in re.findall(r"^\| ([^|]+) \|", readme, flags=re.M)
        for name in re.findall(r"`([\w-]+)`", row)
    }
    named = {
        f"{path.relative_to(ROOT)}: [{group}]": group.split(",")
        for package in ("wsd_core", "wsd_jax", "wsd_torch", "wsd_plan")
        for path in (ROOT / package).rglob("*.py")
        for group in re.findall(r"wsd-schedule\[([\w,-]+)\]", path.read_text())
    }
    assert len(named) >= 8, "the scan found too few install hints"
    bad = [where for where, group in named.items() if not set(group) <= extras & table]
    assert not bad, f"extras not in pyproject.toml and the README's table: {bad}"
