"""Section 8, forecasts from a trunk alone: the planner's final-loss predictions, checked on real runs.

Each protocol fits the Multi-Power Law to what a user would have when a decision is due, predicts the
final loss of real cooldowns it did not see, and scores each prediction:

* **trunk + prior, other size**: the trunk alone, observed up to the cooldown's branch step, with a
  prior fitted to every run of another model size of the same data (published curves: 25M <-> 100M;
  Schaipp et al.: the next size of the same dataset).
* **trunk + prior, other dataset**: the same, with the prior from the same size trained on the other
  dataset (SlimPajama <-> OpenWebText2), or from the shipped published curves (another dataset, size,
  peak rate, and schedule family at once).
* **trunk + one cooldown**: the trunk and the shortest-budget cooldown, as ``wsd plan`` fits today.

Scores: PredE (the mean relative error over the held-out run's points after its branch step), the
final loss's relative error, whether the final loss is inside the 90% interval, and, where one budget
has several cooldowns (the published curves: two cooldowns of 20,000 + 4,000 updates, three constant
floors from step 8,000), the regret of the one the forecast ranks best: its measured final loss over
the best measured, minus 1. Schaipp et al.'s losses are single training batches (about 0.5% noise);
the intervals include the fit's own noise estimate.

``validation()`` computes every prediction; ``summary()`` the table of ``docs/planner.md``; ``rows()``
what ``python -m benchmarks`` reports.
"""

from __future__ import annotations

import dataclasses
import functools
import warnings
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from benchmarks._timing import Row
from wsd_plan import LossLawFit, LossRun, fit_loss_law, published_runs
from wsd_plan import published as data

PUBLISHED = ("lm-25M", "lm-100M")
# Published runs that branch off the constant trunk: (branch step, the cooldowns of one budget)
PUBLISHED_BRANCHES = ((20_000, ("wsd_20000_24000", "wsdld_20000_24000")),
                      (8_000, ("wsdcon_3", "wsdcon_9", "wsdcon_18")))  # fmt: skip
OTHER_SIZE = {"slimpajama-33M": "slimpajama-53M", "slimpajama-53M": "slimpajama-60M",
              "slimpajama-60M": "slimpajama-93M", "slimpajama-93M": "slimpajama-60M",
              "slimpajama-152M": "slimpajama-209M", "slimpajama-209M": "slimpajama-152M",
              "slimpajama-360M": "slimpajama-209M", "openwebtext2-60M": "openwebtext2-93M",
              "openwebtext2-93M": "openwebtext2-60M", "openwebtext2-166M": "openwebtext2-93M",
              "lm-25M": "lm-100M", "lm-100M": "lm-25M"}  # fmt: skip
OTHER_DATASET = {"slimpajama-60M": "openwebtext2-60M", "openwebtext2-60M": "slimpajama-60M",
                 "slimpajama-93M": "openwebtext2-93M", "openwebtext2-93M": "slimpajama-93M",
                 "slimpajama-152M": "openwebtext2-166M", "openwebtext2-166M": "slimpajama-152M"}  # fmt: skip
PROTOCOLS = ("trunk + prior, other size", "trunk + prior, other dataset", "trunk + published prior",
             "trunk + one cooldown")  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Scored:
    """One held-out cooldown's prediction."""

    protocol: str
    model: str
    prior: str  # the model the prior was fitted to ("" for none)
    run: str
    budget: int  # the run's length: cooldowns of one budget are compared for regret
    pred_e: float
    final_error: float  # predicted / measured - 1
    inside: bool
    half_width: float  # relative, of the 90% interval
    predicted: float
    measured: float


@functools.cache
def _fit_all(model: str) -> LossLawFit:
    """The prior a user of another model would pass: the law fit to every run of ``model``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fit_loss_law(list(published_runs(model).values()))


def trunk_until(run: LossRun, step: int) -> LossRun:
    """``run`` as observed up to ``step``: its rates and logged points until then."""
    keep = run.steps <= step
    return LossRun(run.lrs[: step + 1], run.steps[keep], run.losses[keep], run.warmup_steps, "trunk")


def _branches(model: str) -> list[tuple[int, list[LossRun]]]:
    """(branch step, the cooldowns that branch there) of ``model``'s trunk."""
    runs = published_runs(model)
    if model in PUBLISHED:
        return [(b, [runs[n] for n in names]) for b, names in PUBLISHED_BRANCHES]
    return [(branch_step(run), [run]) for name, run in runs.items() if name != "trunk"]


def branch_step(run: LossRun) -> int:
    """The last update at the peak: where a cooldown leaves its trunk."""
    w = run.warmup_steps
    return w + int(np.flatnonzero(np.diff(run.lrs[w:]) < 0)[0])


def _trunk(model: str) -> LossRun:
    runs = published_runs(model)
    return runs["constant_72000"] if model in PUBLISHED else runs["trunk"]


def _score(protocol: str, model: str, prior: str, fit: LossLawFit, run: LossRun, branch: int) -> Scored:
    after = run.steps > branch
    steps, measured = run.steps[after], run.losses[after]
    batch = fit.predict_batch([run.lrs], [steps], warmup_steps=run.warmup_steps)
    (low, high), predicted = batch.interval(0), batch.curves[0]
    end, measured_end = float(predicted[-1]), float(measured[-1])
    return Scored(
        protocol, model, prior, run.name or "", int(run.lrs.size),
        pred_e=float(np.mean(np.abs(predicted / measured - 1))), final_error=end / measured_end - 1,
        inside=bool(low[-1] <= measured_end <= high[-1]), half_width=float((high[-1] - low[-1]) / 2 / end),
        predicted=end, measured=measured_end,
    )  # fmt: skip


