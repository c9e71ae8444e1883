"""The README's Python blocks run as written, and the docstring examples hold."""

from __future__ import annotations

import doctest
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)


def test_readme_python_blocks_run_in_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # anything the examples write lands in a scratch folder
    blocks = _python_blocks(ROOT / "README.md")
    assert len(blocks) >= 3
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)


DOCTEST_MODULES = [
    "wsd_core._save_plan",
    "wsd_core._presets",
    "wsd_core._branching",
    "wsd_jax._checkpoint",
    "wsd_core._spec",
    "wsd_jax",
    "wsd_jax._schedule",
    "wsd_jax._hyperparams",
    "wsd_torch",
    "wsd_torch._backend",
    "wsd_torch._lambda_lr",
    "wsd_torch._device_lr",
    "wsd_torch._container",
]


@pytest.mark.parametrize("module", DOCTEST_MODULES)
def test_docstring_examples(module):
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    assert result.attempted > 0
