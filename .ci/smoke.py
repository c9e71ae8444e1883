"""Smoke test of one installed extra (run by .ci/check-extras in a fresh venv, outside the source tree).

python smoke.py core|torch|jax|orbax

Runs the README's quick start for that extra as written, checks that it imported the installed
wheel (not the source tree), and that every part whose extra is missing says which extra to install.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
SECTIONS = {
    "core": ["## One spec everywhere"],
    "torch": ["## Quick start (PyTorch)"],
    "jax": ["## Quick start (JAX / optax)"],
    # the planner reads the published curves the wheel must carry
    "plan": ["## Which cooldown? The planner"],
    "orbax": ["## Checkpoints, continuing the trunk, branching cooldowns (Orbax)"],
}
# What each environment must lack, and the extra the error has to name.
MISSING = {
    "core": [("wsd_jax", "[jax]"), ("wsd_torch", "[torch]"), ("wsd_plan", "[plan]")],
    "torch": [("wsd_jax", "[jax]"), ("wsd_plan", "[plan]")],
    "jax": [("wsd_torch", "[torch]"), ("wsd_jax.WSDCheckpointManager", "[jax,orbax]")],
    "orbax": [("wsd_torch", "[torch]")],
    "plan": [
        ("wsd_torch", "[torch]"),
        ("wsd_plan.lightning", "[plan,lightning]"),
        ("wsd_plan.transformers", "[plan,transformers]"),
    ],
}


def readme_block(heading: str) -> str:
    text = README.read_text()
    section = text[text.index(heading) :]
    section = section[: section.find("\n## ", len(heading))]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)[0]


def expect_import_error(target: str, extra: str) -> None:
    module, _, attr = target.partition(".")
    if attr.islower():  # a module (wsd_plan.lightning), not a name (wsd_jax.WSDCheckpointManager)
        module, attr = target, ""
    try:
        mod = importlib.import_module(module)
        if attr:
            getattr(mod, attr)
    except ImportError as e:
        assert extra in str(e), f"importing {target}: the error does not name {extra}: {e}"
        print(f"  {target}: ImportError naming {extra}")
        return
    raise AssertionError(f"{target} imported although its extra is not installed")


def main(name: str) -> None:
    import wsd_core

    assert "site-packages" in wsd_core.__file__, f"not the installed wheel: {wsd_core.__file__}"
    print(f"wsd-schedule {wsd_core.__version__} from {Path(wsd_core.__file__).parent}")
    for heading in SECTIONS[name]:
        exec(compile(readme_block(heading), f"README.md ({heading})", "exec"), {"__name__": "smoke"})
        print(f"  the README's {heading!r} block ran")
    for target, extra in MISSING[name]:
        expect_import_error(target, extra)
    if name == "torch":  # without numpy, torch warns "Failed to initialize NumPy" on every import
        fresh = subprocess.run(
            [sys.executable, "-W", "error", "-c", "import wsd_torch"], capture_output=True, text=True
        )
        assert fresh.returncode == 0 and "NumPy" not in fresh.stderr, fresh.stderr
        print("  wsd_torch imports without a NumPy warning")
    wsd = Path(sys.executable).parent / "wsd"
    version = subprocess.run([str(wsd), "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.strip() == f"wsd {wsd_core.__version__}", version.stdout
    done = subprocess.run([str(wsd), "table", "--total-steps", "1000", "--decay-ratio", "0.2"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    assert "decay" in done.stdout
    plot = subprocess.run(
        [str(wsd), "plot", "--total-steps", "1000", "--out", "x.png"], capture_output=True, text=True
    )
    if importlib.util.find_spec("jax") is None:
        argv = [
            "plan",
            "--run",
            "log.csv",
            "spec.json",
            "--trunk",
            "spec.json",
            "--at",
            "1",
            "--lengths",
            "1",
        ]
        plan = subprocess.run([str(wsd), *argv], capture_output=True, text=True)
        named = "[plan]" in plan.stderr and "Traceback" not in plan.stderr
        assert plan.returncode == 2 and named, plan.stderr
        print("  wsd plan without jax names the [plan] extra")
    if name == "plan" and importlib.util.find_spec("tensorboard") is None:
        import tempfile

        from wsd_plan import LogError, load_run

        with tempfile.TemporaryDirectory() as folder:
            (Path(folder) / "events.out.tfevents.1.host").write_bytes(b"")
            try:
                load_run(folder)
            except LogError as e:
                assert "[tensorboard]" in str(e), e
                print("  a TensorBoard log without tensorboard names the [tensorboard] extra")
            else:
                raise AssertionError("a TensorBoard log was read without tensorboard installed")
    if importlib.util.find_spec("matplotlib") is None:
        assert plot.returncode == 2 and "[plot]" in plot.stderr and "Traceback" not in plot.stderr, (
            plot.stderr
        )
        print("  wsd table works; wsd plot without matplotlib names the [plot] extra")
    else:
        assert plot.returncode == 0, plot.stderr
        print("  wsd table and wsd plot work")


if __name__ == "__main__":
    main(sys.argv[1])
