"""Continuing a trunk and branching cooldowns: the operations ``WSDSpec.extend``, ``continue_from``
and ``branch_cooldown`` (documented there), written as functions of a spec.

Every operation takes the optimizer step of the checkpoint it starts from (the number of updates the
saved state has applied) and returns a validated spec whose ``start_step`` keeps that count running:
the optimizer's count is never reset, so optax's ``count`` and torch's ``last_epoch`` stay truthful.
For a spec in tokens or samples ``at_step`` is an update count too, and the new spec starts at the
units it has consumed, with the same clock.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from wsd_core._phases import Phase
from wsd_core._validation import check_steps


class Branchable(Protocol):
    """What of a spec its branches need (``WSDSpec`` is one)."""

    @property
    def start_step(self) -> int: ...
    @property
    def units(self) -> str: ...
    @property
    def checkpoints(self) -> int | Sequence[int] | None: ...
    @property
    def decay_steps(self) -> int | Sequence[int] | None: ...
    @property
    def period_peaks(self) -> Sequence[float] | None: ...

    @property
    def warmup_steps(self) -> int: ...

    @property
    def stable_power(self) -> float: ...

    @property
    def stable_scale(self) -> int | None: ...
    @property
    def decay_starts(self) -> tuple[int, ...]: ...
    @property
    def period_ends(self) -> tuple[int, ...]: ...
    def units_at(self, step: int | float) -> int | float: ...
    def phase(self, step: int, *, in_units: bool = False) -> Phase: ...
    def to_dict(self) -> dict[str, Any]: ...


S = TypeVar("S", bound=Branchable)
Build = Callable[[Mapping[str, Any]], S]  # a spec from its fields (WSDSpec.from_dict)


def extend(spec: S, total_steps: int, at_step: int, build: Build[S]) -> S:
    total_steps = check_steps("total_steps", total_steps, minimum=1)
    at_step, at_units = _checkpoint_units(spec, at_step, minimum=spec.start_step)
    name, period = _last_applied(spec, at_step)
    if name in ("decay", "done"):
        raise ValueError(
            f"cannot extend the trunk from step {at_step}: its last update was in the {name} phase of "
            f"period {period}, so its model has already started cooling down. Extend from a "
            "pre-decay checkpoint "
            f"instead (steps {spec.decay_starts}), or use continue_from({at_step}, ...) to start a "
            "fresh stable phase from this checkpoint (WSD-S)."
        )
    ends = tuple(e - spec.start_step for e in spec.period_ends)
    new_ends = (*ends[:-1], total_steps)
    checkpoints: Any = None if spec.checkpoints is None else new_ends
    try:
        new = build({**spec.to_dict(), "total_steps": total_steps, "checkpoints": checkpoints})
    except ValueError as e:
        raise ValueError(f"cannot extend to total_steps={total_steps}: {e}") from e
    if new.decay_starts[-1] < at_units:
        raise ValueError(
            f"cannot extend to total_steps={total_steps} from step {at_step}: the last decay would "
            f"start at step {new.decay_starts[-1]}, before the checkpoint"
        )
    return new


def continue_from(spec: S, at_step: int, total_steps: int, changes: dict[str, Any], build: Build[S]) -> S:
    at_step, at_units = _checkpoint_units(spec, at_step, minimum=0)
    for name in ("start_step", "warmup_steps"):
        if name in changes:
            raise TypeError(f"continue_from sets {name} itself; do not pass it")
    fields = spec.to_dict()
    if "decay_steps" in changes or "decay_ratio" in changes:
        fields["decay_steps"] = fields["decay_ratio"] = None
    if isinstance(spec.decay_steps, tuple) and "decay_steps" not in changes:
        # one length per period: the new single period decays like the one at_step falls in
        fields["decay_steps"] = spec.decay_steps[_period_at(spec, at_step)]
    fields.update(total_steps=total_steps, start_step=at_units, warmup_steps=0, checkpoints=None)
    power = spec.stable_power != 0.0 and not {"stable_power", "stable_scale"} & set(changes)
    if power:  # the power curve goes on from where the trunk's had come: its step is the trunk's
        fields["stable_scale"] = at_units - spec.start_step - spec.warmup_steps + _scale(spec)
    fields.update(changes, period_peaks=changes.get("period_peaks"))
    new = build(fields)
    peak = _peak_at(spec, at_step) * (_power_factor(spec, at_units) if power else 1.0)
    if "period_peaks" in changes or peak == 1.0:
        return new
    return build({**new.to_dict(), "period_peaks": [peak] * len(new.period_ends)})


def branch_cooldown(
    spec: S, at_step: int, cooldown_steps: int, shape: str | None, floor: float | None, build: Build[S]
) -> S:
    at_step, at_units = _checkpoint_units(spec, at_step, minimum=spec.start_step)
    cooldown_steps = check_steps("cooldown_steps", cooldown_steps, minimum=1)
    name, period = _last_applied(spec, at_step)
    if name != "stable":
        raise ValueError(
            f"cannot branch a cooldown from step {at_step}: its last update was in the {name} phase of "
            f"period {period}, not at the peak. Branch from a stable step, e.g. a pre-decay "
            f"checkpoint {spec.decay_starts}."
        )
    # the cooldown starts from the stable value at its first update: the peak, or where a power
    # stable phase has come to there
    peak = _peak_at(spec, at_step) * _power_factor(spec, at_units)
    fields = spec.to_dict()
    return build(
        dict(
            total_steps=cooldown_steps,
            decay_steps=cooldown_steps,
            decay_shape=fields["decay_shape"] if shape is None else shape,
            min_ratio=fields["min_ratio"] if floor is None else floor,
            start_step=at_units,
            period_peaks=None if peak == 1.0 else [peak],
            units=fields["units"],
            tokens_per_step=fields["tokens_per_step"],
            rate_batch_exponent=fields.get("rate_batch_exponent", 0.0),
        )
    )


def _last_applied(spec: Branchable, step: int) -> tuple[str, int]:
    """The phase and period of the last update a checkpoint saved at ``step`` has applied.

    A checkpoint at step ``s`` holds the state after updates ``0 .. s-1``: the pre-decay checkpoint
    ``s = b_i`` has applied only stable updates, although update ``b_i`` itself decays.
    """
    after = spec.units_at(step) > spec.start_step
    phase = spec.phase(step - 1 if after and step > 0 else step)
    return phase.name, phase.period


def _checkpoint_units(spec: Branchable, at_step: Any, *, minimum: int) -> tuple[int, int]:
    """``at_step`` (an update count) checked, with the spec's own count there (the units it has
    consumed, for a spec in tokens or samples), which must be at least ``minimum``."""
    at_step = check_steps("at_step", at_step, minimum=0)
    units = int(spec.units_at(at_step))
    if units < minimum:
        shown = f"{units} {spec.units} ({at_step} updates)" if spec.units != "steps" else str(at_step)
        raise ValueError(f"at_step must be >= {minimum} (the spec's start_step), got {shown}")
    return at_step, units


def _peak_at(spec: Branchable, step: int) -> float:
    """The peak of the period whose updates a checkpoint at ``step`` has applied (1.0 without
    ``period_peaks``)."""
    return 1.0 if spec.period_peaks is None else spec.period_peaks[_period_at(spec, step)]


def _period_at(spec: Branchable, step: int) -> int:
    return _last_applied(spec, step)[1]


def _scale(spec: Branchable) -> int:
    """tau of a power stable phase (its default: the warmup length, or 1 without one)."""
    return spec.stable_scale or max(spec.warmup_steps, 1)


def _power_factor(spec: Branchable, at_units: int) -> float:
    """((u - W) / tau + 1) ** b at the spec's own step u of ``at_units`` (1 for a constant stable
    phase), not held at the run's end: a trunk continued past its end goes on along the curve."""
    if spec.stable_power == 0.0:
        return 1.0
    u = max(at_units - spec.start_step, spec.warmup_steps)
    return float(((u - spec.warmup_steps) / _scale(spec) + 1) ** spec.stable_power)
