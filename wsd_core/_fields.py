"""The fields of ``WSDSpec``: their names and types as keyword arguments (``WSDFields``), the check of
a name (with the peers' names for each), and the fields whose values have several forms
(checkpoints, per-period decays and peaks), each put in its one stored form."""

from __future__ import annotations

import difflib
import numbers
from collections.abc import Iterable, Sequence
from typing import Any, TypedDict

from wsd_core._formula import DECAY_SHAPES, WARMUP_SHAPES
from wsd_core._validation import (
    MAX_STEP,
    check_choice,
    check_int,
    check_ratio,
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
    stable_power: float
    stable_scale: int | None
    decay_power: float
    rate_batch_exponent: float


class WSDFields(SpecChanges, total=False):
    """The fields of ``WSDSpec`` as keyword arguments, each with its type (PEP 692): what every entry
    point that builds a spec from its fields (``wsd_schedule(3e-4, total_steps=...)``, ``WSDLR``,
    ...) takes, so that type checkers and IDEs see them. ``WSDSpec`` documents each."""

    total_steps: int


FIELD_NAMES = ("total_steps", *SpecChanges.__annotations__)  # in the order of WSDSpec's fields

# The fields added in 0.2 (the power stable phase, the polynomial decay, the batch rate rule), at
# their defaults: a spec's to_dict leaves them out there, so a spec 0.1 could write reads the same in 0.1.
NEW_DEFAULTS: dict[str, Any] = {
    "stable_power": 0.0,
    "stable_scale": None,
    "decay_power": 1.0,
    "rate_batch_exponent": 0.0,
}

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


def check_shape_fields(fields: WSDFields) -> dict[str, Any]:
    """The fields of the shapes checked, in their stored forms: the warmup's and the decay's shapes,
    ratios and lengths, and the stable phase's power; each against the fields it applies with (a value
    that would change nothing is refused, not ignored)."""
    out: dict[str, Any] = {
        "decay_shape": check_choice("decay_shape", fields["decay_shape"], DECAY_SHAPES),
        "warmup_shape": check_choice("warmup_shape", fields["warmup_shape"], WARMUP_SHAPES),
        "init_ratio": check_ratio("init_ratio", fields["init_ratio"]),
        "min_ratio": check_ratio("min_ratio", fields["min_ratio"]),
    }
    # inverse and geometric divide by, or take the logarithm of, the floor: it must be > 0.
    if out["decay_shape"] in ("inverse", "geometric") and out["min_ratio"] == 0.0:
        raise ValueError(
            f"min_ratio must be > 0 for decay_shape={out['decay_shape']!r} (it never reaches 0), got 0.0; "
            "give a floor such as min_ratio=0.01, or use a shape that decays to 0 such as 'linear'"
        )
    steps, ratio = fields["decay_steps"], fields["decay_ratio"]
    if steps is not None and ratio is not None:
        raise ValueError(
            "give at most one of decay_steps and decay_ratio, got "
            f"decay_steps={steps!r} and decay_ratio={ratio!r}"
        )
    out["decay_steps"] = None if steps is None else normalise_decay_steps(steps)
    out["decay_ratio"] = None if ratio is None else check_ratio("decay_ratio", ratio)
    return out | _power_fields(fields)


def _power_fields(fields: WSDFields) -> dict[str, Any]:
    power = check_real("stable_power", fields["stable_power"])
    if power > 0:
        raise ValueError(
            f"stable_power must be <= 0 (a stable phase that holds, 0, or falls as a power of the step, "
            f"e.g. -0.5 for an inverse square root), got {power}"
        )
    scale = fields["stable_scale"]
    if scale is not None:
        scale = check_steps("stable_scale", scale, minimum=1)
        if power == 0.0:
            raise ValueError(
                f"stable_scale={scale} applies to a power stable phase only: give stable_power < 0 too, "
                "or leave stable_scale out"
            )
    k = check_real("decay_power", fields["decay_power"], positive=True)
    if k != 1.0 and fields["decay_shape"] != "polynomial":
        raise ValueError(
            f"decay_power={k} applies to decay_shape='polynomial' only, got decay_shape="
            f"{fields['decay_shape']!r}"
        )
    return {"stable_power": power, "stable_scale": scale, "decay_power": k}
