"""Section 7, the planner's intervals when the law may be the wrong one: synthetic truths.

Each truth is a loss law with known parameters; noisy "logged" losses are drawn from it for the runs a
user has (a WSD trunk and one cooldown, or the paper's three runs), a law is fit to them (the same law
as the truth, or the other one), and every cooldown of a plan is scored against the truth's exact
loss: is the true final loss inside its 90% interval, and of the pairs of one budget that the planner
calls distinguishable, how many are in the wrong order. Coverage is also reported per schedule (shape
and length), which an overall figure hides.

``calibration(...)`` computes the table; ``rows()`` is what ``python -m benchmarks`` reports, and
``markdown(...)`` the table of ``docs/planner.md``.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import warnings
from collections import defaultdict
from collections.abc import Iterable

import numpy as np

from benchmarks._timing import Row
from wsd_core import WSDSpec
from wsd_plan import LossLawFit, LossRun, branch_rates, fit_loss_law, learning_rates, published_runs
from wsd_plan import published as data

PEAK, WARMUP, LOG_EVERY = data.PEAK, data.WARMUP, 100
TRUNK = WSDSpec(60_000, warmup_steps=WARMUP, decay_steps=0)
BUDGETS, LENGTHS, MIN_RATIO = (24_000, 48_000), (1000, 3000, 6000, 12_000), 0.1
SHAPES = ("linear", "cosine", "1-sqrt")
# A strong drop term: the two laws disagree most on the shape of a cooldown here.
STRONG = {"L0": 3.0, "A": 0.52, "alpha": 0.5, "B": 400.0, "C": 2.0, "beta": 0.6, "gamma": 0.6}


@functools.cache
def truths() -> dict[str, LossLawFit]:
    """The synthetic truths: both laws fitted to the 25M model's paper-protocol runs, and a strong-drop
    Multi-Power Law."""
    runs = published_runs("lm-25M")
    found = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for law in ("multi-power", "annealing"):
            fit = fit_loss_law([runs[n] for n in data.PAPER_FIT], law)
            found[law] = LossLawFit(law, fit.params, {}, 0.0)
    found["multi-power, strong drop"] = LossLawFit("multi-power", STRONG, {}, 0.0)
    return found


def _observed(
    truth: LossLawFit, lrs: np.ndarray, noise: float, rng: np.random.Generator, name: str
) -> LossRun:
    steps = np.arange(WARMUP + LOG_EVERY, lrs.size, LOG_EVERY)
    clean = truth.predict(lrs, steps, warmup_steps=WARMUP)
    return LossRun(lrs=lrs, steps=steps, losses=clean * np.exp(noise * rng.standard_normal(steps.size)),
                   warmup_steps=WARMUP, name=name)  # fmt: skip


def _fitted_runs(protocol: str, truth: LossLawFit, noise: float, seed: int) -> list[LossRun]:
    """What a user has logged: the trunk's first 30,000 updates and one 4,000-update linear cooldown
    from 16,000, or the paper's three runs (cosine 24,000, constant 24,000, a step down to 9e-5)."""
    rng = np.random.default_rng(seed)
    if protocol == "trunk + one cooldown":
        trunk = learning_rates(TRUNK, 30_000, peak=PEAK)
        cooldown = TRUNK.branch_cooldown(16_000, 4000, decay_shape="linear", min_ratio=MIN_RATIO)
        schedules = {"trunk": trunk, "cooldown": branch_rates(trunk, cooldown, PEAK)}
    else:
        schedules = {name: data.published_rates(name) for name in data.PAPER_FIT}
    return [_observed(truth, lrs, noise, rng, name) for name, lrs in schedules.items()]


def _candidates() -> list[tuple[int, str, np.ndarray]]:
    """Every cooldown of the plan: (budget, schedule label, rates)."""
    trunk = learning_rates(TRUNK, max(BUDGETS), peak=PEAK)
    found = []
    for budget, length, shape in itertools.product(BUDGETS, LENGTHS, SHAPES):
        branch = TRUNK.branch_cooldown(budget - length, length, decay_shape=shape, min_ratio=MIN_RATIO)
        found.append((budget, f"{shape} {length}", branch_rates(trunk, branch, PEAK)))
    return found


