"""The contract's formula on torch tensors (any device), with no host synchronisation."""

from __future__ import annotations

from typing import Any

import torch

from wsd_core import WSDSpec
from wsd_core.backend import ArrayBackend, Resolved, array_clock, evaluate, resolve, units_at


class TorchBackend(ArrayBackend):
    """``wsd_core.Backend`` on torch tensors (period lookup, branch selection and sqrt from
    ``ArrayBackend``).

    Every operation stays on the step's device and reads no value back to the host (no ``.item()``,
    no Python branch on a tensor), so the evaluation can run inside ``torch.compile`` without guards
    on the step and inside a captured CUDA graph.
    """

    def __init__(self, plan: Resolved, device: torch.device | str, float_dtype: torch.dtype) -> None:
        int_table = lambda xs: torch.tensor(xs, dtype=torch.int64, device=device)
        # float64 values rounded once to the compute type (peaks are ratios, not counts)
        float_table = lambda xs: torch.tensor(xs, dtype=torch.float64).to(device=device, dtype=float_dtype)
        super().__init__(torch, plan, int_table, float_table)
        self._float = float_dtype

    def to_float(self, x: Any) -> torch.Tensor:
        return x.to(self._float)

    def maximum(self, x: Any, y: Any) -> Any:
        return torch.maximum(x, y) if isinstance(y, torch.Tensor) else torch.clamp_min(x, y)


def check_float_dtype(dtype: Any) -> torch.dtype:
    """A torch floating dtype (``torch.float32``, ...); strings and numpy dtypes are refused."""
    if not isinstance(dtype, torch.dtype):
        raise TypeError(
            f"dtype must be a torch floating dtype such as torch.float32, got {dtype!r} "
            f"(type {type(dtype).__name__})"
        )
    if not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating dtype, got {dtype}")
    return dtype


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype m is computed in: at least float32 (float16 overflows past step differences of
    65504 and bfloat16 counts only 256 steps exactly); the result is cast to ``dtype`` afterwards."""
    return torch.promote_types(dtype, torch.float32)


def multiplier_tensor(spec: WSDSpec, steps: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """m(steps) element-wise as a ``dtype`` tensor on ``steps``' device: ``spec.multiplier`` of each
    update count, through the spec's clock for a spec in tokens or samples.

    Integer steps use exact integer phase boundaries (any integer dtype but uint64, which torch cannot
    compare); float steps evaluate the real-valued extension, and a NaN step gives NaN. The values are
    computed in at least float32 whatever ``dtype``.

    Examples:
      >>> from wsd_core import WSDSpec
      >>> multiplier_tensor(WSDSpec(100, decay_steps=10, decay_shape="linear"), torch.arange(88, 101, 4))
      tensor([1.0000, 0.8000, 0.4000, 0.0000])
      >>> tokens = WSDSpec(1000, decay_steps=100, decay_shape="linear", units="tokens", tokens_per_step=10)
      >>> multiplier_tensor(tokens, torch.tensor([90, 95, 100]))
      tensor([1.0000, 0.5000, 0.0000])
    """
    if not isinstance(steps, torch.Tensor):
        raise TypeError(f"steps must be a torch.Tensor, got {type(steps).__name__}")
    dtype = check_float_dtype(dtype)
    if steps.dtype.is_complex or steps.dtype == torch.bool:
        raise TypeError(f"steps must be an integer or real tensor, got dtype {steps.dtype}")
    if steps.dtype == torch.uint64:
        raise TypeError(
            "steps of dtype torch.uint64 are not supported (torch cannot compare them); use int64"
        )
    clock = array_clock(spec, where="multiplier_tensor")  # a spec in tokens: through its clock
    compute = compute_dtype(dtype)
    backend = TorchBackend(resolve(spec), steps.device, compute)
    if steps.dtype.is_floating_point:
        steps = steps.to(torch.promote_types(steps.dtype, compute))
        counts = steps if clock.ramp is None else steps.clamp(clock.lo, clock.hi)
        m = evaluate(units_at(counts, clock.ramp, backend), resolve(spec), backend)
        m = torch.where(torch.isnan(steps), torch.nan, m)  # a NaN step is no step: NaN, not a rate
    else:
        steps = steps.to(torch.int64)  # exact for every integer dtype torch can compare
        counts = steps if clock.ramp is None else steps.clamp(clock.lo, clock.hi)
        m = evaluate(units_at(counts, clock.ramp, backend), resolve(spec), backend)
    return m.to(dtype)
