"""Each way the project evaluates a spec, as ``fn(spec, steps) -> (values as float64 ndarray, dtype)``.

Tests parametrised over ``BACKENDS`` compare every backend with the reference in one place; a backend
whose framework is not installed is skipped.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from wsd_core import WSDSpec

Evaluator = Callable[[WSDSpec, list[int]], np.ndarray]


def enable_x64() -> Any:
    """jax in float64: ``jax.enable_x64(True)`` from jax 0.8, ``jax.experimental.enable_x64()``
    before (the lowest versions the extras allow are tested too)."""
    import jax

    enable: Any = getattr(jax, "enable_x64", None)
    if enable is None:
        enable = importlib.import_module("jax.experimental").enable_x64
    return enable(True)


def python_floats(spec: WSDSpec, steps: list[int]) -> np.ndarray:
    return np.array([spec.multiplier(s) for s in steps], dtype=np.float64)


def jax_float32(spec: WSDSpec, steps: list[int]) -> np.ndarray:
    import jax
    import jax.numpy as jnp

    from wsd_jax import wsd_schedule

    sched = jax.jit(wsd_schedule(1.0, spec=spec))
    out = sched(jnp.asarray(np.clip(steps, -(2**31), 2**31 - 1), dtype=jnp.int32))
    assert out.dtype == jnp.float32
    return np.asarray(out, dtype=np.float64)


def jax_float64(spec: WSDSpec, steps: list[int]) -> np.ndarray:
    import jax
    import jax.numpy as jnp

    from wsd_jax import wsd_schedule

    with enable_x64():
        sched = jax.jit(wsd_schedule(1.0, spec=spec, dtype=jnp.float64))
        out = sched(jnp.asarray(steps, dtype=jnp.int64))
        assert out.dtype == jnp.float64
        return np.asarray(out, dtype=np.float64)


def _torch(dtype_name: str, device: str) -> Evaluator:
    def evaluate(spec: WSDSpec, steps: list[int]) -> np.ndarray:
        import torch

        from wsd_torch import multiplier_tensor

        dtype = getattr(torch, dtype_name)
        out = multiplier_tensor(spec, torch.tensor(steps, dtype=torch.int64, device=device), dtype)
        assert out.dtype == dtype and out.device.type == device
        return out.cpu().double().numpy()

    evaluate.__name__ = f"torch_{dtype_name}_{device}"
    return evaluate


def _on_jax_gpu(evaluate: Evaluator) -> Evaluator:
    def on_gpu(spec: WSDSpec, steps: list[int]) -> np.ndarray:
        import jax

        gpu = jax.devices("gpu")[0]
        with jax.default_device(gpu):
            return evaluate(spec, steps)

    on_gpu.__name__ = f"{evaluate.__name__}_gpu"
    return on_gpu


def cuda_available() -> bool:
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return torch.cuda.is_available()


def jax_gpu_available() -> bool:
    if importlib.util.find_spec("jax") is None:
        return False
    import jax

    try:
        return bool(jax.devices("gpu"))
    except RuntimeError:
        return False


def _requires(module: str) -> Any:
    return pytest.mark.skipif(importlib.util.find_spec(module) is None, reason=f"{module} missing")


# (id, evaluator, relative tolerance)
BACKENDS = [
    pytest.param(python_floats, 1e-12, id="python-float64"),
    pytest.param(jax_float32, 1e-6, id="jax-float32", marks=_requires("jax")),
    pytest.param(jax_float64, 1e-12, id="jax-float64", marks=_requires("jax")),
    pytest.param(_torch("float32", "cpu"), 1e-6, id="torch-float32", marks=_requires("torch")),
    pytest.param(_torch("float64", "cpu"), 1e-12, id="torch-float64", marks=_requires("torch")),
    # The same on a GPU: marked, and skipped where there is none.
    pytest.param(
        _torch("float32", "cuda"),
        1e-6,
        id="torch-float32-cuda",
        marks=[pytest.mark.cuda, pytest.mark.skipif(not cuda_available(), reason="no CUDA GPU")],
    ),
    pytest.param(
        _torch("float64", "cuda"),
        1e-12,
        id="torch-float64-cuda",
        marks=[pytest.mark.cuda, pytest.mark.skipif(not cuda_available(), reason="no CUDA GPU")],
    ),
    pytest.param(
        _on_jax_gpu(jax_float32),
        1e-6,
        id="jax-float32-gpu",
        marks=[pytest.mark.cuda, pytest.mark.skipif(not jax_gpu_available(), reason="no jax GPU")],
    ),
    pytest.param(
        _on_jax_gpu(jax_float64),
        1e-12,
        id="jax-float64-gpu",
        marks=[pytest.mark.cuda, pytest.mark.skipif(not jax_gpu_available(), reason="no jax GPU")],
    ),
]

_TINY = {1e-6: float(np.finfo(np.float32).tiny), 1e-12: float(np.finfo(np.float64).tiny)}


def contract_rtol(rtol: float, fields: dict) -> float:
    """The contract's tolerance for a spec: ``rtol``, but in float32 for the geometric shape, whose
    error grows with |ln r|, and a power stable phase, whose error grows with |b| ln(1 + T / tau)
    (docs/contract.md, "Numerics")."""
    if rtol == 1e-6 and fields.get("decay_shape") == "geometric":
        rtol = max(rtol, 2e-7 * abs(float(np.log(fields["min_ratio"]))))
    b = fields.get("stable_power", 0.0)
    if rtol >= 1e-6 and b:  # float32 exp(b log1p(x)): within 2e-7 + 1.2e-7 |b| (1 + ln(1 + T / tau))
        tau = fields.get("stable_scale") or max(fields.get("warmup_steps", 0), 1)
        rtol = max(rtol, 2e-7 + 1.2e-7 * abs(b) * (1 + float(np.log1p(fields["total_steps"] / tau))))
    return rtol


def assert_close(actual: np.ndarray, expected: list[float], rtol: float, steps: list[int]) -> None:
    """Relative agreement; the absolute slack is only the smallest normal number of the dtype."""
    expected_arr = np.asarray(expected, dtype=np.float64)
    err = np.abs(actual - expected_arr)
    # the dtype's smallest normal number: float32's for a float32 tolerance (1e-6 or a geometric one
    # widened from it by contract_rtol), float64's for 1e-12
    tiny = _TINY[1e-12] if rtol < 1e-9 else _TINY[1e-6]
    bad = err > rtol * np.abs(expected_arr) + tiny
    if bad.any():
        k = int(np.argmax(bad))
        raise AssertionError(
            f"{int(bad.sum())} of {len(steps)} steps differ; first at step {steps[k]}: "
            f"got {actual[k]!r}, contract {expected_arr[k]!r}"
        )
