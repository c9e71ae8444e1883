"""``WSDLR``: the contract through ``torch.optim.lr_scheduler.LambdaLR`` on Python floats."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any, Unpack

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

from wsd_core import WSDFields, WSDSpec
from wsd_core.backend import require_clock
from wsd_torch._optimizer import check_optimizer
from wsd_torch._scheduler import WSDSchedulerBase, base_rate
from wsd_torch._state import SchedulerState, torch_fields


class WSDLR(WSDSchedulerBase, LambdaLR):
    """A ``LambdaLR`` whose factor is the contract's m(step): each group gets ``base_lr * m(step)``.

    ``last_epoch`` is the number of optimizer updates applied, so call ``scheduler.step()`` after
    ``optimizer.step()`` as with any torch scheduler. The factor is the spec's own method (data, not a
    closure), so the scheduler pickles, and its ``state_dict`` holds the spec as a plain dict that
    ``torch.load(..., weights_only=True)`` accepts. The state is also a ``LambdaLR`` state, so a
    plain ``LambdaLR`` can load it.

    Like every ``LambdaLR`` it sets each rate outright: in a ``ChainedScheduler`` another scheduler's
    factor does not accumulate on top of it (see the PyTorch docs page).

    Args:
      optimizer: the wrapped optimizer; each param group keeps its own base rate. A group added later
        with ``optimizer.add_param_group`` follows the schedule from its own ``lr``.
      spec: a ``WSDSpec``, or give its fields as keyword arguments instead.
      last_epoch: as in ``LambdaLR``; leave at -1 and use ``load_state_dict`` to resume.
      on_spec_change: ``"refuse"`` (default) or ``"continue"``: what ``load_state_dict`` does with a
        state saved under another spec (see ``WSDSchedulerBase``).
      adopt_foreign_state: accept a state without a spec (``LambdaLR``, ``get_wsd_schedule``,
        torchtitan) and take over its step count.
      min_lr: the floor as an absolute rate, the same in every param group (torch's convention), or
        a list of one per group (Megatron-LM's per-group ``min_lr``), instead of the spec's
        ``min_ratio``: group g follows the spec with ``min_ratio = min_lr_g / base_lr_g``. Saved in
        the state; a different one is a spec change.

    Examples:
      >>> import torch
      >>> opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))], lr=1e-3)
      >>> sched = WSDLR(opt, total_steps=100, warmup_steps=10, decay_steps=20)
      >>> for _ in range(5):
      ...     opt.step()
      ...     sched.step()
      >>> sched.get_last_lr(), sched.phase().name
      ([0.0005], 'warmup')
    """

    # the state keys it owns (beside torch's bookkeeping fields)
    STATE_KEYS = frozenset({"last_epoch", "base_lrs", "lr_lambdas", "spec", "min_lr"})

    def __init__(
        self,
        optimizer: Optimizer,
        *,
        spec: WSDSpec | None = None,
        last_epoch: int = -1,
        on_spec_change: str = "refuse",
        adopt_foreign_state: bool = False,
        min_lr: float | Sequence[float] | None = None,
        **fields: Unpack[WSDFields],
    ) -> None:
        check_optimizer("WSDLR", optimizer)
        self._spec_and_floor(optimizer, spec, fields, min_lr)
        require_clock(self.spec, where="WSDLR")  # a spec in tokens is evaluated through its clock
        self._set_policy(on_spec_change, adopt_foreign_state)
        groups = optimizer.param_groups
        lambdas = [self._factor(i, base_rate(i, g, record=False)) for i, g in enumerate(groups)]
        self._init_torch(lambda: LambdaLR.__init__(self, optimizer, lr_lambda=lambdas, last_epoch=last_epoch))

    def _factor(self, index: int, base: float) -> Callable[[int], float]:
        """Group ``index``'s factor of the update count: its spec's multiplier (a bound method of a
        frozen spec: data, so it pickles), through its clock for a spec in tokens or samples."""
        return self._group_spec(index, base).multiplier

    def get_lr(self) -> list[float | torch.Tensor]:
        """``base_lr * m(last_epoch)`` for every group (what ``step()`` sets); m is computed once for
        all groups, and groups added with ``optimizer.add_param_group`` since are taken in here."""
        if not self._get_lr_called_within_step:
            warnings.warn(
                "To get the last learning rate computed by the scheduler, please use `get_last_lr()`.",
                UserWarning,
                stacklevel=2,
            )
        if len(self.base_lrs) != len(self.optimizer.param_groups):
            for _, base in self._new_groups(len(self.base_lrs)):
                self.lr_lambdas.append(self._factor(len(self.base_lrs), base))
                self.base_lrs.append(base)
        return self._rates()

    def _rates(self) -> list[float | torch.Tensor]:
        if self.min_lr is None:  # one factor for every group: computed once
            m = self.spec.multiplier(self.last_epoch)
            return [base * m for base in self.base_lrs]
        return [base * f(self.last_epoch) for base, f in zip(self.base_lrs, self.lr_lambdas, strict=True)]

    # --- state ----------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """What we own (the step count, base rates, the spec as a plain dict), ``LambdaLR``'s
        ``lr_lambdas`` entry, and torch's own bookkeeping fields, passed through as torch saves them
        (the same fields ``load_state_dict`` accepts, so a newer torch's are kept both ways)."""
        return {
            **torch_fields(self),
            "last_epoch": self.last_epoch,
            "base_lrs": list(self.base_lrs),
            "lr_lambdas": [None] * len(self.lr_lambdas),  # LambdaLR's format for a plain function
            "spec": self.spec.to_dict(),
            **self._floor_entry(),
        }

    def apply_state(self, checked: SchedulerState) -> None:
        """Applies what ``check_state`` returned: the count, base rates and factors, torch's fields,
        and the optimizer's rates for the restored step (a rate tensor is filled in place)."""
        state = checked
        if state.base_lrs is not None:  # check_state made sure that min_lr serves every base rate
            lambdas = [self._factor(i, base) for i, base in enumerate(state.base_lrs)]
            self.base_lrs, self.lr_lambdas = list(state.base_lrs), lambdas
        self._take_torch_fields(state.torch_keys)
        self.last_epoch = state.last_epoch
        values = self._rates()
        for group, lr in zip(self.optimizer.param_groups, values, strict=True):
            if isinstance(group["lr"], torch.Tensor):
                group["lr"].fill_(lr)  # keep the tensor the optimizer (or a graph) holds
            else:
                group["lr"] = lr
        self._last_lr = [
            g["lr"].clone() if isinstance(g["lr"], torch.Tensor) else g["lr"]
            for g in self.optimizer.param_groups
        ]
