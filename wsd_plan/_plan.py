"""``plan_cooldown``: every candidate cooldown off a trunk, its predicted loss curve, ranked.

A WSD trunk can be cooled down from any stable checkpoint. The candidates are the product of the
branch steps, lengths, shapes and floors asked for; each is the ``WSDSpec`` that
``WSDSpec.branch_cooldown`` returns, so the winner is the exact schedule to train next. The fitted law
predicts each candidate's whole curve (trunk up to the branch, then the cooldown) in one batched
call, with an interval on its final loss (``LossLawFit.predict_interval``). Within a budget, a
candidate is marked as not distinguishable from the best when the interval on the difference of
their final losses (``LossLawFit.predict_difference``) contains 0.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import warnings
from typing import Any, Unpack

import numpy as np

from wsd_core import WSDSpec
from wsd_plan._fit import LossLawFit
from wsd_plan._grid import CooldownGrid, GridFields, grid_of
from wsd_plan._predictions import Predictions
from wsd_plan._runs import branch_in_updates, branch_rates, check_update_count, schedule_end, trunk_schedule
from wsd_plan._uncertainty import check_level
from wsd_plan.calibration import Calibration

CURVE_POINTS = 64  # predicted points per candidate curve (the final step is always one)


@dataclasses.dataclass(frozen=True, eq=False)
class CooldownCandidate:
    """One cooldown branched off the trunk, with its predicted loss.

    Attributes:
      spec: the branch, from ``WSDSpec.branch_cooldown`` (its ``start_step`` is the branch step).
      at_step: the branch step (the trunk's checkpoint the cooldown starts from).
      length: the cooldown's number of updates.
      shape: the cooldown's decay shape.
      min_ratio: the cooldown's floor, as a fraction of the peak.
      end_step: ``at_step + length``, the number of updates of the whole run.
      steps: the steps of the predicted curve (trunk and cooldown), ending at the last update.
      predicted: the predicted loss at each of ``steps``.
      final_loss: the predicted loss after the last update.
      low: the lower end of the interval on ``final_loss`` at the plan's ``level``.
      high: its upper end.
      distinguishable: whether its final loss is distinguishably worse than its budget's best (the
        interval on the difference excludes 0); False for the best itself.
      predicted_low: the lower end of the interval on the loss at each of ``steps`` (what a plot
        shades); None for a candidate built by hand.
      predicted_high: its upper end.
    """

    spec: WSDSpec
    at_step: int
    length: int
    shape: str
    min_ratio: float
    steps: np.ndarray
    # what the law predicts (a candidate is first made without, then given its prediction)
    predicted: np.ndarray = dataclasses.field(default_factory=lambda: np.empty(0))
    final_loss: float = math.nan
    low: float = math.nan
    high: float = math.nan
    distinguishable: bool = False
    predicted_low: np.ndarray | None = dataclasses.field(default=None, compare=False)
    predicted_high: np.ndarray | None = dataclasses.field(default=None, compare=False)

    @property
    def label(self) -> str:
        """The candidate in words, for an error about it."""
        where = f"from step {self.at_step} (floor {self.min_ratio:g})"
        return f"the {self.shape} cooldown of {self.length} {where}"

    @property
    def end_step(self) -> int:
        """``at_step + length``: the whole run's number of updates, its budget."""
        return self.at_step + self.length

    def __repr__(self) -> str:
        # one line: the default would print both curves, some 60 lines of arrays
        return (
            f"CooldownCandidate({self.shape} cooldown of {self.length} from step {self.at_step} to "
            f"{self.end_step}, min_ratio {self.min_ratio:g}: final loss {self.final_loss:.4f} "
            f"[{self.low:.4f}, {self.high:.4f}])"
        )

    @property
    def uncertainty(self) -> float:
        """Half the width of the interval on ``final_loss`` (the table's +-)."""
        return 0.5 * (self.high - self.low)


