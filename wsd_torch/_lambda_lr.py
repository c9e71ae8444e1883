"""``WSDLR``: the contract through ``torch.optim.lr_scheduler.LambdaLR`` on Python floats."""

from __future__ import annotations

from typing import Any

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

from wsd_core import Phase, WSDSpec
from wsd_core._spec import spec_from_args
from wsd_torch._optimizer import check_optimizer
from wsd_torch._state import SchedulerState, parse_state


class WSDLR(LambdaLR):
    """A ``LambdaLR`` whose factor is the contract's m(step): each group gets ``base_lr * m(step)``.

    ``last_epoch`` is the number of optimizer updates applied, so call ``scheduler.step()`` after
    ``optimizer.step()`` as with any torch scheduler. The factor is the spec's own method (data, not a
    closure), so the scheduler pickles, and its ``state_dict`` holds the spec as a plain dict that
    ``torch.load(..., weights_only=True)`` accepts.

    Args:
      optimizer: the wrapped optimizer; each param group keeps its own base rate.
      spec: a ``WSDSpec``, or give its fields as keyword arguments instead.
      last_epoch: as in ``LambdaLR``; leave at -1 and use ``load_state_dict`` to resume.

    Example:
      >>> import torch
      >>> opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))], lr=1e-3)
      >>> sched = WSDLR(opt, total_steps=100, warmup_steps=10, decay_steps=20)
      >>> for _ in range(5):
      ...     opt.step()
      ...     sched.step()
      >>> sched.get_last_lr(), sched.phase().name
      ([0.0005], 'warmup')
    """

    def __init__(
        self, optimizer: Optimizer, *, spec: WSDSpec | None = None, last_epoch: int = -1, **fields: Any
    ) -> None:
        check_optimizer("WSDLR", optimizer)
        self.spec = spec_from_args(spec, fields)
        super().__init__(optimizer, lr_lambda=self.spec.multiplier, last_epoch=last_epoch)

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

    # --- state ----------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """The step count, base rates and the spec as a plain dict (no callables)."""
        state = {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "lr_lambdas", "spec")}
        state["spec"] = self.spec.to_dict()
        return state

    def load_state_dict(self, state_dict: dict[str, Any], *, allow_spec_change: bool = False) -> None:
        """Resumes from ``state_dict``; a state saved under another spec needs ``allow_spec_change``.

        With ``allow_spec_change=True`` the scheduler keeps its own (new) spec and the saved step
        count, which is how a trunk is extended or a cooldown branched without resetting the count.
        The optimizer's rates are set for the restored step, whichever order things were loaded in.
        The whole state is validated first: a refused state (missing or unknown keys, a count that is
        not an int >= 0, base rates that do not match the param groups) changes nothing.
        """
        self._apply_state(self._parse_state(state_dict, allow_spec_change))

    def _parse_state(self, state_dict: Any, allow_spec_change: bool) -> SchedulerState:
        groups = len(self.optimizer.param_groups)
        return parse_state(
            state_dict, owner="WSDLR", spec=self.spec, groups=groups, allow_spec_change=allow_spec_change
        )

    def _apply_state(self, state: SchedulerState) -> None:
        self.__dict__.update(state.torch_keys)
        self.last_epoch, self.base_lrs = state.last_epoch, list(state.base_lrs)
        values = [base * self.spec.multiplier(self.last_epoch) for base in self.base_lrs]
        for group, lr in zip(self.optimizer.param_groups, values, strict=True):
            if isinstance(group["lr"], torch.Tensor):
                group["lr"].fill_(lr)  # keep the tensor the optimizer (or a graph) holds
            else:
                group["lr"] = lr
        self._last_lr = [
            g["lr"].clone() if isinstance(g["lr"], torch.Tensor) else g["lr"]
            for g in self.optimizer.param_groups
        ]
