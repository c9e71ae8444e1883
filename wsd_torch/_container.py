"""Several schedulers stepping together, checkpointed as one ``Stateful`` (torchtitan's pattern)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Unpack

import torch
from torch.distributed.checkpoint.stateful import Stateful
from torch.optim import Optimizer

from wsd_core import WSDFields, WSDSpec
from wsd_core.backend import spec_from_args
from wsd_torch._companion import WSDCompanion
from wsd_torch._dcp import current_call
from wsd_torch._device_lr import WSDDeviceLR
from wsd_torch._lambda_lr import WSDLR
from wsd_torch._ranks import check_ranks_agree
from wsd_torch._state import check_policy

Scheduler = WSDLR | WSDDeviceLR


class WSDSchedulersContainer(Stateful):
    """Steps one WSD scheduler per optimizer (e.g. one per model part) as one object.

    Implements ``torch.distributed.checkpoint.stateful.Stateful`` (put it directly in the state dict
    given to ``torch.distributed.checkpoint.save`` / ``load``) and the interface torchtitan's trainer
    calls on its ``lr_schedulers``: ``step()``, ``get_metrics()``, ``state_dict()`` and
    ``load_state_dict()``.

    What is saved: when every scheduler follows the same spec (the usual case), the step count and
    the spec, once: ``{"last_epoch": N, "spec": {...}}``. Each scheduler's rate is then recomputed
    from its own optimizer's base rate, so the state loads into a container of any number of
    optimizers (resharding), and torchtitan's own container reads its ``last_epoch``. Schedulers with
    different specs are saved one by one under their index, and then the number must match.

    Companion hyperparameters (``WSDCompanion``: ``betas[1]``, ``weight_decay``) given as
    ``companions`` are stepped after the schedulers and saved beside them under ``"companions"``;
    a state loads only into a container with as many companions, and all of them load or none.

    Args:
      schedulers: ``WSDLR`` / ``WSDDeviceLR``, one per optimizer.
      companions: ``WSDCompanion``s to step and save with the schedulers (any number).
      on_spec_change: ``"refuse"`` or ``"continue"``, for every scheduler's state (see ``WSDLR``).
      adopt_foreign_state: also accept a state without a spec (torchtitan's own container's
        ``{"last_epoch": N}``, a ``LambdaLR``'s) and take over its step count. A state with a spec is
        checked as always, against this container's spec, under ``torch.distributed.checkpoint`` too
        (the container names the keys the checkpoint holds, so DCP reads the spec where there is one).

    Examples:
      >>> import torch
      >>> opts = [torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1) for _ in range(2)]
      >>> schedulers = WSDSchedulersContainer.for_optimizers(opts, total_steps=10)
      >>> for o in opts:
      ...     o.step()
      >>> schedulers.step()
      >>> [s.last_epoch for s in schedulers], schedulers.get_metrics()
      ([1, 1], {'lr/SGD': 0.1})
    """

    def __init__(
        self,
        schedulers: Sequence[Scheduler],
        *,
        companions: Sequence[WSDCompanion] = (),
        on_spec_change: str = "refuse",
        adopt_foreign_state: bool = False,
    ) -> None:
        schedulers = list(schedulers)
        companions = list(companions)
        for i, c in enumerate(companions):
            if not isinstance(c, WSDCompanion):
                raise TypeError(f"companions[{i}] must be a WSDCompanion, got {type(c).__name__}")
            if any(c is companions[j] for j in range(i)):
                raise ValueError(f"companions[{i}] is given twice: it would be stepped twice per update")
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
        self.companions = companions
        self.on_spec_change, self.adopt_foreign_state = check_policy(on_spec_change, adopt_foreign_state)
        self._fresh = True  # not stepped or loaded yet (see state_dict)

    @classmethod
    def for_optimizers(
        cls,
        optimizers: Iterable[Optimizer],
        *,
        spec: WSDSpec | None = None,
        device_resident: bool = False,
        on_spec_change: str = "refuse",
        adopt_foreign_state: bool = False,
        min_lr: float | Sequence[float] | None = None,
        **fields: Unpack[WSDFields],
    ) -> WSDSchedulersContainer:
        """One scheduler of ``spec`` per optimizer (``WSDDeviceLR`` if ``device_resident``, else
        ``WSDLR``); ``optimizers`` may be any iterable of them, e.g. torchtitan's ``OptimizersContainer``.
        ``min_lr`` goes to every scheduler (see ``WSDLR``); a spec in tokens carries its own clock."""
        spec = spec_from_args(spec, fields)
        make = WSDDeviceLR if device_resident else WSDLR
        return cls(
            [make(o, spec=spec, min_lr=min_lr) for o in optimizers],
            on_spec_change=on_spec_change,
            adopt_foreign_state=adopt_foreign_state,
        )

    def __iter__(self) -> Iterator[Scheduler]:
        return iter(self.schedulers)

    def __len__(self) -> int:
        return len(self.schedulers)

    def step(self) -> None:
        """Steps every scheduler, then every companion: call it once after the optimizers' steps."""
        self._fresh = False
        for scheduler in self.schedulers:
            scheduler.step()
        for companion in self.companions:
            companion.step()

    def get_metrics(self) -> dict[str, float]:
        """The rate of the next update, keyed as torchtitan keys them: ``lr/<OptimizerClass>`` (and
        ``/<group>`` when an optimizer has several groups). Reads device rates back to the host."""
        metrics = {}
        for scheduler in self.schedulers:
            name = type(scheduler.optimizer).__name__
            rates = scheduler.get_last_lr()
            for i, rate in enumerate(rates):
                key = f"lr/{name}" if len(rates) == 1 else f"lr/{name}/{i}"
                metrics[key] = float(rate.item()) if isinstance(rate, torch.Tensor) else float(rate)
        return metrics

    @property
    def _one_spec(self) -> bool:
        first = self.schedulers[0]
        return all(s.spec == first.spec and s.min_lr == first.min_lr for s in self.schedulers)

    def state_dict(self) -> dict[str, Any]:
        """``{"last_epoch", "spec"}`` (one spec, with ``min_lr`` where set) or each scheduler's state
        under its index, with the companions' states under ``"companions"``.

        Under ``torch.distributed.checkpoint`` (``wsd_torch._dcp``): in ``dcp.save`` the ranks compare
        their states first and every rank refuses to save, naming the ranks, when they differ (one
        rank's copy would be kept, and the job resumed from it); in ``dcp.load`` the container names
        the keys the checkpoint holds under it, so DCP reads the whole saved state and
        ``load_state_dict`` checks it exactly as it checks one passed by hand (its own reasons, the
        same ``adopt_foreign_state``: a checkpoint of torchtitan's container, which has no spec,
        loads into an adopting container; one of ours under another spec is refused).
        """
        call = current_call()
        if call is not None and call.kind == "load":
            key = call.key_of(self)
            saved = None if key is None else call.saved_under(key)
            if saved:
                return saved
            if self.adopt_foreign_state and self._fresh:  # (the checkpoint's keys unknown: the count)
                return {"last_epoch": self.schedulers[0].last_epoch}
        state = self._state()
        if call is not None and call.kind == "save":
            check_ranks_agree(self._digest(), call.process_group)
        return state

    def _state(self) -> dict[str, Any]:
        state: dict[str, Any]
        if self._one_spec:
            first = self.schedulers[0]
            state = {
                "last_epoch": first.last_epoch,
                "spec": first.spec.to_dict(),
                **({} if first.min_lr is None else {"min_lr": first.min_lr}),
            }
        else:
            state = {str(i): s.state_dict() for i, s in enumerate(self.schedulers)}
        if self.companions:
            state["companions"] = [c.state_dict() for c in self.companions]
        return state

    def _digest(self) -> dict[str, Any]:
        """What every rank of a job must agree on: each scheduler's count, spec and floor, and the
        companions' states (not the base rates: each rank's optimizers have their own)."""
        return {
            "counts": [s.last_epoch for s in self.schedulers],
            "specs": [s.spec.to_dict() for s in self.schedulers],
            "floors": [s.min_lr for s in self.schedulers],
            "companions": [c.state_dict() for c in self.companions],
        }

    def load_state_dict(self, state_dict: dict[str, Any], *, allow_spec_change: bool | None = None) -> None:
        """Loads every scheduler's state, or none: all are validated before any is changed.

        ``allow_spec_change`` overrides the container's ``on_spec_change`` for this call.
        """
        if not isinstance(state_dict, dict):
            raise TypeError(
                f"WSDSchedulersContainer.load_state_dict expects a dict, got {type(state_dict).__name__}"
            )
        keys = [repr(k) for k in state_dict]
        if any(not isinstance(k, str) for k in state_dict):
            raise TypeError(f"the saved container's keys must be strings, got {keys}")
        allow = self.on_spec_change == "continue" if allow_spec_change is None else allow_spec_change
        state_dict = dict(state_dict)
        saved_companions = state_dict.pop("companions", [])
        if not isinstance(saved_companions, list) or len(saved_companions) != len(self.companions):
            count = len(saved_companions) if isinstance(saved_companions, list) else saved_companions
            raise ValueError(
                f"the saved container holds {count} companion state(s), this one has "
                f"{len(self.companions)} companion(s)"
            )
        if "last_epoch" in state_dict:  # one count (and spec) for all: any number of optimizers
            per_scheduler = [dict(state_dict)] * len(self.schedulers)
        else:
            expected = [str(i) for i in range(len(self.schedulers))]
            if sorted(state_dict) != sorted(expected):
                raise ValueError(
                    f"the saved container holds schedulers {sorted(state_dict)}, this one has "
                    f"{len(self.schedulers)} ({expected}): with a different spec per scheduler, the "
                    "number of optimizers must match"
                )
            per_scheduler = [state_dict[k] for k in expected]
        parsed = []
        for i, (scheduler, saved) in enumerate(zip(self.schedulers, per_scheduler, strict=True)):
            try:
                parsed.append(
                    scheduler.check_state(
                        saved, allow_spec_change=allow, adopt_foreign_state=self.adopt_foreign_state
                    )
                )
            except (TypeError, ValueError) as e:
                raise type(e)(f"scheduler {i}: {e}") from e
        counts = []
        for i, (companion, saved) in enumerate(zip(self.companions, saved_companions, strict=True)):
            try:
                counts.append(companion.check_state(saved, allow_spec_change=allow))
            except (TypeError, ValueError) as e:
                raise type(e)(f"companion {i}: {e}") from e
        for scheduler, state in zip(self.schedulers, parsed, strict=True):
            scheduler.apply_state(state)
        for companion, count in zip(self.companions, counts, strict=True):
            companion.apply_state(count)
        self._fresh = False
