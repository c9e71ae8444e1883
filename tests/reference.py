"""An independent evaluation of docs/contract.md (the contract), for tests only.

Written from the contract's text, sharing no code with wsd_core: the period ends and decay lengths are
recomputed here, and each shape is the contract's literal formula evaluated in mpmath with 340
significant digits (enough to resolve any float64 ratio inside the literal formulas, e.g. 1 - (1 - r)
for r near 1e-300) before rounding to float64. It is slow and simple on purpose.
"""

from __future__ import annotations

import math
from typing import Any

import mpmath as mp


def period_ends(total_steps: int, checkpoints: Any) -> list[int]:
    if checkpoints is None:
        return [total_steps]
    if isinstance(checkpoints, int):
        return [total_steps >> (checkpoints - i) for i in range(1, checkpoints + 1)]
    return list(checkpoints)


def decay_lengths(ends: list[int], decay_steps: int | None, decay_ratio: float | None) -> list[int]:
    out, previous = [], 0
    for end in ends:
        length = end - previous
        if decay_steps is not None:
            out.append(decay_steps)
        else:
            rho = 0.1 if decay_ratio is None else decay_ratio
            out.append(math.floor(rho * length))
        previous = end
    return out


def _warmup(shape: str, p: mp.mpf) -> mp.mpf:
    if shape == "linear":
        return p
    if shape == "cosine":
        return (1 - mp.cos(mp.pi * p)) / 2
    raise AssertionError(shape)


def _decay(shape: str, p: mp.mpf, r: mp.mpf) -> mp.mpf:
    if shape == "linear":
        return 1 - (1 - r) * p
    if shape == "cosine":
        return r + (1 - r) * (1 + mp.cos(mp.pi * p)) / 2
    if shape == "1-sqrt":
        return r + (1 - r) * (1 - mp.sqrt(p))
    if shape == "inverse":
        return 1 / (p / r + 1 - p)
    if shape == "exponential":
        return r + (1 - r) * (2 * mp.mpf("0.5") ** p - 1)
    if shape == "geometric":
        return r**p
    raise AssertionError(shape)


def reference_multiplier(
    step: int,
    *,
    total_steps: int,
    warmup_steps: int = 0,
    decay_steps: int | None = None,
    decay_ratio: float | None = None,
    decay_shape: str = "1-sqrt",
    warmup_shape: str = "linear",
    init_ratio: float = 0.0,
    min_ratio: float = 0.0,
    checkpoints: Any = None,
    start_step: int = 0,
) -> float:
    """m(step) per the contract, rounded to float64 from 340-digit arithmetic."""
    with mp.workdps(340):
        ends = period_ends(total_steps, checkpoints)
        lengths = decay_lengths(ends, decay_steps, decay_ratio)
        u = max(step - start_step, 0)
        if u < warmup_steps:
            a = mp.mpf(init_ratio)
            return float(a + (1 - a) * _warmup(warmup_shape, mp.mpf(u) / warmup_steps))
        i = next((k for k, c in enumerate(ends) if u < c), len(ends) - 1)
        d = lengths[i]
        b = ends[i] - d
        if d == 0 or u < b:
            return 1.0
        p = min(mp.mpf(u - b) / d, mp.mpf(1))
        return float(_decay(decay_shape, p, mp.mpf(min_ratio)))


def reference_curve(fields: dict[str, Any], steps: Any) -> list[float]:
    return [reference_multiplier(int(s), **fields) for s in steps]


def reference_stable_fraction(step: int, **fields: Any) -> float:
    """A companion hyperparameter's h(step) per the contract, from 340-digit arithmetic: 1 in the
    warmup and at the peak, (g(p) - r) / (1 - r) in a decay (1 when r = 1)."""
    f = {"warmup_steps": 0, "decay_shape": "1-sqrt", "min_ratio": 0.0, "start_step": 0, **fields}
    with mp.workdps(340):
        ends = period_ends(f["total_steps"], f.get("checkpoints"))
        lengths = decay_lengths(ends, f.get("decay_steps"), f.get("decay_ratio"))
        u = max(step - f["start_step"], 0)
        i = next((k for k, c in enumerate(ends) if u < c), len(ends) - 1)
        d = lengths[i]
        b = ends[i] - d
        r = mp.mpf(f["min_ratio"])
        if u < f["warmup_steps"] or d == 0 or u < b or r == 1:
            return 1.0
        p = min(mp.mpf(u - b) / d, mp.mpf(1))
        return float((_decay(f["decay_shape"], p, r) - r) / (1 - r))
