"""``WSDDeviceLR``: a learning rate that lives on the parameters' device and never syncs the host."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any, Unpack

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from wsd_core import WSDFields, WSDSpec
from wsd_core.backend import ArrayClock, array_clock, evaluate, resolve, units_at
from wsd_torch._backend import TorchBackend, check_float_dtype, compute_dtype
from wsd_torch._optimizer import check_optimizer
from wsd_torch._scheduler import WSDSchedulerBase
from wsd_torch._state import SchedulerState, torch_fields

# Schedules up to this many steps keep one rate per step on the device (64 MB in float32 at the
# limit); longer ones evaluate the formula at each step instead.
MAX_TABLE_STEPS = 1 << 24


class WSDDeviceLR(WSDSchedulerBase, LRScheduler):
    """Sets each param group's ``lr`` to a 0-dim tensor on the device, updated by tensor ops.

    The step count is an int64 tensor on the device too, so ``step()`` is a handful of kernels that
    read nothing back to the host. That makes it usable where ``LambdaLR`` is not:

    * ``torch.cuda.set_sync_debug_mode("error")`` passes: no host-device synchronisation;
    * ``torch.compile`` of ``optimizer.step(); scheduler.step()`` compiles once for the whole run,
      phase changes included (no Python branch depends on the step's value);
    * ``optimizer.step(); scheduler.step()`` can be captured in one CUDA graph: each replay advances
      the count and the rate (use Adam/AdamW with ``capturable=True``).

    The multiplier of every step of the schedule is computed once, in float64, at construction and
    kept on the device (4 bytes a step in float32: 4 MB per million steps); a step is then a lookup,
    a handful of kernels (the formula evaluated on the device is about 35, 69 us per replayed step on
    an H100). Past the schedule's end the count is clamped, exactly as the contract allows. Schedules
    longer than ``MAX_TABLE_STEPS`` (2**24) steps evaluate the formula on the device instead.

    On CUDA the optimizer needs ``capturable=True`` or ``fused=True`` (torch refuses a tensor ``lr``
    for ``foreach`` without ``capturable``). The same code runs on CPU tensors.

    It is a ``torch.optim.lr_scheduler.LRScheduler``: Lightning, ``SequentialLR`` and the step-order
    warning treat it as one; it pickles and deep-copies. Reading ``last_epoch`` (logging, saving)
    copies the count to the host; stepping never does. The host-side bookkeeping of ``step()`` (the
    step-order check, param groups added later) runs outside ``torch.compile``, so it adds no guard.

    Args:
      optimizer: the wrapped optimizer. Each group's current ``lr`` (float or tensor) is its base rate,
        recorded as ``initial_lr`` like torch's schedulers do.
      spec: a ``WSDSpec``, or give its fields as keyword arguments instead.
      device: where the count and rates live; default: the device of the first parameter.
      dtype: the rate's dtype (float32 by default; the optimizer's math uses it as given). The rate is
        computed in at least float32 and cast. A fused optimizer on CUDA reads its rate as float32
        only: another dtype is refused here (torch would fail at ``optimizer.step()``).
      on_spec_change: what ``load_state_dict`` does with a state saved under another spec, as for
        ``WSDLR``.
      adopt_foreign_state: accept a state without a spec and take over its step count, as for
        ``WSDLR``.
      min_lr: the floor as an absolute rate, the same in every param group, or one per group,
        instead of the spec's ``min_ratio`` (as for ``WSDLR``). Groups with different base rates or
        floors then follow different multipliers: one table row per distinct group spec.

    Examples:
      >>> p = torch.nn.Parameter(torch.zeros(2))
      >>> opt = torch.optim.AdamW([p], lr=1e-3, foreach=False)
      >>> sched = WSDDeviceLR(opt, total_steps=100, warmup_steps=10)
      >>> opt.step(); sched.step()
      >>> lr = opt.param_groups[0]["lr"]
      >>> type(lr).__name__, lr.device.type, round(float(lr), 9)
      ('Tensor', 'cpu', 0.0001)
    """

    # the state keys it owns (beside torch's bookkeeping fields)
    STATE_KEYS = frozenset({"last_epoch", "base_lrs", "spec", "min_lr"})
    # its own attributes, declared: a state may set none of them (``owned_names``), not even one
    # set on first use
    device: torch.device
    dtype: torch.dtype
    _count: torch.Tensor
    _bases: list[torch.Tensor]
    _rows: list[int]
    _row_specs: list[WSDSpec]
    _backend_cache: list[TorchBackend] | None

    def __init__(
        self,
        optimizer: Optimizer,
        *,
        spec: WSDSpec | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
        on_spec_change: str = "refuse",
        adopt_foreign_state: bool = False,
        min_lr: float | Sequence[float] | None = None,
        **fields: Unpack[WSDFields],
    ) -> None:
        check_optimizer("WSDDeviceLR", optimizer)
        dtype = check_float_dtype(dtype)
        self._spec_and_floor(optimizer, spec, fields, min_lr)
        self._array_clock = array_clock(self.spec, where="WSDDeviceLR")
        self._set_policy(on_spec_change, adopt_foreign_state)
        if device is None:
            device = next(p.device for g in optimizer.param_groups for p in g["params"])
        self.device = torch.device(device)
        self.dtype = _check_rate_dtype(dtype, optimizer, self.device)
        self._count = torch.full((), -1, dtype=torch.int64, device=self.device)  # the first step makes it 0
        self._bases: list[torch.Tensor] = []
        self.optimizer = optimizer
        new = self._new_groups(0)
        # With min_lr, each distinct group spec is a row of the rate table and each group reads its row;
        # without, there is one spec and m is a scalar (rows stay empty).
        self._rows, self._row_specs = self._group_rows([base for _, base in new])
        for group, base in new:
            self._adopt_group(group, base)
        self._build_rate_table()
        # torch's LRScheduler: initial_lr/base_lrs (already recorded above), the optimizer.step patch
        # behind the step-order warning, and the first step (count 0).
        self._init_torch(lambda: LRScheduler.__init__(self, optimizer))

    _rate_table: torch.Tensor | None

    def _group_rows(self, bases: list[float], known: int = 0) -> tuple[list[int], list[WSDSpec]]:
        """The table rows of groups ``known ..`` with base rates ``bases`` (added to the rows of the
        groups before them), and the specs of all rows; checks every base before anything changes."""
        rows, specs = (list(self._rows[:known]), list(self._row_specs)) if known else ([], [])
        if self.min_lr is None:
            return rows, specs
        for i, base in enumerate(bases, start=known):
            spec = self._group_spec(i, base)
            if spec not in specs:
                specs.append(spec)
            rows.append(specs.index(spec))
        return rows, specs

    def _set_rows(self, rows: list[int], specs: list[WSDSpec]) -> None:
        """Takes the rows of ``_group_rows``, rebuilding the table only when the row specs changed."""
        changed = specs != self._row_specs
        self._rows, self._row_specs = rows, specs
        if changed:
            self._build_rate_table()

    def _adopt_group(self, group: dict[str, Any], base: float) -> None:
        """Makes ``group``'s rate a device tensor following the schedule from ``base``."""
        self._bases.append(torch.tensor(base, dtype=compute_dtype(self.dtype), device=self.device))
        group["initial_lr"] = base
        group["lr"] = torch.zeros((), dtype=self.dtype, device=self.device)

    @property
    def _backends(self) -> list[TorchBackend]:
        # Built on first use (and again after unpickling): they hold the torch module, which pickles
        # not. One per table row (one without min_lr).
        backends = self.__dict__.get("_backend_cache")
        if backends is None:
            compute = compute_dtype(self.dtype)
            backends = [TorchBackend(resolve(s), self.device, compute) for s in self._specs_of_rows()]
            self.__dict__["_backend_cache"] = backends
        return backends

    _array_clock: ArrayClock  # the update counts a count is clamped into exactly, and the spec's clock

    @property
    def _count_range(self) -> tuple[int, int]:
        return self._array_clock.lo, self._array_clock.hi

    def _specs_of_rows(self) -> list[WSDSpec]:
        return self._row_specs if self.min_lr is not None else [self.spec]

    def _build_rate_table(self) -> None:
        """m at every count in the contract's clamp range [s0, s0 + T], in float64 then rounded once
        to the compute dtype, on the device (one row per group spec with ``min_lr``); None for a
        schedule too long to tabulate."""
        low, high = self._count_range  # min_lr changes the floor, not the range
        table = None
        if high - low < MAX_TABLE_STEPS:
            counts = torch.arange(low, high + 1, dtype=torch.int64)
            rows = []
            for s in self._specs_of_rows():
                backend = TorchBackend(resolve(s), "cpu", torch.float64)
                units = units_at(counts, self._array_clock.ramp, backend)
                rows.append(evaluate(units, resolve(s), backend))
            m = rows[0] if self.min_lr is None else torch.stack(rows)
            table = m.to(device=self.device, dtype=compute_dtype(self.dtype))
        self.__dict__["_rate_table"] = table
        self.__dict__.pop("_backend_cache", None)

    def __getstate__(self) -> dict[str, Any]:
        # Both are rebuilt from the spec: the backend holds the torch module (which pickles not), and
        # the table would make every pickle and deep copy carry one float per step.
        return {k: v for k, v in self.__dict__.items() if k not in ("_backend_cache", "_rate_table")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._build_rate_table()

    @property
    def count(self) -> torch.Tensor:
        """The device tensor holding the number of updates applied (the next update's step)."""
        return self._count

    @property
    def last_epoch(self) -> int:
        """The number of updates applied, read back to the host (a sync: for logging and saving)."""
        return int(self._count.item())

    @last_epoch.setter
    def last_epoch(self, value: int) -> None:
        # torch's LRScheduler and SequentialLR set it; the count is updated in place.
        self.__dict__.get("_count", torch.zeros((), dtype=torch.int64)).fill_(int(value))

    def step(self, epoch: int | None = None) -> None:
        """Advances one update: call after ``optimizer.step()``. Only device ops, no host sync."""
        self._host_bookkeeping(epoch)
        if epoch is None:
            self._count.add_(1)
        else:
            self._count.fill_(epoch)
        self._refresh()

    @torch.compiler.disable
    def _host_bookkeeping(self, epoch: int | None) -> None:
        """torch's step-order warning and param groups added since; plain Python, kept out of compiled
        code so that it adds no guard (a compiled step stays one graph for the whole run)."""
        first_user_step = self._step_count == 1 and not getattr(self, "_is_initial", False)
        if first_user_step and not getattr(self.optimizer, "_opt_called", False):
            warnings.warn(
                "Detected call of `lr_scheduler.step()` before `optimizer.step()`: call them in "
                "the opposite order, or the first rate of the schedule is skipped",
                UserWarning,
                stacklevel=4,
            )
        self._step_count += 1
        if epoch is not None:
            warnings.warn(
                "step(epoch) is deprecated in torch; it sets the count to epoch", UserWarning, stacklevel=4
            )
        new = self._new_groups(len(self._bases))
        if new:
            rows, specs = self._group_rows([base for _, base in new], known=len(self._bases))
            for group, base in new:
                self._adopt_group(group, base)
                self.base_lrs.append(base)
            self._set_rows(rows, specs)

    def _multiplier(self) -> torch.Tensor:
        """m at the current count, as device ops only: a table lookup, or the formula. A scalar, or
        with ``min_lr`` a vector with one m per table row."""
        table = self._rate_table
        low, high = self._count_range
        if table is None:
            ramp = self._array_clock.ramp
            count = self._count if ramp is None else self._count.clamp(low, high)
            values = [
                evaluate(units_at(count, ramp, b), resolve(s), b)
                for s, b in zip(self._specs_of_rows(), self._backends, strict=True)
            ]
            return values[0] if self.min_lr is None else torch.stack(values)
        index = self._count.clamp(low, high)
        index = (index - low if low else index).view(1)
        # index_select of a 1-element index: table[index] with a 0-dim index reads it back to the host
        # (__index__: a sync, and a broken CUDA-graph capture), and inductor cannot lower torch.take
        # (a graph break inside a compiled step). Both were seen on an H100.
        if self.min_lr is None:
            return table.index_select(0, index).view(())
        return table.index_select(1, index).view(-1)

    def _refresh(self) -> None:
        m_all = self._multiplier()
        for g, (group, base) in enumerate(zip(self.optimizer.param_groups, self._bases, strict=True)):
            m = m_all if self.min_lr is None else m_all[self._rows[g]]  # a view: no host sync
            if isinstance(group["lr"], torch.Tensor):
                group["lr"].copy_(base * m)  # in place: a compiled step or a graph keeps the same tensor
            else:  # replaced by a float (SequentialLR resets rates to initial_lr): a tensor again
                group["lr"] = (base * m).to(self.dtype)

    def get_lr(self) -> list[float | torch.Tensor]:
        """The rates set for the next update (copies of the device tensors)."""
        return self.get_last_lr()

    def get_last_lr(self) -> list[float | torch.Tensor]:
        """The rates set for the next update (copies of the device tensors)."""
        return [g["lr"].clone() for g in self.optimizer.param_groups]

    # --- state ----------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """What we own (the step count, base rates and spec, as plain Python values; one host sync
        to read the count) and torch's own bookkeeping fields, passed through as torch saves them."""
        return {
            **torch_fields(self),
            "last_epoch": self.last_epoch,
            "base_lrs": list(self.base_lrs),
            "spec": self.spec.to_dict(),
            **self._floor_entry(),
        }

    def apply_state(self, checked: SchedulerState) -> None:
        """Applies what ``check_state`` returned: the count and base rates on the device (in place),
        the table rows, torch's fields, and the optimizer's rates for the restored step."""
        state = checked
        if state.base_lrs is not None:  # check_state made sure that min_lr serves every base rate
            self._set_rows(*self._group_rows(state.base_lrs))
            self.base_lrs = list(state.base_lrs)
            for tensor, base in zip(self._bases, self.base_lrs, strict=True):
                tensor.fill_(base)
        # torch's fields as torch loads them; _last_lr is LambdaLR's float copy (ours are the tensors)
        self._take_torch_fields({k: v for k, v in state.torch_keys.items() if k != "_last_lr"})
        self._count.fill_(state.last_epoch)
        self._refresh()


def _check_rate_dtype(dtype: torch.dtype, optimizer: Optimizer, device: torch.device) -> torch.dtype:
    """The rate's dtype, refused where the optimizer cannot read it: torch's fused CUDA kernels
    (``fused=True``) take the rate as float32 and fail at ``step()`` with "expected scalar type Float
    but found Double" (for float32 and float64 parameters alike), far from the cause."""
    fused = [i for i, g in enumerate(optimizer.param_groups) if g.get("fused")]
    if fused and device.type == "cuda" and dtype != torch.float32:
        raise ValueError(
            f"dtype={dtype}: param group {fused[0]} of this {type(optimizer).__name__} is fused "
            "(fused=True), whose CUDA kernels read the rate as float32 only; use dtype=torch.float32 "
            "(the default), or build the optimizer with fused=False"
        )
    return dtype
