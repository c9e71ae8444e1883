"""What ``WSDLR`` and ``WSDDeviceLR`` share: the load policies, state loading, and introspection."""

from __future__ import annotations

from typing import Any

import torch
from torch.optim import Optimizer

from wsd_core import Phase, WSDSpec
from wsd_torch._state import SchedulerState, check_policy, parse_state


class WSDSchedulerBase:
    """Mixed into both schedulers (before their torch base class).

    Load policies, set at construction because frameworks (HF Trainer, Lightning, DCP) call
    ``load_state_dict(state)`` with no other argument:

    * ``on_spec_change="refuse"`` (default) refuses a state saved under another spec;
      ``"continue"`` keeps this scheduler's spec and the saved step count: extending a trunk,
      branching a cooldown.
    * ``adopt_foreign_state=True`` accepts a state without a spec (a plain ``LambdaLR``,
      transformers' ``get_wsd_schedule``, torchtitan's container) and takes over its step count:
      switching a running job to this library.
    """

    spec: WSDSpec
    optimizer: Optimizer
    last_epoch: int
    on_spec_change: str
    adopt_foreign_state: bool

    def _set_policy(self, on_spec_change: str, adopt_foreign_state: bool) -> None:
        self.on_spec_change, self.adopt_foreign_state = check_policy(on_spec_change, adopt_foreign_state)

    # --- state ----------------------------------------------------------------------------------

    def load_state_dict(self, state_dict: dict[str, Any], *, allow_spec_change: bool | None = None) -> None:
        """Resumes from ``state_dict``, validated in full first: a refused state changes nothing.

        A state saved under another spec is refused unless ``allow_spec_change=True`` here or
        ``on_spec_change="continue"`` at construction: the scheduler then keeps its own (new) spec
        and the saved step count, which is how a trunk is extended or a cooldown branched without
        resetting the count. A state without a spec needs ``adopt_foreign_state=True``. The
        optimizer's rates are set for the restored step, whichever order things were loaded in.
        """
        self._apply_state(self._parse_state(state_dict, allow_spec_change))

    def _parse_state(
        self, state_dict: Any, allow_spec_change: bool | None, adopt: bool | None = None
    ) -> SchedulerState:
        allow = self.on_spec_change == "continue" if allow_spec_change is None else allow_spec_change
        return parse_state(
            state_dict,
            owner=type(self).__name__,
            spec=self.spec,
            groups=len(self.optimizer.param_groups),
            allow_spec_change=allow,
            adopt_foreign=self.adopt_foreign_state if adopt is None else adopt,
        )

    def _apply_state(self, state: SchedulerState) -> None:
        raise NotImplementedError

    def _new_groups(self, known: int) -> list[tuple[dict[str, Any], float]]:
        """Param groups added (``optimizer.add_param_group``) since ``known`` were seen, each with
        its base rate: its own ``lr``, recorded as ``initial_lr`` as torch's schedulers do."""
        added = []
        for i, group in enumerate(self.optimizer.param_groups[known:], start=known):
            lr = group.setdefault("initial_lr", group["lr"])
            if isinstance(lr, torch.Tensor) and lr.numel() != 1:
                raise ValueError(
                    f"param group {i}'s lr must be a scalar, got a tensor of shape {tuple(lr.shape)}"
                )
            added.append((group, float(lr.item()) if isinstance(lr, torch.Tensor) else float(lr)))
        return added

    # --- introspection ------------------------------------------------------------------------

    def phase(self) -> Phase:
        """The phase of the next update (step ``last_epoch``), whose rate is currently set."""
        return self.spec.phase(self.last_epoch)

    @property
    def period_ends(self) -> tuple[int, ...]:
        return self.spec.period_ends

    @property
    def decay_starts(self) -> tuple[int, ...]:
        """Each period's first decayed step: save pre-decay (trunk) checkpoints at these counts."""
        return self.spec.decay_starts
