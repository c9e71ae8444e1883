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
            for j in range(i):
                if s is schedulers[j] or s.optimizer is schedulers[j].optimizer:
                    what = "the same scheduler" if s is schedulers[j] else "schedulers of the same optimizer"
                    raise ValueError(
                        f"schedulers[{j}] and schedulers[{i}] are {what}: it would be stepped twice per "
                        "update. Give one scheduler per optimizer"
                    )
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
        """Loads every scheduler's state, or none: all are validated before any is changed."""
        if not isinstance(state_dict, dict):
            raise TypeError(
                f"WSDSchedulersContainer.load_state_dict expects a dict, got {type(state_dict).__name__}"
            )
        keys = [repr(k) for k in state_dict]
        if any(not isinstance(k, str) for k in state_dict):
            raise TypeError(f"the saved container's keys must be the strings '0', '1', ..., got {keys}")
        expected = [str(i) for i in range(len(self.schedulers))]
        if sorted(state_dict) != sorted(expected):
            raise ValueError(
                f"the saved container holds schedulers {sorted(state_dict)}, this one has "
                f"{len(self.schedulers)} ({expected}): the number of optimizers must match"
            )
        parsed = []
        for i, scheduler in enumerate(self.schedulers):
            try:
                parsed.append(scheduler._parse_state(state_dict[str(i)], allow_spec_change))
            except (TypeError, ValueError) as e:
                raise type(e)(f"scheduler {i}: {e}") from e
        for scheduler, state in zip(self.schedulers, parsed, strict=True):
            scheduler._apply_state(state)
