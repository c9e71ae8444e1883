"""``Forecast``: "what would my model be if I cooled down now?", answered as the trunk trains.

A ``Forecast`` holds the trunk's schedule, a prior (an earlier fit: ``fit_loss_law(prior=)``) and
the losses observed so far. Asking for an answer (``now``, ``plan``, ``fit``) fits the law to the
observations, once per new observation: warm-started from the previous fit, so a refit of a
growing log takes a few solver iterations (a full refit from the starting grid runs whenever the
log has doubled since the last one, so a warm start never strays far). Observing costs an append:
the fit never runs on a training step's path, only when an answer is asked for.

Framework-free: the Lightning and Hugging Face callbacks (``wsd_plan.lightning``,
``wsd_plan.transformers``) feed one and log its answers.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import sys
import warnings
from typing import Any, SupportsFloat, Unpack

import numpy as np

from wsd_core import WSDSpec
from wsd_core.backend import as_list, as_scalar, check_choice, check_int, check_real, require_clock
from wsd_plan._fit import LossLawFit, fit_loss_law, load_prior
from wsd_plan._grid import CooldownGrid, GridFields, grid_of
from wsd_plan._ladder import ModelLadder
from wsd_plan._laws import LAWS
from wsd_plan._least_squares import MIN_POINTS
from wsd_plan._plan import CooldownCandidate, CooldownPlan, plan_cooldown
from wsd_plan._runs import LossRun, learning_rates, schedule_end

# Whether this process has fitted a forecast yet: its first fit compiles the law's solver (5-20 s on
# a CPU), which is said in one line so that a run's first evaluation does not pause without a word.
_compiled = False


def _say_the_first_compile() -> None:
    global _compiled
    if not _compiled:
        _compiled = True
        print("wsd_plan: the first forecast compiles the law's solver (about 5-20 s, once per process)",
              file=sys.stderr, flush=True)  # fmt: skip


class Forecast:
    """The final loss of cooling down from the last observed step, and the best cooldown per budget,
    from a trunk observed so far and a prior.

    Args:
      trunk: the run's schedule (a ``WSDSpec``): the rate of every update observed comes from it.
      peak: the trunk's stable learning rate.
      prior: an earlier fit (a ``LossLawFit``, or the path of one saved with ``LossLawFit.to_json``)
        whose drop term stands in for what the trunk cannot determine yet (``fit_loss_law(prior=)``),
        or a ``ModelLadder`` of fits of other model sizes (or the path of a saved one).
        None: the observations must include an LR drop, as for ``fit_loss_law``.
      law: the loss-curve law to fit (``"multi-power"`` or ``"annealing"``).

    Examples:
      >>> from wsd_core import WSDSpec
      >>> prior = LossLawFit("multi-power", dict(L0=3.0, A=0.5, alpha=0.5, B=400.0, C=2.0, beta=0.6,
      ...                    gamma=0.6), {}, 0.0, fitted_peaks=(3e-4, 3e-4))
      >>> trunk = WSDSpec(100_000, warmup_steps=1000, decay_steps=0)
      >>> forecast = Forecast(trunk, peak=3e-4, prior=prior)
      >>> steps = np.arange(1100, 20_001, 100)
      >>> forecast.observe(steps, prior.predict(trunk, steps, peak=3e-4))  # a log, all at once
      >>> [(c.length, round(c.final_loss, 2)) for c in forecast.now(lengths=[2000, 4000])]
      [(2000, 3.1), (4000, 3.09)]
      >>> forecast.plan(CooldownGrid(lengths=[3000, 6000], budgets=30_000)).best_for(30_000).length
      3000
    """

    def __init__(
        self, trunk: WSDSpec, *, peak: SupportsFloat,
        prior: LossLawFit | ModelLadder | str | os.PathLike | None = None, law: str = "multi-power",
    ) -> None:  # fmt: skip
        if not isinstance(trunk, WSDSpec):
            raise TypeError(f"trunk must be a WSDSpec (the run's schedule), got {type(trunk).__name__}")
        require_clock(trunk, where="Forecast")  # a trunk in tokens is read through its clock
        self.trunk, self.peak = (
            trunk,
            check_real("peak (the trunk's stable learning rate)", peak, positive=True),
        )
        self.law = check_choice("law", law, LAWS)
        self.prior = load_prior(prior)
        end = schedule_end(trunk)
        assert end is not None  # (require_clock: a trunk in tokens has its clock)
        self.end: int = end  # the update at which the trunk ends: nothing to observe past it
        self._steps: list[int] = []
        self._losses: list[float] = []
        self._fit: LossLawFit | None = None
        self._fitted_points = 0  # observations in self._fit
        self._full_refit_points = 0  # observations at the last fit from the starting grid

    def observe(self, step: Any, loss: Any) -> None:
        """Records the loss logged at ``step`` (the number of updates done), or a log at once
        (``step`` and ``loss`` two sequences of one length). A numpy or jax scalar is a number.

        Steps must increase. A step at or before the last observed one means the run restarted from
        a checkpoint: the observations from that step on are replaced (a resumed log's later values
        are the ones to keep), with a warning naming how many. Every step and loss is checked before
        any is recorded: a log with one bad value records nothing.
        """
        steps, losses = self._checked(step, loss)
        for s, value in zip(steps, losses, strict=True):
            self._record(s, value)

    def _checked(self, step: Any, loss: Any) -> tuple[list[int], list[float]]:
        """``observe``'s arguments checked in full: update counts before the trunk's end, in increasing
        order within one call, with finite losses > 0."""
        steps = [check_int("step", s, minimum=0) for s in as_list(step)]
        losses = [as_scalar(x) for x in as_list(loss)]
        if len(steps) != len(losses):
            raise ValueError(
                f"step and loss must be two numbers or two sequences of one length, got {len(steps)} "
                f"step(s) and {len(losses)} loss(es)"
            )
        for s, value in zip(steps, losses, strict=True):
            check_real(f"loss at step {s}", value, positive=True)
            if s >= self.end:
                total = f"trunk.total_steps = {self.trunk.total_steps}"
                if self.trunk.units != "steps" or self.trunk.start_step:
                    total += f" {self.trunk.units}, from {self.trunk.start_step}: update {self.end}"
                raise ValueError(
                    f"step {s} is {'at' if s == self.end else 'past'} the trunk's end ({total}): there is "
                    "no cooldown to forecast from it; give the Forecast the trunk it trains with"
                )
        if any(b <= a for a, b in itertools.pairwise(steps)):
            raise ValueError(f"the steps of one log must increase, got {steps[:8]}...")
        return steps, [float(x) for x in losses]

    def _record(self, step: int, loss: float) -> None:
        if self._steps and step <= self._steps[-1]:
            keep = int(np.searchsorted(self._steps, step))
            warnings.warn(
                f"step {step} was observed before (the run resumed from a checkpoint?): the "
                f"{len(self._steps) - keep} observation(s) from step {step} on are replaced",
                UserWarning,
                stacklevel=4,
            )
            del self._steps[keep:], self._losses[keep:]
            self._fit, self._fitted_points, self._full_refit_points = None, 0, 0
        self._steps.append(step)
        self._losses.append(loss)

    @property
    def last_step(self) -> int:
        """The last observed step (an error before any observation)."""
        if not self._steps:
            raise ValueError("no loss observed yet: call observe(step, loss) first")
        return self._steps[-1]

    @property
    def warmup_end(self) -> int:
        """The update at which the trunk's warmup ends: losses before it are not fitted."""
        return self.trunk.step_reaching(self.trunk.start_step + self.trunk.warmup_steps)

    @property
    def ready(self) -> bool:
        """Whether enough losses are observed after the warmup to fit (as many as the law has
        parameters): the callbacks log nothing before."""
        warmup = self.warmup_end
        return sum(s >= warmup for s in self._steps) >= max(len(LAWS[self.law].parameters), 3)

    def run(self) -> LossRun:
        """The observations so far as a ``LossRun`` (rates from the trunk)."""
        last = self.last_step
        if last < self.warmup_end:
            raise ValueError(
                f"the trunk is still in its warmup (update {last:,} of {self.warmup_end:,}): nothing to "
                "forecast yet"
            )
        rates = learning_rates(self.trunk, last + 1, peak=self.peak)
        return LossRun(rates, np.asarray(self._steps), np.asarray(self._losses), self.warmup_end, "trunk")

    def _fitted_run(self) -> LossRun:
        """``run()`` thinned to at most ``MIN_POINTS`` points after the warmup, evenly spread over the
        log and always with its last: a long log says no more about three power-law parameters than
        that, and a fixed size keeps the compiled solver (``_least_squares.MIN_POINTS``)."""
        run = self.run().after_warmup()
        if run.steps.size <= MIN_POINTS:
            return run
        keep = np.unique(np.linspace(run.steps.size - 1, 0, MIN_POINTS).round().astype(int))
        return LossRun(run.lrs, run.steps[keep], run.losses[keep], run.warmup_steps, run.name)

    @property
    def fit(self) -> LossLawFit:
        """The law fitted to the observations so far (refitted when there are new ones)."""
        if self._fit is None or self._fitted_points != len(self._steps):
            full = self._fit is None or len(self._steps) >= 2 * self._full_refit_points
            run = self._fitted_run()
            _say_the_first_compile()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a forecast's notes are in fit.notes
                try:
                    self._fit = fit_loss_law(
                        [run], self.law, prior=self.prior, start=None if full else self._fit
                    )
                except RuntimeError:  # the last fit predicts no finite loss for the new points: regrid
                    full = True
                    self._fit = fit_loss_law([run], self.law, prior=self.prior)
            self._fitted_points = len(self._steps)
            if full:
                self._full_refit_points = len(self._steps)
        return self._fit

    def now(
        self, grid: CooldownGrid | None = None, *, level: float = 0.9, **fields: Unpack[GridFields]
    ) -> tuple[CooldownCandidate, ...]:
        """Cooling down from the last observed step: each cooldown of the grid's ``lengths`` x
        ``shapes`` x ``min_ratios`` (its budgets, if any, are not used), with its predicted final loss
        and interval at ``level``, by length then best first (``CooldownCandidate``: ``final_loss``,
        ``low``, ``high``, ``spec``). Give a ``CooldownGrid`` or its fields (``lengths=...``)."""
        plan = self.plan(grid_of(grid, fields).at(self.last_step), level=level)
        return tuple(sorted(plan.candidates, key=lambda c: (c.length, c.final_loss)))

    def plan(
        self, grid: CooldownGrid | None = None, *, level: float = 0.9, **fields: Unpack[GridFields]
    ) -> CooldownPlan:
        """The best cooldown of each budget of the grid off this trunk (or from each of its
        ``at_steps``), as ``plan_cooldown`` ranks them with the current fit:
        ``plan.best_for(budget).spec`` is the exact schedule to run."""
        if grid is not None and not isinstance(grid, CooldownGrid):  # plan([budgets], ...) of 0.2.dev
            warnings.warn("Forecast.plan(budgets, ...) is deprecated and goes in 0.3: use plan(budgets=...) "
                          "or plan(CooldownGrid(...))", DeprecationWarning, stacklevel=2)  # fmt: skip
            grid, fields = None, {**fields, "budgets": grid}
        return plan_cooldown(self.fit, self.trunk, grid_of(grid, fields), peak=self.peak, level=level)

    def metrics(
        self, grid: CooldownGrid | None = None, *, level: float = 0.9, prefix: str = "forecast/",
        **fields: Unpack[GridFields],
    ) -> dict[str, float]:  # fmt: skip
        """What the callbacks log, as scalars by name: for each of the grid's ``lengths``, the best
        cooldown of that length from the last observed step (``now_<length>``, with ``_low`` and
        ``_high``, its interval at ``level``); for each of its ``budgets`` not yet passed, its best
        cooldown's predicted final loss, branch step and length (``best_<budget>``, ``_branch``,
        ``_length``; a branch step already passed needs a checkpoint kept there)."""
        grid = grid_of(grid, fields)
        out: dict[str, float] = {}
        now = self.now(grid, level=level)
        for length in grid.lengths:
            best = min((c for c in now if c.length == length), key=lambda c: c.final_loss)
            out.update({f"{prefix}now_{length}": best.final_loss, f"{prefix}now_{length}_low": best.low,
                        f"{prefix}now_{length}_high": best.high})  # fmt: skip
        ahead = [b for b in grid.budgets or () if b > self.last_step]
        if ahead:
            plan = self.plan(dataclasses.replace(grid, budgets=tuple(ahead)), level=level)
            for budget in ahead:
                best = plan.best_for(budget)
                out.update({f"{prefix}best_{budget}": best.final_loss,
                            f"{prefix}best_{budget}_branch": float(best.at_step),
                            f"{prefix}best_{budget}_length": float(best.length)})  # fmt: skip
        return out

    def state_dict(self) -> dict[str, Any]:
        """The observations, to save with a checkpoint (``load_state_dict`` restores them)."""
        return {"steps": list(self._steps), "losses": list(self._losses)}

    def load_state_dict(self, state: Any) -> None:
        """Replaces the observations with those of ``state_dict()``, checked in full first (as
        ``observe`` checks): a state that is refused leaves the observations as they were."""
        if not isinstance(state, dict) or sorted(state) != ["losses", "steps"]:
            found = sorted(state) if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"a Forecast state is a dict of 'steps' and 'losses', got {found}")
        steps, losses = self._checked(state["steps"], state["losses"])
        self._steps, self._losses = steps, losses
        self._fit, self._fitted_points, self._full_refit_points = None, 0, 0
