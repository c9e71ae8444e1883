"""Several schedulers stepping together, checkpointed as one ``Stateful`` (torchtitan's pattern)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from torch.distributed.checkpoint.stateful import Stateful

from wsd_torch._device_lr import WSDDeviceLR
from wsd_torch._lambda_lr import WSDLR

Scheduler = WSDLR | WSDDeviceLR


class WSDSchedulersContainer(Stateful):
    """Steps one WSD scheduler per optimizer (e.g. one per model part) as one object.

    Implements ``torch.distributed.checkpoint.stateful.Stateful``, so it can be put directly in the
    state dict given to ``torch.distributed.checkpoint.save`` / ``load``. Each scheduler's state is
    kept under its index, so schedulers with different specs or base rates restore exactly.

    Example:
      >>> import torch
      >>> opts = [torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1) for _ in range(2)]
      >>> schedulers = WSDSchedulersContainer([WSDLR(o, total_steps=10) for o in opts])
      >>> for o in opts:
      ...     o.step()
      >>> schedulers.step()
      >>> [s.last_epoch for s in schedulers]
      [1, 1]
    """

    def __init__(self, schedulers: Sequence[Scheduler]) -> None:
        schedulers = list(schedulers)
        if not schedulers:
            raise ValueError("schedulers must not be empty")
        for i, s in enumerate(schedulers):
            if not isinstance(s, (WSDLR, WSDDeviceLR)):
                raise TypeError(f"schedulers[{i}] must be a WSDLR or WSDDeviceLR, got {type(s).__name__}")
        self.schedulers = schedulers

    def __iter__(self) -> Iterator[Scheduler]:
        return iter(self.schedulers)

    def __len__(self) -> int:
        return len(self.schedulers)

    def step(self) -> None:
        for scheduler in self.schedulers:
            scheduler.step()

    def state_dict(self) -> dict[str, Any]:
        return {str(i): s.state_dict() for i, s in enumerate(self.schedulers)}

    def load_state_dict(self, state_dict: dict[str, Any], *, allow_spec_change: bool = False) -> None:
        if sorted(state_dict) != sorted(str(i) for i in range(len(self.schedulers))):
            raise ValueError(
                f"the saved container holds schedulers {sorted(state_dict)}, this one has "
                f"{len(self.schedulers)}: the number of optimizers must match"
            )
        for i, scheduler in enumerate(self.schedulers):
            scheduler.load_state_dict(state_dict[str(i)], allow_spec_change=allow_spec_change)
