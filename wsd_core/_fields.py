"""The fields of ``WSDSpec`` whose values have several forms (checkpoints, per-period decays and
peaks), each put in its one stored form, and the period ends they resolve to."""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

from wsd_core import _validation as v


def normalise_checkpoints(value: Any, total: int) -> int | tuple[int, ...] | None:
    """None, a geometric count K (kept as the int the user gave) or a tuple of period ends."""
    if value is None:
        return None
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        count = v.check_int("checkpoints", value, minimum=1)
        if count > total.bit_length():  # checked before any end is computed: K may be huge
            raise ValueError(
                f"checkpoints={count} with total_steps={total}: geometric ends T >> (K - i) need "
                f"total_steps >= 2**(K-1), so K <= {total.bit_length()} for this total_steps"
            )
        return count
    if not v.is_sequence(value):
        raise TypeError(
            "checkpoints must be None, an int K (geometric ends) or a sequence of ints, got "
            f"{value!r} (type {type(value).__name__})"
        )
    ends = tuple(v.check_int(f"checkpoints[{i}]", c, maximum=v.MAX_STEP) for i, c in enumerate(value))
    if not ends:
        raise ValueError("checkpoints must not be empty; use None for a single period")
    if ends[0] < 1:
        raise ValueError(f"checkpoints must start at >= 1, got {list(ends)}")
    v.check_strictly_increasing("checkpoints", ends, lambda i: f"checkpoints[{i}]")
    if ends[-1] != total:
        raise ValueError(f"the last of checkpoints must equal total_steps={total}, got {list(ends)}")
    return ends


def normalise_decay_steps(value: Any) -> int | tuple[int, ...]:
    """An int D for every period, or a tuple of one length per period (checked against the periods
    when they are resolved)."""
    if not v.is_sequence(value):
        return v.check_steps("decay_steps", value, minimum=0)
    lengths = tuple(v.check_steps(f"decay_steps[{i}]", d, minimum=0) for i, d in enumerate(value))
    if not lengths:
        raise ValueError("decay_steps must not be empty; give an int for the same length in every period")
    return lengths


def normalise_peaks(value: Any, min_ratio: float) -> tuple[float, ...] | None:
    """None, or a tuple of finite period peaks, each > 0 and >= min_ratio (its count is checked
    against the periods when they are resolved)."""
    if value is None:
        return None
    if not v.is_sequence(value):
        raise TypeError(
            f"period_peaks must be None or a sequence of ratios, one per period, got {value!r} "
            f"(type {type(value).__name__})"
        )
    peaks = tuple(v.check_real(f"period_peaks[{i}]", x, positive=True) for i, x in enumerate(value))
    if not peaks:
        raise ValueError("period_peaks must not be empty; use None for a peak of 1 in every period")
    for i, peak in enumerate(peaks):
        if peak < min_ratio:
            raise ValueError(
                f"period_peaks[{i}] must be >= min_ratio={min_ratio} (a period decays from its peak "
                f"to the floor), got {peak}"
            )
    return peaks


def _geometric_ends(count: int, total: int) -> tuple[int, ...]:
    return tuple(total >> (count - i) for i in range(1, count + 1))


def period_ends(checkpoints: int | Sequence[int] | None, total: int) -> tuple[int, ...]:
    if checkpoints is None:
        return (total,)
    if isinstance(checkpoints, int):
        return _geometric_ends(checkpoints, total)
    return tuple(checkpoints)  # already a validated tuple; tuple() keeps the type checker honest
