"""``LossRun``: one training run as the laws read it (its per-step rates from step 0 and its logged
losses), and ``learning_rates``, a ``WSDSpec``'s per-step rates as the float64 array a run needs."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from wsd_core import WSDSpec
from wsd_core.backend import (
    ArrayBackend,
    array_clock,
    check_int,
    check_real,
    check_steps,
    evaluate,
    resolve,
    units_at,
)


class _NumpyBackend(ArrayBackend):
    """The core's formula on float64 numpy arrays: a spec's rates for a whole run in one pass."""

    def __init__(self, spec: WSDSpec) -> None:
        plan = resolve(spec)
        int_table = lambda xs: np.asarray(xs, dtype=np.int64)
        super().__init__(np, plan, int_table, lambda xs: np.asarray(xs, dtype=np.float64))

    def to_float(self, x: Any) -> np.ndarray:
        return np.asarray(x, dtype=np.float64)

    def maximum(self, x: Any, y: Any) -> Any:
        return np.maximum(x, y)


def check_step_array(value: Any, name: str = "steps") -> np.ndarray:
    """Logged or predicted steps as int64: a non-empty 1-d array of ints >= 0, strictly increasing.
    Floats are refused, not truncated (a step 2500.5 is no update count), and so are unsigned
    values past int64 (whose wrap-around would look increasing)."""
    steps = np.asarray(value)
    if steps.ndim != 1 or steps.size == 0 or steps.dtype.kind not in "iu":
        fractional = steps.dtype.kind == "f" and steps.ndim == 1 and (steps != np.round(steps)).any()
        hint = (
            f" (a fractional step, {float(steps[steps != np.round(steps)][0]):g}, is no update count)"
            if fractional
            else ""
        )
        raise ValueError(
            f"{name} must be a non-empty 1-d array of ints, got {steps.dtype} {steps.shape}{hint}"
        )
    if steps.dtype == np.uint64 and steps.max() > np.iinfo(np.int64).max:
        raise ValueError(f"{name} must be <= 2**63 - 1, got {steps.max()}")
    steps = steps.astype(np.int64)  # compared as int64: an unsigned diff would wrap to "increasing"
    if steps[0] < 0 or (np.diff(steps) <= 0).any():
        raise ValueError(f"{name} must be >= 0 and strictly increasing, got {steps[:6].tolist()}...")
    return steps


def learning_rates(schedule: Any, num_steps: int, *, peak: float | None = None) -> np.ndarray:
    """The rates of updates ``0 .. num_steps - 1`` as a float64 array.

    Args:
      schedule: a ``WSDSpec`` (then ``peak`` is its stable rate; a spec counted in tokens or samples
        is evaluated through its clock, at the units consumed before each update) or a 1-d array of
        rates, returned as is when it has at least ``num_steps`` of them.
      num_steps: how many updates (>= 1).
      peak: the stable-phase rate of a ``WSDSpec``.

    Examples:
      >>> learning_rates(WSDSpec(4, decay_steps=2, decay_shape="linear"), 6, peak=1e-3).tolist()
      [0.001, 0.001, 0.001, 0.0005, 0.0, 0.0]
    """
    num_steps = check_steps("num_steps", num_steps, minimum=1)
    if isinstance(schedule, WSDSpec):
        if peak is None:
            raise ValueError("peak is required with a WSDSpec: the rate of its stable phase, e.g. 3e-4")
        peak = check_real("peak", peak, minimum=0.0)
        check_update_count(num_steps, "the rates asked for")
        clock = array_clock(schedule, where="the planner")
        backend = _NumpyBackend(schedule)
        counts = np.arange(int(num_steps), dtype=np.int64)
        if clock.ramp is not None:  # units consumed before each update (exact in int64, clamped first)
            counts = units_at(np.clip(counts, clock.lo, clock.hi), clock.ramp, backend)
        multipliers = evaluate(counts, resolve(schedule), backend)
        return peak * np.asarray(multipliers, dtype=np.float64)
    if peak is not None:
        raise ValueError("peak is only for a WSDSpec; an array of rates already holds them")
    rates = np.asarray(schedule, dtype=np.float64)
    if rates.ndim != 1 or rates.size < num_steps:
        raise ValueError(
            f"the rates must be a 1-d array of at least {num_steps} values, got shape {rates.shape}"
        )
    _check_rates("lrs", rates)
    return rates[:num_steps]


# A run is counted in optimizer updates; a billion updates is far beyond any run the laws were fit on,
# and the number a user who means tokens gives (3e9 tokens is a small run).
MAX_UPDATES = 10**9


def check_update_count(last_update: int, what: str) -> None:
    """Refuses, before anything is allocated, a count of updates in the billions: tokens or samples
    given where updates are meant (an array of one rate per update would not fit in memory)."""
    if last_update > MAX_UPDATES:
        raise ValueError(
            f"{what} reach update {last_update:,}: over {MAX_UPDATES:,} optimizer updates, probably "
            "tokens or samples given where updates are meant. The planner counts updates: divide by the "
            "tokens per update (a spec counted in tokens has its clock, WSDSpec(units='tokens', "
            "tokens_per_step=...), whose step_reaching(tokens) is the update)"
        )


def schedule_end(spec: WSDSpec) -> int | None:
    """The update count at which ``spec``'s run ends (its ``end_step``, through its clock for a spec
    in tokens or samples); None for a spec in units without a clock."""
    if spec.units == "steps":
        return spec.end_step
    return None if spec.clock is None else spec.step_reaching(spec.end_step)


def check_log_within(spec: WSDSpec, steps: np.ndarray, what: str) -> None:
    """Refuses, before any rate is computed, a log whose last step is past the end of its schedule:
    its steps are most likely counted in tokens or samples (a run's log of 2,000 updates whose steps
    go to 1e9), and its rates would be the floor's, or an allocation of terabytes."""
    end = schedule_end(spec)
    last = int(steps[-1])
    if end is None or last <= end:
        return
    per = round(last / max(end, 1))  # what each update counts, if the log reaches the run's end
    if per < 2:
        raise ValueError(
            f"{what}: the last logged step {last:,} is past the schedule's end at update {end:,}: give "
            "the schedule the run was trained with (a longer total_steps, or WSDSpec.extend)"
        )
    raise ValueError(
        f"{what}: the last logged step {last:,} is past the schedule's end at update {end:,}. Steps "
        f"count optimizer updates; these look like tokens or samples ({per:,} per update?): divide "
        "them by the tokens (or samples) per update, or give the schedule the run was trained with"
    )


