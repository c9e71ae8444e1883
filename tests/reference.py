"""An independent evaluation of docs/contract.md (the contract), for tests only.

Written from the contract's text, sharing no code with wsd_core: the period ends and decay lengths are
recomputed here, and each shape is the contract's literal formula evaluated in mpmath with 340
significant digits (enough to resolve any float64 ratio inside the literal formulas, e.g. 1 - (1 - r)
for r near 1e-300) before rounding to float64. It is slow and simple on purpose.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import mpmath as mp


def period_ends(total_steps: int, checkpoints: Any) -> list[int]:
    if checkpoints is None:
        return [total_steps]
    if isinstance(checkpoints, int):
        return [total_steps >> (checkpoints - i) for i in range(1, checkpoints + 1)]
    return list(checkpoints)


def decay_lengths(ends: list[int], decay_steps: Any, decay_ratio: float | None) -> list[int]:
    out, previous = [], 0
    for i, end in enumerate(ends):
        length = end - previous
        if decay_steps is not None:
            out.append(decay_steps if isinstance(decay_steps, int) else decay_steps[i])
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
    if shape == "1-sqrt":
        return 1 - mp.sqrt(1 - p)
    raise AssertionError(shape)


def _decay(shape: str, p: mp.mpf, r: mp.mpf, peak: Any = 1, power: float = 1.0) -> mp.mpf:
    """The contract's g from ``peak`` P (the stable value where the decay starts) to r."""
    P = mp.mpf(peak)
    if shape == "linear":
        return P - (P - r) * p
    if shape == "cosine":
        return r + (P - r) * (1 + mp.cos(mp.pi * p)) / 2
    if shape == "1-sqrt":
        return r + (P - r) * (1 - mp.sqrt(p))
    if shape == "inverse":
        return 1 / (p / r + (1 - p) / P)
    if shape == "exponential":
        return r + (P - r) * (2 * mp.mpf("0.5") ** p - 1)
    if shape == "geometric":
        return P * (r / P) ** p
    if shape == "polynomial":
        return r + (P - r) * (1 - p) ** mp.mpf(power)
    raise AssertionError(shape)


def _stable(u: int, peak: mp.mpf, f: dict[str, Any]) -> mp.mpf:
    """The contract's stable value at local step u: P, or P ((u - W) / tau + 1) ** b with u held
    in [W, T] (tau defaults to W, or 1 without a warmup)."""
    b = f.get("stable_power", 0.0)
    if b == 0.0:
        return peak
    W, T = f.get("warmup_steps", 0), f["total_steps"]
    tau = f.get("stable_scale") or max(W, 1)
    held = min(max(u, W), T)
    return peak * (mp.mpf(held - W) / tau + 1) ** mp.mpf(b)


def _position(u: int, f: dict[str, Any]) -> tuple[str, Any]:
    """(phase, value) at local step u per the contract, in 340-digit arithmetic: the phase is
    "warmup", "rewarmup", "decay" or "stable", the value m."""
    ends = period_ends(f["total_steps"], f.get("checkpoints"))
    lengths = decay_lengths(ends, f.get("decay_steps"), f.get("decay_ratio"))
    peaks = [mp.mpf(x) for x in (f.get("period_peaks") or [1.0] * len(ends))]
    r = mp.mpf(f.get("min_ratio", 0.0))
    W, N = f.get("warmup_steps", 0), f.get("rewarmup_steps", 0)
    if u < W:
        a = mp.mpf(f.get("init_ratio", 0.0))
        return "warmup", a + (peaks[0] - a) * _warmup(f.get("warmup_shape", "linear"), mp.mpf(u) / W)
    i = next((k for k, c in enumerate(ends) if u < c), len(ends) - 1)
    start = 0 if i == 0 else ends[i - 1]
    if i > 0 and u - start < N:
        # from where the previous period ended, to the stable value where the rewarmup ends
        e = r if lengths[i - 1] > 0 else _stable(start, peaks[i - 1], f)
        w = _warmup(f.get("rewarmup_shape", "linear"), mp.mpf(u - start) / N)
        return "rewarmup", e + (_stable(start + N, peaks[i], f) - e) * w
    d = lengths[i]
    b = ends[i] - d
    if d == 0 or u < b:
        return "stable", _stable(u, peaks[i], f)
    p = min(mp.mpf(u - b) / d, mp.mpf(1))
    top = _stable(b, peaks[i], f)
    return "decay", _decay(f.get("decay_shape", "1-sqrt"), p, r, top, f.get("decay_power", 1.0))


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
    period_peaks: Any = None,
    rewarmup_steps: int = 0,
    rewarmup_shape: str = "linear",
    units: str = "steps",  # m is the same function of u whatever u counts
    tokens_per_step: Any = None,  # the clock: a caller evaluating update s passes step = C(s)
    stable_power: float = 0.0,
    stable_scale: int | None = None,
    decay_power: float = 1.0,
    rate_batch_exponent: float = 0.0,
) -> float:
    """m(step) per the contract, rounded to float64 from 340-digit arithmetic."""
    fields = dict(locals())
    with mp.workdps(340):
        _, m = _position(max(step - start_step, 0), fields)
        held = min(max(step, start_step), start_step + total_steps)  # the rate is constant past the end
        return float(m * _batch_factor(held, tokens_per_step, rate_batch_exponent))