@dataclasses.dataclass
class Tally:
    """One scenario's counts over its seeds."""

    covered: int = 0
    predictions: int = 0
    called: int = 0
    wrong: int = 0
    half_widths: list[float] = dataclasses.field(default_factory=list)
    per_schedule: dict[str, list[bool]] = dataclasses.field(default_factory=lambda: defaultdict(list))

    @property
    def coverage(self) -> float:
        return self.covered / self.predictions

    @property
    def worst_schedule(self) -> tuple[str, float]:
        label = min(self.per_schedule, key=lambda k: np.mean(self.per_schedule[k]))
        return label, float(np.mean(self.per_schedule[label]))


def score(fit: LossLawFit, truth: LossLawFit, tally: Tally) -> None:
    """Adds one fit's plan, scored against the truth, to ``tally``."""
    candidates = _candidates()
    ends = [[budget - 1] for budget, _, _ in candidates]  # the loss after the last update
    predicted = fit.predict_batch([lrs for _, _, lrs in candidates], ends, warmup_steps=WARMUP)
    true = truth.predict_batch([lrs for _, _, lrs in candidates], ends, warmup_steps=WARMUP).final
    low, high = predicted.final_intervals(0.9)
    for i, (_, label, _) in enumerate(candidates):
        inside = bool(low[i] <= true[i] <= high[i])
        tally.covered += inside
        tally.predictions += 1
        tally.per_schedule[label].append(inside)
        tally.half_widths.append(float((high[i] - low[i]) / (high[i] + low[i])))
    for a, b in itertools.combinations(range(len(candidates)), 2):
        if candidates[a][0] != candidates[b][0]:
            continue  # a plan compares cooldowns of one budget
        d_low, d_high = predicted.difference_interval(a, b, 0.9)
        if d_low > 0 or d_high < 0:
            tally.called += 1
            tally.wrong += int(np.sign(true[a] - true[b]) != np.sign(d_low))


def calibration(
    scenarios: Iterable[tuple[str, str, str, float]], seeds: int
) -> dict[tuple[str, str, str, float], Tally]:
    """Each scenario (truth, law fitted, protocol, noise) over ``seeds`` noise draws."""
    found = {}
    for truth_name, law, protocol, noise in scenarios:
        truth, tally = truths()[truth_name], Tally()
        for seed in range(seeds):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fit = fit_loss_law(_fitted_runs(protocol, truth, noise, seed), law)
                score(fit, truth, tally)
        found[truth_name, law, protocol, noise] = tally
    return found


PROTOCOLS = ("trunk + one cooldown", "paper")
SCENARIOS = [
    (truth, law, protocol, noise)
    for truth, law, protocol, noise in itertools.product(
        ("multi-power", "annealing", "multi-power, strong drop"),
        ("multi-power", "annealing"),
        PROTOCOLS,
        (4e-4, 2e-3),
    )
]


def markdown(table: dict[tuple[str, str, str, float], Tally]) -> str:
    """The table of docs/planner.md: one line a scenario."""
    lines = [
        "| truth | law fitted | runs fitted | noise | final loss in its 90% interval | worst schedule "
        "| median half-width | confident orders: wrong / called |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (truth, law, protocol, noise), t in table.items():
        label, worst = t.worst_schedule
        lines.append(
            f"| {truth} | {law} | {protocol} | {noise:.2%} | {t.coverage:.0%} ({t.predictions}) "
            f"| {label}: {worst:.0%} | {np.median(t.half_widths):.2%} | {t.wrong} / {t.called} |"
        )
    return "\n".join(lines)


def rows(seeds: int = 4) -> list[Row]:
    """The worst scenario's figures against the targets, right law and wrong law apart."""
    table = calibration(SCENARIOS, seeds)
    print(markdown(table))
    found = []
    why = "a confident order or an interval is a claim: it must hold when the law itself is wrong"
    for right in (True, False):
        picked = {k: t for k, t in table.items() if (truths()[k[0]].law == k[1]) == right}
        which = "right law" if right else "wrong law"
        coverage = min(t.coverage for t in picked.values())
        wrong = max(t.wrong / max(t.called, 1) for t in picked.values())
        called = sum(t.called for t in picked.values())
        found += [
            Row("7 planner", f"synthetic truths, {which}: worst scenario's final-loss coverage "
                f"({len(picked)} scenarios x {seeds} seeds)", f"{coverage:.0%}", ">= 80%",
                "met" if coverage >= 0.8 else "missed", why),
            Row("7 planner", f"synthetic truths, {which}: worst scenario's confident orders wrong ({called} "
                "called in all)", f"{wrong:.0%}", "<= 10%", "met" if wrong <= 0.1 else "missed", why),
        ]  # fmt: skip
    return found