def _check_rates(name: str, rates: np.ndarray) -> None:
    bad = np.flatnonzero(~np.isfinite(rates) | (rates < 0))
    if bad.size:
        raise ValueError(f"{name} must be finite and >= 0; {name}[{bad[0]}] = {rates[bad[0]]}")


@dataclasses.dataclass(frozen=True, eq=False)
class LossRun:
    """One training run: its learning rate at every update from step 0, and its logged losses.

    Attributes:
      lrs: ``lrs[t]`` is the rate of update t for every t up to the last logged step; or a
        ``WSDSpec`` with ``peak``.
      steps: the logged steps: ints, strictly increasing, each < ``len(lrs)``.
      losses: the loss logged at each step: finite and > 0.
      warmup_steps: the warmup's length W. The laws count the area under the warmup as ``S_W`` and
        count LR drops only after it. None: up to the first step at the largest rate.
      name: a label for reports and plots.
      peak: the stable rate when ``lrs`` is a ``WSDSpec``.

    Examples:
      >>> run = LossRun(lrs=WSDSpec(1000, warmup_steps=100), peak=1e-3, steps=[200, 600], losses=[4.0, 3.5])
      >>> run.lrs.shape, run.warmup_steps
      ((601,), 100)
    """

    lrs: Any
    steps: Any
    losses: Any
    warmup_steps: int = None  # type: ignore[assignment]  # None until __post_init__ resolves it
    name: str = ""
    # the stable rate of a WSDSpec ``lrs``: used to make the rates, then done with (an init-only
    # field, so that ``dataclasses.replace`` of a run, whose ``lrs`` are rates by then, needs none)
    peak: dataclasses.InitVar[float | None] = None

    def __post_init__(self, peak: float | None) -> None:
        steps = check_step_array(self.steps)
        if isinstance(self.lrs, WSDSpec):
            check_log_within(self.lrs, steps, f"run {self.name!r}")
            lrs = learning_rates(self.lrs, int(steps[-1]) + 1, peak=peak)
        else:
            if peak is not None:
                raise ValueError("peak is only for lrs given as a WSDSpec")
            lrs = np.asarray(self.lrs, dtype=np.float64)
            if lrs.ndim != 1 or lrs.size <= steps[-1]:
                raise ValueError(
                    f"lrs must be a 1-d array with a rate for every update up to the last logged step "
                    f"{steps[-1]}, got shape {lrs.shape}"
                )
            _check_rates("lrs", lrs)
        losses = np.asarray(self.losses, dtype=np.float64)
        if losses.shape != steps.shape:
            raise ValueError(f"losses must have one value per step ({steps.size}), got shape {losses.shape}")
        bad = np.flatnonzero(~np.isfinite(losses) | (losses <= 0))
        if bad.size:
            raise ValueError(
                f"losses must be finite and > 0; the loss at step {steps[bad[0]]} is {losses[bad[0]]}"
            )
        warmup = resolve_warmup(self.lrs, lrs, self.warmup_steps)
        if self.warmup_steps is None and isinstance(warmup, int) and warmup > lrs.size:
            raise ValueError(
                f"run {self.name!r} is still in its warmup (update {int(steps[-1]):,} of {warmup:,}): "
                "nothing to fit or forecast yet"
            )
        warmup = check_int(f"warmup_steps (len(lrs) = {lrs.size})", warmup, minimum=0, maximum=lrs.size)
        object.__setattr__(self, "lrs", lrs)
        object.__setattr__(self, "steps", steps.astype(np.int64))
        object.__setattr__(self, "losses", losses)
        object.__setattr__(self, "warmup_steps", int(warmup))

    def after_warmup(self) -> LossRun:
        """This run with only the losses logged at or after the end of the warmup: the laws describe
        training at and below the peak rate, not the warmup's transient."""
        keep = self.steps >= self.warmup_steps
        if keep.all():
            return self
        if not keep.any():
            raise ValueError(
                f"run {self.name!r} logged no loss after its warmup (it ends at update {self.warmup_steps}; "
                f"the last logged step is {self.steps[-1]})"
            )
        return dataclasses.replace(self, steps=self.steps[keep], losses=self.losses[keep])

    def __repr__(self) -> str:
        return (
            f"LossRun(name={self.name!r}, {self.lrs.size} rates, {self.steps.size} losses from step "
            f"{self.steps[0]} to {self.steps[-1]}, warmup_steps={self.warmup_steps})"
        )


