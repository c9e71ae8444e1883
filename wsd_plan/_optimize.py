"""``optimize_cooldown``: the learning-rate sequence the fitted law predicts is best for a budget.

The law is differentiable in the rates, so the end of a run can be optimised directly, as the
Multi-Power Law paper did to find its optimal schedules: projected gradient descent on the rates of
the window ``[earliest, budget)``, everything before it being the trunk.

* **The final loss, exactly.** ``final_loss`` evaluates the law at the last update from the whole
  rate sequence in ``jax.numpy``: the drop term's sum over every drop (no blocks, unlike the
  planner's curves: one point needs ``budget`` terms), so ``jax.grad`` gives the gradient in every
  rate. It agrees with ``LossLawFit.predict`` at that step to the blocks' 1e-5 (tested).
* **The variables.** The window's rates are ``peak * x`` with ``x`` linearly interpolated between
  ``KNOTS`` evenly spaced knots (every step when the window is shorter): the optimum is smooth, and
  a projection over a few hundred knots costs nothing.
* **The constraint.** After each Adam step the knots are projected onto non-increasing sequences in
  ``[floor, 1]``: the Euclidean (isotonic) projection by pool-adjacent-violators, then a clip (which
  keeps them non-increasing). Linear interpolation keeps the rates non-increasing too.

The answer comes with what a plan needs to act on it: the predicted loss with its interval, the
best candidate of a grid of ``WSDSpec`` cooldowns (our shapes x lengths, at the same floor) with the
interval on the gain over it, and the ``WSDSpec`` closest to the optimal sequence.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Unpack

import jax
import jax.numpy as jnp
import numpy as np
import optax

from wsd_core import DECAY_SHAPES, WSDSpec
from wsd_core.backend import check_int, check_ratio, check_steps
from wsd_plan._fit import LossLawFit, float64_mode
from wsd_plan._grid import CooldownGrid, GridFields, grid_of
from wsd_plan._laws import LAWS, Drops
from wsd_plan._plan import CooldownCandidate, check_plan_size, plan_cooldown
from wsd_plan._runs import branch_rates, trunk_schedule
from wsd_plan._uncertainty import check_level

KNOTS = 256
ITERATIONS = 400
STEP_SIZE = 0.01  # Adam's, on rates as fractions of the peak
LENGTH_GRID = 24  # cooldown lengths tried for the grid and the closest spec


def final_loss(law: str, theta: jax.Array, lrs: jax.Array, warmup: int) -> jax.Array:
    """The law's loss after the last update of ``lrs`` (the rate of every update from step 0), exact:
    the same quantities as ``wsd_plan._features`` at one point, every drop its own term."""
    t = lrs.shape[0] - 1
    cum = jnp.cumsum(lrs)
    area = cum[t] - lrs[warmup]
    steps = jnp.arange(lrs.shape[0])
    previous = jnp.concatenate([lrs[:1], lrs[:-1]])
    drops = jnp.where(steps > warmup, previous - lrs, 0.0)
    spec = LAWS[law]
    params = dict(zip(spec.parameters, jnp.exp(theta), strict=True))
    power = params["L0"] + params["A"] * area ** (-params["alpha"])
    return power - spec.final_drop(params, Drops(lrs, cum, steps, drops, t))


def isotonic_non_increasing(y: np.ndarray) -> np.ndarray:
    """The non-increasing sequence closest to ``y`` in the Euclidean norm (pool adjacent violators)."""
    means: list[float] = []
    counts: list[int] = []
    for value in y.tolist():
        means.append(value)
        counts.append(1)
        while len(means) > 1 and means[-2] < means[-1]:  # a rise: pool the two blocks
            total = means[-2] * counts[-2] + means[-1] * counts[-1]
            counts[-2] += counts[-1]
            means[-2] = total / counts[-2]
            means.pop()
            counts.pop()
    return np.repeat(np.asarray(means), counts)


@dataclasses.dataclass(frozen=True, eq=False)
class OptimalCooldown:
    """The law-optimal end of a run of ``budget`` updates, and what it is worth.

    Attributes:
      budget: the run's number of updates.
      earliest: the first step whose rate could move (the window is ``[earliest, budget)``).
      lrs: the optimal rate of every update from step 0 (the trunk before ``earliest``).
      final_loss: the predicted final loss.
      low: the lower end of its interval (``level``).
      high: the upper end of its interval.
      grid_best: the best ``plan_cooldown`` candidate of our shapes and lengths at the same floor.
      gain_low: the lower end of the interval on ``grid_best``'s final loss minus the optimum's: the
        optimum is distinguishably better where ``gain_low > 0``.
      gain_high: the upper end of that interval.
      closest: the ``WSDSpec`` branch (from ``WSDSpec.branch_cooldown``) whose rates are closest to
        the optimal ones (least squares over the window), to train with our schedules directly.
      iterations: the projected-gradient steps taken.
    """

    budget: int
    earliest: int
    lrs: np.ndarray
    final_loss: float
    low: float
    high: float
    grid_best: CooldownCandidate
    gain_low: float
    gain_high: float
    closest: WSDSpec
    iterations: int

    @property
    def gain(self) -> float:
        """``grid_best.final_loss - final_loss``: what the optimum gains over the grid's best."""
        return self.grid_best.final_loss - self.final_loss

    def summary(self) -> str:
        """A few lines: the optimum, its interval, the gain over the grid and the closest spec."""
        c, g = self.closest, self.grid_best
        decided = "distinguishable" if self.gain_low > 0 else "not distinguishable from 0"
        gain = f"{self.gain:+.5f} [{self.gain_low:+.5f}, {self.gain_high:+.5f}] ({decided})"
        return "\n".join(
            [
                f"law-optimal end of a {self.budget}-update run (rates free from step {self.earliest}): "
                f"final loss {self.final_loss:.4f} [{self.low:.4f}, {self.high:.4f}]",
                f"best grid candidate: {g.shape} {g.length} from {g.at_step} {g.final_loss:.4f}; gain {gain}",
                f"closest WSDSpec: {c.decay_shape} decay of {c.decay_steps} updates from step "
                f"{c.start_step}, min_ratio {c.min_ratio:.3g}",
            ]
        )


