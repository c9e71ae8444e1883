"""``WSDDeviceLR``: a learning rate that lives on the parameters' device and never syncs the host."""

from __future__ import annotations

from typing import Any

import torch
from torch.optim import Optimizer

from wsd_core import Phase, WSDSpec
from wsd_core._formula import evaluate
from wsd_core._spec import spec_from_args
from wsd_torch._backend import TorchBackend, check_float_dtype, compute_dtype
from wsd_torch._optimizer import check_optimizer
from wsd_torch._state import SchedulerState, parse_state


class WSDDeviceLR:
    """Sets each param group's ``lr`` to a 0-dim tensor on the device, updated by tensor ops.

    The step count is an int64 tensor on the device too, so ``step()`` is a handful of kernels that
    read nothing back to the host. That makes it usable where ``LambdaLR`` is not:

    * ``torch.cuda.set_sync_debug_mode("error")`` passes: no host-device synchronisation;
    * ``torch.compile`` of ``optimizer.step(); scheduler.step()`` compiles once for the whole run,
      phase changes included (no Python branch depends on the step's value);
    * ``optimizer.step(); scheduler.step()`` can be captured in one CUDA graph: each replay advances
      the count and the rate (use Adam/AdamW with ``capturable=True``).

    On CUDA the optimizer needs ``capturable=True`` or ``fused=True`` (torch refuses a tensor ``lr``
    for ``foreach`` without ``capturable``). The same code runs on CPU tensors.

    Args:
      optimizer: the wrapped optimizer. Each group's current ``lr`` (float or tensor) is its base rate,
        recorded as ``initial_lr`` like torch's schedulers do.
      spec: a ``WSDSpec``, or give its fields as keyword arguments instead.
      device: where the count and rates live; default: the device of the first parameter.
      dtype: the rate's dtype (float32 by default; the optimizer's math uses it as given).

    Example:
      >>> p = torch.nn.Parameter(torch.zeros(2))
      >>> opt = torch.optim.AdamW([p], lr=1e-3, foreach=False)
      >>> sched = WSDDeviceLR(opt, total_steps=100, warmup_steps=10)
      >>> opt.step(); sched.step()
      >>> lr = opt.param_groups[0]["lr"]
      >>> type(lr).__name__, lr.device.type, round(float(lr), 9)
      ('Tensor', 'cpu', 0.0001)
    """

    def __init__(
        self,
        optimizer: Optimizer,
        *,
        spec: WSDSpec | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
        **fields: Any,
    ) -> None:
        check_optimizer("WSDDeviceLR", optimizer)
        dtype = check_float_dtype(dtype)
        self.spec = spec_from_args(spec, fields)
        self.optimizer = optimizer
        if device is None:
            device = next(p.device for g in optimizer.param_groups for p in g["params"])
        self.device = torch.device(device)
        compute = compute_dtype(dtype)  # m and base * m in at least float32, cast into the lr tensor
        self._backend = TorchBackend(self.spec.resolved(), self.device, compute)
        self._count = torch.zeros((), dtype=torch.int64, device=self.device)
        self.base_lrs: list[float] = []
        self._bases: list[torch.Tensor] = []
        for group in optimizer.param_groups:
            base = group.setdefault("initial_lr", _as_float(group["lr"]))
            base = _as_float(base)
            self.base_lrs.append(base)
            self._bases.append(torch.tensor(base, dtype=compute, device=self.device))
            group["lr"] = torch.zeros((), dtype=dtype, device=self.device)
        self._refresh()

    @property
    def count(self) -> torch.Tensor:
        """The device tensor holding the number of updates applied (the next update's step)."""
        return self._count

    def step(self) -> None:
        """Advances one update: call after ``optimizer.step()``. Only device ops, no host sync."""
        self._count.add_(1)
        self._refresh()

    def _refresh(self) -> None:
        m = evaluate(self._count, self.spec.resolved(), self._backend)
        for group, base in zip(self.optimizer.param_groups, self._bases, strict=True):
            group["lr"].copy_(base * m)  # in place: a compiled step or a graph keeps the same tensor

    def get_last_lr(self) -> list[torch.Tensor]:
        """The rates set for the next update (copies of the device tensors)."""
        return [g["lr"].clone() for g in self.optimizer.param_groups]

    # --- introspection (reads the count back: a host sync, for logging only) --------------------

    @property
    def last_epoch(self) -> int:
        return int(self._count.item())

    def phase(self) -> Phase:
        return self.spec.phase(self.last_epoch)

    # --- state ----------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """The step count, base rates and spec (plain Python values; one host sync to read the count)."""
        return {"last_epoch": self.last_epoch, "base_lrs": list(self.base_lrs), "spec": self.spec.to_dict()}

    def load_state_dict(self, state_dict: dict[str, Any], *, allow_spec_change: bool = False) -> None:
        """Resumes the count in place (graphs and compiled steps keep working); see ``WSDLR``.

        The whole state is validated first; a refused state changes nothing.
        """
        self._apply_state(self._parse_state(state_dict, allow_spec_change))

    def _parse_state(self, state_dict: Any, allow_spec_change: bool) -> SchedulerState:
        groups = len(self.optimizer.param_groups)
        return parse_state(
            state_dict,
            owner="WSDDeviceLR",
            spec=self.spec,
            groups=groups,
            allow_spec_change=allow_spec_change,
        )

    def _apply_state(self, state: SchedulerState) -> None:
        self.base_lrs = list(state.base_lrs)
        for tensor, base in zip(self._bases, self.base_lrs, strict=True):
            tensor.fill_(base)
        self._count.fill_(state.last_epoch)
        self._refresh()


def _as_float(value: Any) -> float:
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(
                f"a param group's lr must be a scalar, got a tensor of shape {tuple(value.shape)}"
            )
        return float(value.item())
    return float(value)