def infer_warmup(lrs: np.ndarray) -> int:
    """The first step at the largest rate: where a warmup (if any) reaches the peak."""
    return int(np.argmax(lrs))


def resolve_warmup(schedule: Any, rates: np.ndarray, warmup_steps: int | None) -> int:
    """``warmup_steps`` if given; else a ``WSDSpec``'s own warmup end, or where ``rates`` peak."""
    if warmup_steps is not None:
        return warmup_steps
    if isinstance(schedule, WSDSpec):  # an update count, through the clock of a spec in tokens
        return schedule.step_reaching(schedule.start_step + schedule.warmup_steps)
    return infer_warmup(rates)


def trunk_schedule(
    trunk: Any, num_steps: int, peak: float | None, warmup_steps: int | None
) -> tuple[np.ndarray, float, int]:
    """A trunk's rates for updates ``[0, num_steps)``, its peak rate and the end of its warmup.

    ``trunk`` is a ``WSDSpec`` (``peak`` required) or per-update rates (peak: ``peak``, else the
    largest of these rates). The warmup is the spec's, or inferred from the whole array: the rates
    up to ``num_steps`` may stop before the peak."""
    if isinstance(trunk, WSDSpec):
        if peak is None:
            raise ValueError("peak is required with a WSDSpec trunk: its stable rate, e.g. 3e-4")
        rates = learning_rates(trunk, num_steps, peak=peak)
        return rates, float(peak), resolve_warmup(trunk, rates, warmup_steps)
    rates = learning_rates(trunk, num_steps)
    whole = learning_rates(trunk, max(np.size(trunk), 1))
    rate_peak = float(np.max(rates)) if peak is None else float(peak)
    return rates, rate_peak, resolve_warmup(trunk, whole, warmup_steps)


def branch_rates(trunk_rates: np.ndarray, branch: WSDSpec, peak: float) -> np.ndarray:
    """The rates of a run that follows the trunk up to the branch's first update, then ``branch``
    (counted in updates; a branch in tokens starts at the update its ``start_step`` is reached)."""
    at = branch.step_reaching(branch.start_step)
    end = schedule_end(branch)
    assert end is not None  # a branch of a trunk with a clock has its clock
    return np.concatenate([trunk_rates[:at], learning_rates(branch, end, peak=peak)[at:]])


def branch_in_updates(trunk: WSDSpec, at_step: int, length: int, shape: str, floor: float) -> WSDSpec:
    """``trunk.branch_cooldown`` of ``length`` updates from update ``at_step``: for a trunk counted in
    tokens or samples, the cooldown's length is the units those updates consume under its clock, so
    the branch ends at update ``at_step + length`` exactly."""
    cooldown = length
    if trunk.units != "steps":
        cooldown = int(trunk.units_at(at_step + length)) - int(trunk.units_at(at_step))
    return trunk.branch_cooldown(at_step, cooldown, decay_shape=shape, min_ratio=floor)