def _forecast(protocol: str, model: str, source: str | None) -> Iterable[Scored]:
    trunk, branches = _trunk(model), _branches(model)
    prior = None if source is None else _fit_all(source)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if protocol == "trunk + one cooldown":
            # the trunk and the cooldown of the shortest budget; the others are held out
            first = min((b for b in branches), key=lambda b: b[1][0].lrs.size)
            fit = fit_loss_law([trunk, first[1][0]])
            for branch, runs in branches:
                for run in runs:
                    if run is not first[1][0]:
                        yield _score(protocol, model, "", fit, run, branch)
            return
        for branch, runs in branches:
            fit = fit_loss_law([trunk_until(trunk, branch)], prior=prior)
            for run in runs:
                yield _score(protocol, model, source or "", fit, run, branch)


def validation(models: Sequence[str] = data.MODELS + data.SCHAIPP_MODELS) -> list[Scored]:
    """Every protocol's predictions on ``models``."""
    out: list[Scored] = []
    for model in models:
        out += _forecast(PROTOCOLS[0], model, OTHER_SIZE[model])
        if model in OTHER_DATASET:
            out += _forecast(PROTOCOLS[1], model, OTHER_DATASET[model])
        if model not in PUBLISHED:
            for source in PUBLISHED:
                out += _forecast(PROTOCOLS[2], model, source)
        out += _forecast(PROTOCOLS[3], model, None)
    return out


def regrets(scored: Sequence[Scored]) -> list[float]:
    """Per (protocol, model, prior, budget) with several cooldowns: the regret of the one ranked best."""
    groups: dict[tuple[str, str, str, int], list[Scored]] = defaultdict(list)
    for s in scored:
        groups[(s.protocol, s.model, s.prior, s.budget)].append(s)
    out = []
    for group in groups.values():
        if len(group) > 1:
            chosen = min(group, key=lambda s: s.predicted)
            out.append(chosen.measured / min(s.measured for s in group) - 1)
    return out


def summary(scored: Sequence[Scored]) -> list[dict[str, Any]]:
    """One line per (protocol, data set): counts, PredE, final error, coverage, width, regret."""
    lines = []
    for protocol in PROTOCOLS:
        for label, in_set in (("published (Luo et al.)", lambda m: m in PUBLISHED),
                              ("Schaipp et al.", lambda m: m not in PUBLISHED)):  # fmt: skip
            group = [s for s in scored if s.protocol == protocol and in_set(s.model)]
            if not group:
                continue
            r = regrets(group)
            lines.append({
                "protocol": protocol, "data": label, "n": len(group),
                "PredE": float(np.mean([s.pred_e for s in group])),
                "final": float(np.mean([abs(s.final_error) for s in group])),
                "coverage": float(np.mean([s.inside for s in group])),
                "half_width": float(np.median([s.half_width for s in group])),
                "regret_mean": float(np.mean(r)) if r else None,
                "regret_worst": float(np.max(r)) if r else None, "regret_n": len(r),
            })  # fmt: skip
    return lines


def markdown(lines: Sequence[dict[str, Any]]) -> str:
    """The table of ``docs/planner.md``."""
    pct = lambda v: "-" if v is None else f"{100 * float(v):.2f}%"
    out = [
        "| protocol | curves | n | PredE | final error | 90% coverage | median half-width "
        "| regret mean / worst (n) |",
        "|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for x in lines:
        regret = "-"
        if x["regret_n"]:
            regret = f"{pct(x['regret_mean'])} / {pct(x['regret_worst'])} ({x['regret_n']})"
        out.append(f"| {x['protocol']} | {x['data']} | {x['n']} | {pct(x['PredE'])} | {pct(x['final'])} | "
                   f"{100 * float(x['coverage']):.0f}% | {pct(x['half_width'])} | {regret} |")  # fmt: skip
    return "\n".join(out)


def rows() -> list[Row]:
    """What ``python -m benchmarks`` reports: per protocol and data set, coverage and regret."""
    found = validation()
    lines = summary(found)
    print(markdown(lines))
    why = "the issue's bar for a trunk alone with a prior: an interval and a choice are claims"
    out = []
    for x in lines:
        name, coverage = f"forecast, {x['protocol']}, {x['data']}", float(x["coverage"])
        out.append(Row("8 forecast", f"{name}: 90% coverage ({x['n']} cooldowns)", f"{coverage:.0%}",
                       ">= 80%", "met" if coverage >= 0.8 else "missed", why))  # fmt: skip
        if x["regret_n"]:
            worst = float(x["regret_worst"])
            out.append(Row("8 forecast", f"{name}: worst regret ({x['regret_n']} budgets)", f"{worst:.2%}",
                           "<= 0.3%", "met" if worst <= 0.003 else "missed", why))  # fmt: skip
    return out


if __name__ == "__main__":
    found = validation()
    for s in found:
        inside = "in " if s.inside else "OUT"
        print(f"{s.protocol:30s} {s.model:18s} {s.prior:18s} {s.run:18s} err {100 * s.final_error:+.2f}% "
              f"{inside} hw {100 * s.half_width:.2f}% PredE {100 * s.pred_e:.2f}%")  # fmt: skip
    print(markdown(summary(found)))