def _batch_factor(units: int, ramp: Any, e: float) -> mp.mpf:
    """(batch / first batch) ** e of the ramp pair whose updates the units count ``units`` reaches:
    the pair k whose first update has consumed sum_{j<k} (from_{j+1} - from_j) n_j units."""
    if not e or not isinstance(ramp, (list, tuple)):
        return mp.mpf(1)
    pairs = [tuple(p) for p in ramp]
    factor, consumed = mp.mpf(1), 0
    for (start, n), (next_start, next_n) in itertools.pairwise(pairs):
        consumed += (next_start - start) * n  # the units consumed before update next_start
        if units >= consumed:
            factor = (mp.mpf(next_n) / pairs[0][1]) ** mp.mpf(e)
    return factor


def reference_curve(fields: dict[str, Any], steps: Any) -> list[float]:
    return [reference_multiplier(int(s), **fields) for s in steps]


def _tops(i: int, fields: dict[str, Any]) -> dict[str, Any]:
    """Period i's values a companion's h is measured against, by phase: the value its decay starts
    from, and the one its rewarmup rises to (below the peak under a power stable phase)."""
    ends = period_ends(fields["total_steps"], fields.get("checkpoints"))
    lengths = decay_lengths(ends, fields.get("decay_steps"), fields.get("decay_ratio"))
    peak = mp.mpf((fields.get("period_peaks") or [1.0] * len(ends))[i])
    start = 0 if i == 0 else ends[i - 1]
    return {
        "decay": _stable(ends[i] - lengths[i], peak, fields),
        "rewarmup": _stable(start + fields.get("rewarmup_steps", 0), peak, fields),
    }


def reference_tops(**fields: Any) -> list[float]:
    """Every value a companion's h is measured against (``reference_stable_fraction``'s ``top``)."""
    periods = len(period_ends(fields["total_steps"], fields.get("checkpoints")))
    with mp.workdps(50):
        return [float(top) for i in range(periods) for top in _tops(i, fields).values()]


def reference_stable_fraction(step: int, **fields: Any) -> float:
    """A companion hyperparameter's h(step) per the contract, from 340-digit arithmetic: 1 in the
    warmup and the stable phase, (m - r) / (top - r) in a decay or rewarmup, top the value the decay
    starts from or the rewarmup rises to (1 when top <= r)."""
    with mp.workdps(340):
        u = max(step - fields.get("start_step", 0), 0)
        phase, m = _position(u, fields)
        ends = period_ends(fields["total_steps"], fields.get("checkpoints"))
        i = next((k for k, c in enumerate(ends) if u < c), len(ends) - 1)
        top = _tops(i, fields)["decay" if phase == "decay" else "rewarmup"]
        r = mp.mpf(fields.get("min_ratio", 0.0))
        if phase in ("warmup", "stable") or top <= r:
            return 1.0
        return float(min(max((m - r) / (top - r), 0), 1))
