"""Which optimizer steps to checkpoint in a WSD run, derived from its spec."""

from __future__ import annotations

import dataclasses

from wsd_core._clock import require_clock
from wsd_core._spec import WSDSpec
from wsd_core._validation import check_steps


@dataclasses.dataclass(frozen=True)
class SavePlan:
    """The steps worth a checkpoint, each step being the number of updates the saved state applied.

    * ``pre_decay``: each period's first decayed step ``b_i``. The state saved there has seen only
      warmup and stable updates: the point to extend the trunk from or to branch a cooldown off.
    * ``period_ends``: each ``c_i``, the state that has applied its period's whole decay: the
      cooled-down model of that period.
    * every ``interval`` steps, so that a crash loses little work.

    (pytorch_accelerated's ``WSDCheckpointCallback`` saves at the step *after* which decay begins,
    counted from its own off-by-one stepping; here the steps are the contract's, exactly.)

    Examples:
      >>> plan = SavePlan.for_spec(WSDSpec(1000, decay_steps=100, checkpoints=[400, 1000]), interval=250)
      >>> plan.pre_decay, plan.period_ends, plan.kind(300), plan.kind(500), plan.should_save(501)
      ((300, 900), (400, 1000), 'pre-decay', 'interval', False)
    """

    pre_decay: tuple[int, ...]
    period_ends: tuple[int, ...]
    interval: int | None = None

    @classmethod
    def for_spec(cls, spec: WSDSpec, interval: int | None = None) -> SavePlan:
        """The plan of ``spec``, in update counts; for a spec in tokens or samples its clock turns
        each boundary into the first update whose units consumed reach it."""
        if interval is not None:
            interval = check_steps("interval", interval, minimum=1)
        require_clock(spec, where="SavePlan")
        at = spec.step_reaching
        pre_decay = tuple(at(b) for b, d in zip(spec.decay_starts, spec.decay_lengths, strict=True) if d > 0)
        return cls(pre_decay=pre_decay, period_ends=tuple(at(c) for c in spec.period_ends), interval=interval)

    @property
    def kept_steps(self) -> frozenset[int]:
        """The pre-decay and period-end steps: retention policies should never delete these."""
        return frozenset(self.pre_decay) | frozenset(self.period_ends)

    def kind(self, step: int) -> str | None:
        """'pre-decay', 'period-end', 'interval' or None (not a save step)."""
        if step in self.pre_decay:
            return "pre-decay"
        if step in self.period_ends:
            return "period-end"
        if self.interval is not None and step % self.interval == 0:
            return "interval"
        return None

    def should_save(self, step: int) -> bool:
        """Whether the plan saves the state that has applied ``step`` updates."""
        return self.kind(step) is not None