@dataclasses.dataclass(frozen=True)
class CooldownPlan:
    """Candidates grouped by the step they end at, each group ranked by predicted final loss.

    Runs that end at different steps cost different compute, so they are never ranked against each
    other: a longer cooldown that ends later would always win. ``best_for(B)`` is the best run of B
    updates; ``frontier()`` the best of every end step, i.e. what each extra step buys.

    Attributes:
      candidates: every ``CooldownCandidate``, by end step, then best first.
      level: the probability of every interval (0.9: 90%).
      law_error_scale: the fit's leave-one-run-out factor on the law's error (1: none needed).
      second_law: the law of the ``second_opinion`` fit, if one was given.
      calibration: the fit's calibration of its intervals (``wsd_plan.calibration``; None: model-based).
      second_best: per end step, the candidate the second law predicts best (where it differs from
        ``best_for(end)``, the two laws disagree: evidence that the answer is uncertain).
    """

    candidates: tuple[CooldownCandidate, ...]
    level: float
    law_error_scale: float
    second_law: str | None = None
    second_best: dict[int, CooldownCandidate] = dataclasses.field(default_factory=dict)
    calibration: Calibration | None = None

    def laws_agree(self, end_step: int) -> bool:
        """Whether the second law's best run of ``end_step`` updates is this plan's best (True when
        there is no second opinion)."""
        return end_step not in self.second_best or self.second_best[end_step] is self.best_for(end_step)

    @property
    def end_steps(self) -> tuple[int, ...]:
        """The steps the candidates end at (the budgets), ascending."""
        return tuple(sorted({c.end_step for c in self.candidates}))

    def ranking(self, end_step: int) -> tuple[CooldownCandidate, ...]:
        """The candidates that end at ``end_step``, best first."""
        found = tuple(c for c in self.candidates if c.end_step == end_step)
        if not found:
            raise ValueError(f"no candidate ends at step {end_step}; they end at {list(self.end_steps)}")
        return found

    def best_for(self, budget: int) -> CooldownCandidate:
        """The best candidate of ``budget`` updates (one that ends at that step)."""
        return self.ranking(budget)[0]

    def frontier(self) -> tuple[CooldownCandidate, ...]:
        """The best candidate of each end step, ascending: predicted loss against compute."""
        return tuple(self.best_for(end) for end in self.end_steps)

    @property
    def best(self) -> CooldownCandidate:
        """The best candidate of the largest budget (``best_for(max(end_steps))``)."""
        return self.best_for(self.end_steps[-1])

    def table(self) -> str:
        """Each end step's ranking as aligned text (``~``: not distinguishable from that end step's
        best), then the frontier."""
        head = ("rank", "branch at", "length", "shape", "min_ratio", "end step", "final loss", "+-", "")
        rows: list[tuple[str, ...]] = []
        for end in self.end_steps:
            ranked = self.ranking(end)
            rows.append((f"-- runs of {end} updates ({len(ranked)})",))
            rows.append(head)
            for i, c in enumerate(ranked, 1):
                tie = "~" if i > 1 and not c.distinguishable else ""
                rows.append((str(i), str(c.at_step), str(c.length), c.shape, f"{c.min_ratio:g}",
                             str(end), f"{c.final_loss:.4f}", f"{c.uncertainty:.4f}", tie))  # fmt: skip
            if end in self.second_best:
                other = self.second_best[end]
                rank = ranked.index(other) + 1
                verdict = (
                    "agrees" if rank == 1 else f"DISAGREES: the {self.second_law} law prefers rank {rank}"
                )
                if rank > 1:
                    verdict += " (~ here)" if not other.distinguishable else " (distinguishably worse here)"
                rows.append((f"   second opinion ({self.second_law} law): {verdict}",))
        table = [r for r in rows if len(r) > 1]
        widths = [max(len(r[k]) for r in table) for k in range(len(head))]
        lines = [
            r[0] if len(r) == 1 else "  ".join(v.rjust(w) for v, w in zip(r, widths, strict=True)).rstrip()
            for r in rows
        ]
        lines.append("-- the frontier: the best run of each budget")
        previous = None
        for c in self.frontier():
            gain = ""
            if previous is not None:
                per_k = (c.final_loss - previous.final_loss) / (c.end_step - previous.end_step) * 1000
                gain = f"  ({per_k:+.4f} per 1000 more updates)"
            lines.append(f"{c.end_step:>10}: {c.shape} {c.length} from {c.at_step}  {c.final_loss:.4f}{gain}")
            previous = c
        scale = ""
        if self.law_error_scale > 1:
            scale = f", widened {self.law_error_scale:.2f}x by leaving each fitted run out"
        if self.calibration is None:
            sources = (
                f"parameters, noise, the law's own error{scale}, and how far the other law fitted to the "
                "same runs predicts otherwise"
            )
        else:
            sources = f"calibrated on held-out models for a fit of {self.calibration.protocol}"
        lines.append(
            f"+-: half the {self.level:.0%} interval on the final loss ({sources}); ~ marks "
            "a candidate not distinguishable from its budget's best"
        )
        return "\n".join(lines)