class OptimizeOptions(GridFields, total=False):
    """``optimize_cooldown``'s keywords beside the grid: the run's ``budget`` and ``min_ratio`` (a
    grid of their own, compared against ``LENGTH_GRID`` lengths and every shape), the trunk's
    ``warmup_steps``, the ``earliest`` step whose rate may change, and the descent's ``iterations``."""

    budget: int
    min_ratio: float
    warmup_steps: int | None
    earliest: int | None
    iterations: int


def optimize_cooldown(
    fit: LossLawFit,
    trunk: Any,
    grid: CooldownGrid | None = None,
    *,
    peak: float | None = None,
    level: float = 0.9,
    **options: Unpack[OptimizeOptions],
) -> OptimalCooldown:
    """The non-increasing rates, at or above the floor, that minimise the law's predicted loss
    after a run's budget of updates, branching off ``trunk`` at or after ``earliest``; and how much
    better they are than the grid's best cooldown.

    Args:
      fit: a ``LossLawFit``.
      trunk: the trunk's ``WSDSpec`` (with ``peak``) or its per-step rates, at its peak over the window.
      grid: the run's one budget (``budgets``), its floor (the smallest of ``min_ratios``) and the
        cooldowns to compare the optimum with (``lengths`` x ``shapes``); or give ``budget=`` and
        ``min_ratio=`` (default 0) instead, compared with ``LENGTH_GRID`` lengths and every shape.
      peak: the trunk's stable rate (needed with a ``WSDSpec``).
      level: the probability of the intervals.
      options: ``budget`` and ``min_ratio`` (instead of a grid); ``earliest``, the first step whose
        rate may change (default: the end of the trunk's warmup); ``warmup_steps``, the trunk's warmup
        (None: the spec's, or up to the largest rate); ``iterations``, projected Adam steps.

    Examples:
      >>> params = dict(L0=3.0, A=0.5, alpha=0.5, B=400.0, C=2.0, beta=0.6, gamma=0.6)
      >>> fit = LossLawFit("multi-power", params, {}, 0.0)
      >>> best = optimize_cooldown(fit, WSDSpec(20_000, warmup_steps=500, decay_steps=0), peak=3e-4,
      ...                          budget=8000, earliest=4000, iterations=300)
      >>> bool(best.final_loss < best.grid_best.final_loss + 1e-4), best.lrs.shape
      (True, (8000,))
    """
    if not isinstance(fit, LossLawFit):
        raise TypeError(f"fit must be a LossLawFit (from fit_loss_law), got {type(fit).__name__}")
    earliest, warmup_steps = options.pop("earliest", None), options.pop("warmup_steps", None)
    iterations = check_int("iterations", options.pop("iterations", ITERATIONS), minimum=1)
    budget, floor, grid = _budget_and_floor(grid, options)
    check_plan_size(budget, "budget")
    level = check_level(level)
    trunk_rates, rate_peak, warmup = trunk_schedule(trunk, budget, peak, warmup_steps)
    start = _window_start(trunk_rates, rate_peak, warmup, budget, earliest)
    descent = _Descent(fit, trunk_rates[:start], rate_peak, warmup, budget - start)
    lrs = np.concatenate([trunk_rates[:start], rate_peak * descent.run(floor, iterations)])
    if grid is None:  # compared with cooldowns of every shape, spread over the window
        shapes = [s for s in DECAY_SHAPES if floor > 0 or s not in ("inverse", "geometric")]
        grid = CooldownGrid(
            lengths=_grid_lengths(budget - start), budgets=budget, shapes=shapes, min_ratios=floor
        )
    plan = plan_cooldown(
        fit, trunk, grid, peak=peak if isinstance(trunk, WSDSpec) else None, level=level, warmup_steps=warmup
    )
    grid_best = plan.best_for(budget)
    # the grid's best against the optimum, in one prediction: the optimum's interval and the gain's
    both = fit.predict_batch([branch_rates(trunk_rates, grid_best.spec, rate_peak), lrs],
                             [[budget - 1], [budget - 1]], warmup_steps=warmup)  # fmt: skip
    lows, highs = both.final_intervals(level)  # run 1 is the optimum
    gain_low, gain_high = both.difference_interval(0, 1, level)
    closest = min(
        (c.spec for c in plan.candidates),
        key=lambda spec: float(
            np.sum((branch_rates(trunk_rates, spec, rate_peak)[start:] - lrs[start:]) ** 2)
        ),
    )
    return OptimalCooldown(budget, start, lrs, float(both.final[1]), float(lows[1]), float(highs[1]),
                           grid_best, float(gain_low), float(gain_high), closest, iterations)  # fmt: skip


