"""Continuing a trunk and branching cooldowns: operations that turn one spec into the next.

Every operation takes the optimizer step of the checkpoint it starts from (the number of updates the
saved state has applied) and returns a validated spec whose ``start_step`` keeps that count running:
the optimizer's count is never reset, so optax's ``count`` and torch's ``last_epoch`` stay truthful.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, cast

from wsd_core import _validation as v

if TYPE_CHECKING:
    from wsd_core._spec import WSDSpec


def _last_applied(spec: WSDSpec, step: int) -> tuple[str, int]:
    """The phase and period of the last update a checkpoint saved at ``step`` has applied.

    A checkpoint at step ``s`` holds the state after updates ``0 .. s-1``: the pre-decay checkpoint
    ``s = b_i`` has applied only stable updates, although update ``b_i`` itself decays.
    """
    after = spec.units_at(step) > spec.start_step
    phase = spec.phase(step - 1 if after and step > 0 else step)
    return phase.name, phase.period


def _checkpoint_units(spec: WSDSpec, at_step: Any, *, minimum: int) -> tuple[int, int]:
    """``at_step`` (an update count) checked, with the spec's own count there (the units it has
    consumed, for a spec in tokens or samples), which must be at least ``minimum``."""
    at_step = v.check_steps("at_step", at_step, minimum=0)
    units = int(spec.units_at(at_step))
    if units < minimum:
        shown = f"{units} {spec.units} ({at_step} updates)" if spec.units != "steps" else str(at_step)
        raise ValueError(f"at_step must be >= {minimum} (the spec's start_step), got {shown}")
    return at_step, units


def _peak_at(spec: WSDSpec, step: int) -> float:
    """The peak of the period whose updates a checkpoint at ``step`` has applied (1.0 without
    ``period_peaks``)."""
    return 1.0 if spec.period_peaks is None else spec.period_peaks[_period_at(spec, step)]


def _period_at(spec: WSDSpec, step: int) -> int:
    return _last_applied(spec, step)[1]


class SpecBranching:
    """The operations that turn one spec into the next; ``WSDSpec`` inherits them."""

    def extend(self, total_steps: int, *, at_step: int) -> WSDSpec:
        """The same run with its last period ending at ``total_steps`` instead, resumed at ``at_step``.

        The rates of every step up to ``at_step`` are unchanged: earlier periods keep their ends (a
        geometric ``checkpoints=K`` becomes its explicit ends) and only the last period's decay moves.
        The checkpoint's updates must all be warmup or stable ones (``at_step`` at most the pre-decay step
        of its period), and the new last decay must not start before ``at_step``.

        Examples:
          >>> from wsd_core import WSDSpec
          >>> WSDSpec(1000, warmup_steps=50, decay_steps=100).extend(3000, at_step=800).decay_starts
          (2900,)
        """
        spec = cast("WSDSpec", self)  # the class this mixin is part of
        total_steps = v.check_steps("total_steps", total_steps, minimum=1)
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
        ends = spec.resolved().ends
        new_ends = (*ends[:-1], total_steps)
        checkpoints: Any = None if spec.checkpoints is None else new_ends
        try:
            new = dataclasses.replace(spec, total_steps=total_steps, checkpoints=checkpoints)
        except ValueError as e:
            raise ValueError(f"cannot extend to total_steps={total_steps}: {e}") from e
        if new.decay_starts[-1] < at_units:
            raise ValueError(
                f"cannot extend to total_steps={total_steps} from step {at_step}: the last decay would "
                f"start at step {new.decay_starts[-1]}, before the checkpoint"
            )
        return new

    def continue_from(self, at_step: int, *, total_steps: int, **changes: Any) -> WSDSpec:
        """A new run of ``total_steps`` starting at ``at_step`` at the peak, with no warmup (WSD-S).

        Works from any checkpoint, also a cooled-down one: the rate returns to the peak and the new run
        decays as its own fields say. Decay settings are inherited unless given in ``changes`` (any
        ``WSDSpec`` field except ``start_step`` and ``warmup_steps``; ``checkpoints`` defaults to one period).
        With ``period_peaks``, the peak is that of the period ``at_step`` falls in, in every new
        period, unless ``changes`` gives ``period_peaks``.

        Examples:
          >>> from wsd_core import WSDSpec
          >>> WSDSpec(1000, decay_steps=100).continue_from(1000, total_steps=500).multiplier(1000)
          1.0
        """
        spec = cast("WSDSpec", self)  # the class this mixin is part of
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
        fields.update(changes, period_peaks=changes.get("period_peaks"))
        new = type(spec).from_dict(fields)
        peak = _peak_at(spec, at_step)
        if "period_peaks" in changes or peak == 1.0:
            return new
        return dataclasses.replace(new, period_peaks=(peak,) * len(new.period_ends))

    def branch_cooldown(
        self,
        at_step: int,
        cooldown_steps: int,
        *,
        decay_shape: str | None = None,
        min_ratio: float | None = None,
    ) -> WSDSpec:
        """A cooldown of ``cooldown_steps`` branched off the stable checkpoint at ``at_step``.

        The branch decays from the peak at ``at_step`` to ``min_ratio`` at ``at_step + cooldown_steps``
        with the trunk's decay shape and floor unless given. The checkpoint's last update must be a stable
        one (a pre-decay checkpoint qualifies): after a warmup or decay update the rate is not at the peak
        and would jump back up.

        Examples:
          >>> from wsd_core import WSDSpec
          >>> branch = WSDSpec(10_000, decay_shape="linear").branch_cooldown(4000, 1000)
          >>> branch.multiplier(4000), branch.multiplier(4500), branch.multiplier(5000)
          (1.0, 0.5, 0.0)
        """
        spec = cast("WSDSpec", self)  # the class this mixin is part of
        at_step, at_units = _checkpoint_units(spec, at_step, minimum=spec.start_step)
        cooldown_steps = v.check_steps("cooldown_steps", cooldown_steps, minimum=1)
        name, period = _last_applied(spec, at_step)
        if name != "stable":
            raise ValueError(
                f"cannot branch a cooldown from step {at_step}: its last update was in the {name} phase of "
                f"period {period}, not at the peak. Branch from a stable step, e.g. a pre-decay "
                f"checkpoint {spec.decay_starts}."
            )
        peak = _peak_at(spec, at_step)
        return type(spec)(
            total_steps=cooldown_steps,
            decay_steps=cooldown_steps,
            decay_shape=spec.decay_shape if decay_shape is None else decay_shape,
            min_ratio=spec.min_ratio if min_ratio is None else min_ratio,
            start_step=at_units,
            period_peaks=None if peak == 1.0 else (peak,),
            units=spec.units,
            tokens_per_step=spec.tokens_per_step,
        )