class PlanOptions(GridFields, total=False):
    """``plan_cooldown``'s keywords beside the grid: the grid's own fields (which build one), the
    trunk's warmup, and a second opinion."""

    warmup_steps: int | None
    second_opinion: LossLawFit | None


def plan_cooldown(
    fit: LossLawFit,
    trunk: Any,
    grid: CooldownGrid | None = None,
    *,
    peak: float | None = None,
    level: float = 0.9,
    **options: Unpack[PlanOptions],
) -> CooldownPlan:
    """Predicts and ranks every cooldown of the ``grid`` off the trunk.

    Args:
      fit: a ``LossLawFit`` (from ``fit_loss_law`` on runs of the same model and data).
      trunk: the trunk's ``WSDSpec`` (with ``peak``), or its per-step rates (an array covering every
        branch step; the branch then decays from the trunk's rate at the branch step, which must be
        its peak, ``peak`` if given).
      grid: the ``CooldownGrid`` of cooldowns to consider, with ``budgets`` (each cooldown of
        ``length`` branches at ``budget - length``, skipped where that is inside the warmup) or
        ``at_steps``; or give its fields as keywords (``lengths=``, ``budgets=``, ...).
      peak: the trunk's stable rate (needed with a ``WSDSpec``).
      level: the probability of the intervals on final losses and on their differences.
      options: the grid's fields instead of ``grid``; ``warmup_steps``, the trunk's warmup (None: the
        spec's, or up to the largest rate); ``second_opinion``, a fit of another law to the same runs
        (e.g. ``fit_loss_law(runs, "annealing")``): the plan then says, per budget, whether that law
        picks the same best run.

    Returns:
      A ``CooldownPlan``; ``plan.table()`` prints it, ``plan.best_for(budget).spec`` is the schedule
      to run for a run of ``budget`` updates (``plan.best`` is the largest budget's).

    Examples:
      >>> from wsd_core import WSDSpec
      >>> params = dict(L0=3.0, A=0.5, alpha=0.5, B=400.0, C=2.0, beta=0.6, gamma=0.6)
      >>> fit = LossLawFit("multi-power", params, {"a run": {"FinalE": 0.001}}, 0.0)  # or fit_loss_law
      >>> trunk = WSDSpec(30_000, warmup_steps=2000, decay_steps=0)
      >>> grid = CooldownGrid(budgets=[22_000, 24_000], lengths=[2000, 4000], shapes=["linear", "1-sqrt"],
      ...                     min_ratios=0.1)
      >>> plan = plan_cooldown(fit, trunk, grid, peak=3e-4)
      >>> [(c.at_step, c.shape, round(c.final_loss, 3)) for c in plan.ranking(24_000)]  # 24,000 updates
      [(22000, '1-sqrt', 3.102), (20000, 'linear', 3.102), (20000, '1-sqrt', 3.103), (22000, 'linear', 3.104)]
      >>> [(c.end_step, round(c.final_loss, 3)) for c in plan.frontier()]  # what 2000 more updates buy
      [(22000, 3.111), (24000, 3.102)]
      >>> plan.best_for(24_000).spec.start_step, plan.best_for(24_000).spec.decay_steps
      (22000, 2000)
    """
    _check_fit("fit", fit)
    level = check_level(level)
    warmup_steps = options.pop("warmup_steps", None)
    second_opinion = options.pop("second_opinion", None)
    grid = grid_of(grid, options)
    if grid.budgets is None and grid.at_steps is None:
        raise TypeError(
            "give budgets= (runs of that many updates: the branch is at budget - length) or at_steps= "
            "(branch off these checkpoints): exactly one of them, got neither"
        )
    check_plan_size(max(a + n for a, n in grid.pairs) if grid.pairs else max(grid.budgets or (1,)))
    last_branch = max(max((a for a, _ in grid.pairs), default=0), 1)
    trunk_rates, rate_peak, warmup = trunk_schedule(trunk, last_branch, peak, warmup_steps)
    pairs = grid.pairs_after(warmup)
    _warn_if_far(fit, rate_peak)
    branches = _branches(trunk, trunk_rates, rate_peak, warmup, pairs, grid)
    predictions = _predict(fit, branches, trunk_rates, rate_peak, warmup)
    ranked = _ranked(branches, predictions, level)
    second_best: dict[int, CooldownCandidate] = {}
    if second_opinion is not None:
        _check_fit("second_opinion", second_opinion)
        other = _predict(second_opinion, branches, trunk_rates, rate_peak, warmup).final
        for end in {b.end_step for b in branches}:
            mine = [i for i, b in enumerate(branches) if b.end_step == end]
            second_best[end] = ranked[min(mine, key=lambda i: other[i])]
    candidates = tuple(sorted(ranked.values(), key=lambda c: (c.end_step, c.final_loss)))
    law = second_opinion.law if second_opinion else None
    return CooldownPlan(candidates, level, fit.law_error_scale, law, second_best, fit.calibration)


