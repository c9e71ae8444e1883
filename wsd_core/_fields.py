"""The fields of ``WSDSpec``: their names and types as keyword arguments (``WSDFields``), the check of
a name (with the peers' names for each), and the fields whose values have several forms
(checkpoints, per-period decays and peaks), each put in its one stored form."""

from __future__ import annotations

import difflib
import numbers
from collections.abc import Iterable, Sequence
from typing import Any, TypedDict

from wsd_core._validation import (
    MAX_STEP,
    check_int,
    check_real,
    check_steps,
    check_strictly_increasing,
    is_sequence,
)


class SpecChanges(TypedDict, total=False):
    """The fields of ``WSDSpec`` but ``total_steps``: what ``continue_from`` may change."""

    warmup_steps: int
    decay_steps: int | Sequence[int] | None
    decay_ratio: float | None
    decay_shape: str
    warmup_shape: str
    init_ratio: float
    min_ratio: float
    checkpoints: int | Sequence[int] | None
    start_step: int
    period_peaks: Sequence[float] | None
    rewarmup_steps: int
    rewarmup_shape: str
    units: str
    tokens_per_step: int | Sequence[Sequence[int]] | None


class WSDFields(SpecChanges, total=False):
    """The fields of ``WSDSpec`` as keyword arguments, each with its type (PEP 692): what every entry
    point that builds a spec from its fields (``wsd_schedule(3e-4, total_steps=...)``, ``WSDLR``,
    ...) takes, so that type checkers and IDEs see them. ``WSDSpec`` documents each."""

    total_steps: int


FIELD_NAMES = ("total_steps", *SpecChanges.__annotations__)  # in the order of WSDSpec's fields

# Names the peers use for our fields, and what to write instead.
_ALIASES = {
    "min_lr": "min_ratio (a fraction of the peak: min_lr / peak)",
    "min_lr_ratio": "min_ratio",
    "min_lr_factor": "min_ratio",
    "lr_min": "min_ratio (a fraction of the peak)",
    "warmup_ratio": "warmup_steps (a number of updates: 0.1 of 10000 steps is warmup_steps=1000)",
    "num_warmup_steps": "warmup_steps",
    "num_training_steps": "total_steps",
    "training_steps": "total_steps",
    "max_steps": "total_steps",
    "num_decay_steps": "decay_steps",
    "cooldown_steps": "decay_steps",
    "decay_type": "decay_shape",
    "warmup_type": "warmup_shape",
    "num_checkpoints": "checkpoints",
    "init_lr_ratio": "init_ratio",
}


def check_field_names(fields: Iterable[Any], *, where: str) -> None:
    """Refuses names that are not ``WSDSpec`` fields, suggesting the closest valid one for each."""
    valid = list(FIELD_NAMES)
    unknown = [name for name in fields if name not in valid]
    if not unknown:
        return
    hints = []
    for name in unknown:
        suggestion = _ALIASES.get(name) if isinstance(name, str) else None
        if suggestion is None and isinstance(name, str):
            close = difflib.get_close_matches(name, valid, n=1, cutoff=0.6)
            suggestion = close[0] if close else None
        if suggestion:
            hints.append(f"for {name!r} did you mean {suggestion}?")
    hint = f" ({'; '.join(hints)})" if hints else ""
    raise TypeError(f"{where}: unknown WSDSpec fields {unknown}{hint}. Valid fields: {', '.join(valid)}")


def normalise_checkpoints(value: Any, total: int) -> int | tuple[int, ...] | None:
    """None, a geometric count K (kept as the int the user gave) or a tuple of period ends."""
    if value is None:
        return None
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        count = check_int("checkpoints", value, minimum=1)
        if count > total.bit_length():  # checked before any end is computed: K may be huge
            raise ValueError(
                f"checkpoints={count} with total_steps={total}: geometric ends T >> (K - i) need "
                f"total_steps >= 2**(K-1), so K <= {total.bit_length()} for this total_steps"
            )
        return count
    if not is_sequence(value):
        raise TypeError(
            "checkpoints must be None, an int K (geometric ends) or a sequence of ints, got "
            f"{value!r} (type {type(value).__name__})"
        )
    ends = tuple(check_int(f"checkpoints[{i}]", c, maximum=MAX_STEP) for i, c in enumerate(value))
    if not ends:
        raise ValueError("checkpoints must not be empty; use None for a single period")
    if ends[0] < 1:
        raise ValueError(f"checkpoints must start at >= 1, got {list(ends)}")
    check_strictly_increasing("checkpoints", ends, lambda i: f"checkpoints[{i}]")
    if ends[-1] != total:
        raise ValueError(f"the last of checkpoints must equal total_steps={total}, got {list(ends)}")
    return ends


def normalise_decay_steps(value: Any) -> int | tuple[int, ...]:
    """An int D for every period, or a tuple of one length per period (checked against the periods
    when they are resolved)."""
    if not is_sequence(value):
        return check_steps("decay_steps", value, minimum=0)
    lengths = tuple(check_steps(f"decay_steps[{i}]", d, minimum=0) for i, d in enumerate(value))
    if not lengths:
        raise ValueError("decay_steps must not be empty; give an int for the same length in every period")
    return lengths


def normalise_peaks(value: Any, min_ratio: float) -> tuple[float, ...] | None:
    """None, or a tuple of finite period peaks, each > 0 and >= min_ratio (its count is checked
    against the periods when they are resolved)."""
    if value is None:
        return None
    if not is_sequence(value):
        raise TypeError(
            f"period_peaks must be None or a sequence of ratios, one per period, got {value!r} "
            f"(type {type(value).__name__})"
        )
    peaks = tuple(check_real(f"period_peaks[{i}]", x, positive=True) for i, x in enumerate(value))
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
