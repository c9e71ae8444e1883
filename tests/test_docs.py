"""The README's and the docs' Python blocks run as written, and every value they state is the value
the code gives. (The docstring examples run as pytest's doctests of the packages themselves:
``--doctest-modules`` over ``testpaths`` in pyproject.toml, so no list can miss a module.)

A line of a block written ``expression  # -> expected`` is checked: ``repr(expression)`` must match
``expected``, where ``...`` stands for any text (as in doctest's ELLIPSIS). So a comment cannot drift
from the code it describes.
"""

from __future__ import annotations

import doctest
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
def test_python_blocks_run_and_state_true_values(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # anything the examples write lands in a scratch folder
    blocks = _python_blocks(page)
    namespace: dict = {"__check__": _check, "__name__": "__docs__"}
    for block in blocks:
        code, _ = _instrument(block)
        exec(compile(code, str(page.relative_to(ROOT)), "exec"), namespace)


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
def test_the_api_reference_names_every_public_method(tmp_path):
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
    ids = set(re.findall(r'id="([\w.]+)"', (tmp_path / "api" / "index.html").read_text()))
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