BYTES_PER_UPDATE = 40  # the trunk's and a branch's rates, the cumulative sums and a step index


def check_plan_size(last_update: int, what: str = "budgets") -> None:
    """Refuses, before anything is allocated, a plan whose runs are counted in the billions (tokens
    given where updates are meant) or whose rate arrays would not fit in the memory available."""
    check_update_count(last_update, what)
    need, available = BYTES_PER_UPDATE * last_update, _available_memory()
    if available is not None and need > available:
        raise ValueError(
            f"{what} reach update {last_update:,}: the plan's rate arrays need about {need / 2**30:.1f} GiB, "
            f"and {available / 2**30:.1f} GiB of memory is available; plan shorter runs"
        )


def _available_memory() -> int | None:
    """The memory available to a new allocation (Linux's MemAvailable), or None where unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _check_fit(name: str, fit: Any) -> None:
    if not isinstance(fit, LossLawFit):
        raise TypeError(f"{name} must be a LossLawFit (from fit_loss_law), got {type(fit).__name__}")


def _branches(
    trunk: Any, trunk_rates: np.ndarray, rate_peak: float, warmup: int, pairs: list[tuple[int, int]],
    grid: CooldownGrid,
) -> list[CooldownCandidate]:  # fmt: skip
    """Every candidate of the grid, before prediction: each pair, shape and floor, as the spec
    ``branch_cooldown`` returns, with the steps to predict."""
    # A rate trunk gets a stand-in spec that is stable everywhere: branch_cooldown then checks only
    # the step (the rates themselves are checked here).
    last_branch = max(max(a for a, _ in pairs), 1)
    end = schedule_end(trunk) if isinstance(trunk, WSDSpec) else None
    if end is not None and last_branch > end:  # (inside its decay: branch_cooldown says)
        late = sorted({a for a, _ in pairs if a > end})
        raise ValueError(
            f"cannot branch at step(s) {late}: past the trunk's end at step {end} (its last stable step is "
            f"{trunk.step_reaching(trunk.decay_starts[-1])}); extend the trunk (WSDSpec.extend) or plan "
            "shorter budgets"
        )
    trunk_spec = trunk if isinstance(trunk, WSDSpec) else WSDSpec(last_branch + 1, decay_steps=0)
    branches = []
    for (at, length), shape, floor in itertools.product(pairs, grid.shapes, grid.min_ratios):
        spec = branch_in_updates(trunk_spec, at, length, shape, floor)
        if not isinstance(trunk, WSDSpec) and at > 0 and not np.isclose(trunk_rates[at - 1], rate_peak):
            raise ValueError(
                f"cannot branch at step {at}: the trunk's rate there is {trunk_rates[at - 1]:g}, not its "
                f"peak {rate_peak:g}; branch from a stable step"
            )
        finish = at + length
        # half the points on the trunk, half on the cooldown: a short cooldown is drawn smoothly too
        start = min(warmup, finish - 1)
        half = CURVE_POINTS // 2
        branch = max(at, start)
        steps = np.concatenate([np.linspace(start, branch, half), np.linspace(branch, finish - 1, half)])
        branches.append(
            CooldownCandidate(spec, at, length, shape, floor, np.unique(steps.round().astype(np.int64)))
        )
    return branches


def _predict(
    fit: LossLawFit, branches: list[CooldownCandidate], trunk_rates: np.ndarray, rate_peak: float, warmup: int
) -> Predictions:
    """Every branch's curve in one batched call; each branch's rates are made as they are read."""
    rates = (branch_rates(trunk_rates, b.spec, rate_peak) for b in branches)
    return fit.predict_batch(rates, [b.steps for b in branches], warmup_steps=warmup,
                             labels=[b.label for b in branches])  # fmt: skip


def _ranked(
    branches: list[CooldownCandidate], predictions: Predictions, level: float
) -> dict[int, CooldownCandidate]:
    """Each branch's ``CooldownCandidate`` (by branch index): its interval, and whether it is
    distinguishably worse than the best of its end step."""
    final = predictions.final
    best_of: dict[int, int] = {}  # end step -> index of its best branch
    for i in sorted(range(len(branches)), key=lambda i: (branches[i].end_step, final[i])):
        best_of.setdefault(branches[i].end_step, i)
    out = {}
    for i, b in enumerate(branches):
        best = best_of[b.end_step]
        worse = i != best and predictions.difference_interval(i, best, level)[0] > 0
        low, high = predictions.interval(i, level)  # at every step: the final one is the table's
        out[i] = dataclasses.replace(
            b, predicted=predictions.curves[i], final_loss=float(final[i]), low=float(low[-1]),
            high=float(high[-1]), distinguishable=bool(worse), predicted_low=low, predicted_high=high,
        )  # fmt: skip
    return out


def _warn_if_far(fit: LossLawFit, peak: float) -> None:
    """A plan at a peak rate far from the ones the law was fit on extrapolates: say how far."""
    if fit.fitted_peaks is None:
        return
    low, high = fit.fitted_peaks
    ratio = peak / high if peak > high else low / peak if peak < low else 1.0
    if ratio > 2.0:
        warnings.warn(
            f"the plan's peak rate {peak:g} is {ratio:.1f}x {'above' if peak > high else 'below'} the "
            f"peaks the law was fit on ({low:g} to {high:g}): its predictions extrapolate",
            UserWarning,
            stacklevel=3,
        )
