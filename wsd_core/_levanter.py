"""levanter's learning-rate schedule as spec fields (``levanter.optim.config.OptimizerConfig
.lr_scheduler``, marin-levanter 0.2): its cycles, warmup, rewarmup, decay and ``lr_schedule``
(``wsd_core.presets.from_levanter`` documents the mapping). Each field is returned as ``(value,
where it comes from in levanter's terms)``."""

from __future__ import annotations

import itertools
import math
from typing import Any

from wsd_core._validation import check_choice, check_int, check_ratio, check_real, check_steps, is_sequence

Fields = dict[str, tuple[Any, str]]

# levanter's lr_schedule names whose decay reaches min_lr at the decay's last step, as a contract shape
SHAPES = {"linear": "linear", "cosine": "cosine", "polynomial": "polynomial", "constant": "linear"}
# and those that cannot be expressed, with why
REFUSED = {
    "inv": "its decay takes max(count, 1): the first decayed step repeats the second's rate, which no "
    "decay of the contract does",
    "inv_sqrt": "its decay depends on the warmup and a timescale and is clipped at min_lr, not a decay "
    "from the peak to the floor over the decay steps",
    "inv_sqrt_decay": "it falls as 1 / sqrt(1 + c t) clipped at min_lr, not to the floor at the decay's end",
    "power": "it is a function of the tokens trained (batch size and sequence length), not of the decay",
}


def steps_of(name: str, value: Any, of: int) -> int:
    """levanter's ``_convert_frac_or_steps``: a fraction (<= 1) of ``of`` truncated, or whole steps."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a fraction (<= 1) or a whole number of steps, got {value!r}")
    if value < 0 or (value > 1 and value % 1 != 0) or not math.isfinite(value):
        raise ValueError(f"{name} must be a fraction in [0, 1] or a whole number of steps, got {value!r}")
    return int(value * of) if value <= 1.0 else int(value)


def cycle_ends(total: int, cycle_length: Any, cycles: Any) -> list[int]:
    """Where levanter's cycles end (its ``_get_cycle_minima`` less the leading 0)."""
    if cycle_length is not None and cycles is not None:
        raise ValueError("give at most one of cycle_length and cycles (levanter refuses both)")
    points: list[int]
    if cycle_length is not None and is_sequence(cycle_length):
        lengths = [check_steps(f"cycle_length[{i}]", n, minimum=1) for i, n in enumerate(cycle_length)]
        points = list(itertools.accumulate(lengths))
        if points and points[-1] > total:
            raise ValueError(f"the cycle lengths exceed the run: {points[-1]} > {total}")
    elif cycle_length is not None:
        length = steps_of("cycle_length", cycle_length, total)
        if length < 1:
            raise ValueError(f"cycle_length must give at least one step per cycle, got {cycle_length!r}")
        points = [i * length for i in range(1, total // length)]
    elif cycles is not None and is_sequence(cycles):
        points = [check_int(f"cycles[{i}]", c) for i, c in enumerate(cycles)]
    elif cycles is not None:
        count = check_steps("cycles", cycles, minimum=1)
        points = [int(total / count * (i + 1)) for i in range(count - 1)]
    else:
        points = []
    if not points or points[-1] != total:
        points.append(total)
    starts = [0, *points[:-1]]
    if any(e <= s for s, e in zip(starts, points, strict=True)):
        raise ValueError(f"levanter's cycles must each be at least one step long, got cycle ends {points}")
    return points


def spec_fields(
    total: int,
    lr_schedule: str,
    warmup: Any,
    decay: Any,
    min_lr_ratio: float,
    rewarmup: Any,
    ends: list[int],
    power: float | None,
) -> Fields:
    """The spec of levanter's schedule over cycles ending at ``ends``."""
    if lr_schedule in REFUSED:
        raise ValueError(f"levanter's lr_schedule={lr_schedule!r} has no WSD spec: {REFUSED[lr_schedule]}")
    check_choice("lr_schedule", lr_schedule, [*SHAPES, *REFUSED])
    if (power is not None) != (lr_schedule == "polynomial"):
        raise ValueError(
            "power goes with lr_schedule='polynomial' (levanter's PolynomialLrSchedule(power=...), default "
            f"2.0) and nothing else, got power={power!r} with lr_schedule={lr_schedule!r}"
        )
    floor = check_ratio("min_lr_ratio", min_lr_ratio)
    starts = [0, *ends[:-1]]
    warmups, decays = [], []
    for i, (start, end) in enumerate(zip(starts, ends, strict=True)):
        n = end - start
        rise = min(steps_of("warmup" if i == 0 else "rewarmup", warmup if i == 0 else rewarmup, n), n)
        wanted = n - rise if decay is None else steps_of("decay", decay, n)
        decays.append(0 if lr_schedule == "constant" else min(max(wanted, 0), n - rise))
        warmups.append(rise)
    later = set(warmups[1:])
    if len(later) > 1:
        raise ValueError(
            f"rewarmup={rewarmup!r} gives cycles of different lengths different rewarmups {warmups[1:]}; "
            "the contract has one rewarmup length: give it in steps"
        )
    fields: Fields = {
        "total_steps": (total, "num_train_steps"),
        "checkpoints": (ends if len(ends) > 1 else None, "cycles (or cycle_length)"),
        "warmup_steps": (warmups[0], "warmup (of the first cycle)"),
        "decay_steps": (decays[0] if len(set(decays)) == 1 else decays, "decay (of each cycle)"),
        "decay_shape": (SHAPES[lr_schedule], "lr_schedule"),
        "min_ratio": (floor, "min_lr_ratio"),
        "rewarmup_steps": (later.pop() if later else 0, "rewarmup (of each later cycle)"),
    }
    if power is not None:
        fields["decay_power"] = (check_real("power", power, positive=True), "power")
    return fields