def _budget_and_floor(
    grid: CooldownGrid | None, options: Mapping[str, Any]
) -> tuple[int, float, CooldownGrid | None]:
    """The run's budget and floor, from the grid (its one budget, its smallest floor) or from
    ``budget`` and ``min_ratio`` (no grid: the comparison grid is made once the window is known)."""
    if grid is None and "lengths" not in options:
        if "budget" not in options:
            raise TypeError("give grid=CooldownGrid(budgets=..., lengths=...) or budget=")
        unknown = sorted(set(options) - {"budget", "min_ratio"})
        if unknown:
            raise TypeError(f"optimize_cooldown got {unknown} without lengths=: give a grid, or budget=")
        budget = check_steps("budget", options["budget"], minimum=2)
        return budget, check_ratio("min_ratio", options.get("min_ratio", 0.0)), None
    if "budget" in options or "min_ratio" in options:
        raise TypeError("give the budget and floor in the grid (budgets=, min_ratios=), or budget= alone")
    grid = grid_of(grid, options)
    if grid.budgets is None or len(grid.budgets) != 1:
        raise ValueError(f"the grid must hold one budget (the run to optimise), got {grid.budgets}")
    return check_steps("budget", grid.budgets[0], minimum=2), min(grid.min_ratios), grid


def _grid_lengths(window: int) -> list[int]:
    """``LENGTH_GRID`` cooldown lengths spread geometrically from 1% of the window to all of it."""
    return sorted({int(n) for n in np.geomspace(max(1, window // 100), window, LENGTH_GRID).round()})


def _window_start(trunk_rates: np.ndarray, rate_peak: float, warmup: int, budget: int, earliest: Any) -> int:
    """The first step whose rate may move: ``earliest`` (default the warmup's end), checked to leave a
    window ``[start, budget)`` in which the trunk is at its peak."""
    start = warmup if earliest is None else check_steps("earliest", earliest)
    if not warmup <= start < budget:
        raise ValueError(
            f"earliest must be in [{warmup}, {budget}) (after the trunk's warmup, before the budget), "
            f"got {start}"
        )
    window = trunk_rates[start:budget]
    off_peak = np.flatnonzero(~np.isclose(window, rate_peak))
    if off_peak.size:
        raise ValueError(
            f"the trunk's rate at step {start + off_peak[0]} is {window[off_peak[0]]:g}, not its peak "
            f"{rate_peak:g}: the window [{start}, {budget}) must be stable in the trunk"
        )
    return start


class _Descent:
    """Projected Adam on the window's rates, as fractions of the peak, through ``KNOTS`` knots."""

    def __init__(self, fit: LossLawFit, fixed: np.ndarray, peak: float, warmup: int, length: int) -> None:
        self.length, self.knots = length, min(KNOTS, length)
        self.at = np.linspace(0.0, self.knots - 1.0, length)  # each window step's position among the knots
        lo, frac = np.floor(self.at).astype(np.int64), self.at - np.floor(self.at)
        hi = np.minimum(lo + 1, self.knots - 1)
        with float64_mode():
            theta, fixed_j = fit.theta(), jnp.asarray(fixed)
            lo_j, hi_j, frac_j = jnp.asarray(lo), jnp.asarray(hi), jnp.asarray(frac)

            def loss(knot_values: jax.Array) -> jax.Array:
                x = knot_values[lo_j] * (1.0 - frac_j) + knot_values[hi_j] * frac_j
                return final_loss(fit.law, theta, jnp.concatenate([fixed_j, peak * x]), warmup)

            self.value_and_grad = jax.jit(jax.value_and_grad(loss))

    def run(self, floor: float, iterations: int) -> np.ndarray:
        """The best window rates found (fractions of the peak, one per step), from a flat start."""
        y = np.ones(self.knots)
        opt = optax.adam(STEP_SIZE)
        with float64_mode():
            state = opt.init(jnp.asarray(y))
            best_value, best_y = np.inf, y
            for _ in range(iterations):
                value, grad = self.value_and_grad(jnp.asarray(y))
                if float(value) < best_value:
                    best_value, best_y = float(value), y
                updates, state = opt.update(grad, state)
                y = np.clip(isotonic_non_increasing(np.asarray(y + np.asarray(updates))), floor, 1.0)
            value, _ = self.value_and_grad(jnp.asarray(y))
            if float(value) < best_value:
                best_y = y
        return np.interp(self.at, np.arange(self.knots), best_y)
