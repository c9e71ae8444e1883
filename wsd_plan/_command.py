"""What ``wsd plan`` runs (its arguments are declared in ``wsd_plan._cli``): read the runs
(``wsd_plan._loading``), fit a law, plan the cooldowns, print and plot.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from wsd_core import WSDSpec
from wsd_plan._fit import LossLawFit, fit_loss_law, load_prior
from wsd_plan._ladder import ModelLadder
from wsd_plan._laws import LAWS
from wsd_plan._loading import load_run, read_schedule
from wsd_plan._logs import LogError
from wsd_plan._optimize import OptimalCooldown, optimize_cooldown
from wsd_plan._plan import CooldownCandidate, CooldownPlan, plan_cooldown
from wsd_plan._runs import LossRun

__all__ = ["read_schedule", "run_plan"]


def _run(files: list[str], args: argparse.Namespace, name: str | None = None) -> LossRun:
    """A run from ``--run LOG [SCHEDULE]`` (``load_run`` with the command's options)."""
    if not 1 <= len(files) <= 2:
        raise LogError(f"--run takes a LOG and optionally its SCHEDULE, got {len(files)} files: {files}")
    return load_run(files[0], files[1] if len(files) == 2 else None, peak=args.peak,
                    warmup_steps=args.warmup_steps, step_column=args.step_column,
                    loss_column=args.loss_column, lr_column=args.lr_column, name=name)  # fmt: skip


def run_names(logs: Sequence[str]) -> list[str]:
    """Each log's run name: its file name without the suffix, or where two logs share one (``a/export.csv``
    and ``b/export.csv``), its path without the suffix. The same log given twice keeps one name, and
    the fit refuses it."""
    stems = [Path(log).stem for log in logs]
    return [
        stem if stems.count(stem) == 1 else str(Path(log).with_suffix(""))
        for stem, log in zip(stems, logs, strict=True)
    ]


@contextlib.contextmanager
def stage(what: str) -> Iterator[None]:
    """Says on stderr what is being done and, when done, how long it took: the report itself goes to
    stdout, so progress never mixes into output that is piped or saved."""
    print(f"{what} ...", end="", file=sys.stderr, flush=True)
    start = time.perf_counter()
    # warnings raised meanwhile (a fit's notes) are shown after the stage's line ends, not inside it
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        try:
            yield
        except BaseException:
            print(" failed", file=sys.stderr, flush=True)  # the error's own message follows on its line
            raise
    print(f" {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)
    for w in caught:
        print(f"  warning: {w.message}", file=sys.stderr, flush=True)


# ``wsd plan --published``: the WSD protocol on the shipped curves (a trunk and one cooldown)
PUBLISHED_FIT = ("constant_24000", "wsd_20000_24000")


def published_inputs(args: argparse.Namespace) -> tuple[list[LossRun], list[LossRun], WSDSpec]:
    """``--published MODEL``: its trunk and geometric cooldown to fit on, its other runs held out, and
    a trunk as long as its longest run; sets ``args.peak`` and ``args.warmup_steps`` to its own."""
    from wsd_plan import published

    with stage(f"reading the published {args.published} curves shipped with the package"):
        runs = published.published_runs(args.published)
    args.peak, args.warmup_steps = published.PEAK, published.WARMUP
    fitted = [runs[n] for n in PUBLISHED_FIT]
    held_out = [runs[n] for n in sorted(runs) if n not in PUBLISHED_FIT]
    longest = max(r.lrs.size for r in runs.values())
    return fitted, held_out, WSDSpec(longest, warmup_steps=published.WARMUP, decay_steps=0)


def read_prior(path: str | None) -> LossLawFit | ModelLadder | None:
    """``--prior FIT.json``: a fit saved by ``wsd fit --save`` (``LossLawFit.to_json``), or a
    ladder saved by ``wsd fit --ladder``."""
    if path is None:
        return None
    with stage(f"reading the prior {path}"):
        return load_prior(path, name="--prior")


def run_fit(args: argparse.Namespace) -> list[str]:
    """``wsd fit``: fits the runs (or every run of a shipped model), reports, and saves with --save."""
    if args.published is not None:
        from wsd_plan import published

        with stage(f"reading the published {args.published} curves shipped with the package"):
            runs = list(published.published_runs(args.published).values())
    else:
        with stage(f"reading {len(args.run)} run(s)"):
            names = run_names([files[0] if files else "" for files in args.run])
            runs = [_run(files, args, name) for files, name in zip(args.run, names, strict=True)]
    prior = read_prior(args.prior)
    points = sum(r.steps.size for r in runs)
    with stage(f"fitting the {args.law} law to {len(runs)} run(s), {points} logged points"):
        fit = fit_loss_law(runs, args.law, prior=prior)
    lines = fit.report().splitlines()
    if args.save is not None:
        measure_law_error(fit)
        with stage("fitting the other law to the same runs (every interval holds both), and saving"):
            text = fit.to_json()
            write_atomically(Path(args.save), text)
        lines.append(f"wrote {args.save}")
    return lines


def run_ladder(args: argparse.Namespace) -> list[str]:
    """``wsd fit --ladder``: a ``ModelLadder`` of saved fits (``args.sizes``), reported and saved."""
    from wsd_plan import published

    fits: dict[float, Any] = {}
    for size, given in args.sizes.items():
        shipped = given in published.MODELS + published.SCHAIPP_MODELS and not Path(given).exists()
        fits[size] = given
        if shipped:  # a model shipped with the package: its fit to every run, made now
            with stage(f"fitting the {args.law} law to every run of the shipped {given}"):
                fits[size] = fit_loss_law(list(published.published_runs(given).values()), args.law)
    with stage(f"reading {sum(isinstance(f, str) for f in fits.values())} saved fit(s), making the ladder"):
        ladder = ModelLadder(fits, parameters=args.parameters).of_law(args.law)
    lines = ladder.report().splitlines()
    if args.save is not None:
        write_atomically(Path(args.save), ladder.to_json())
        lines.append(f"wrote {args.save} (a prior: wsd plan --prior {args.save}, Forecast(prior=...))")
    return lines


def measure_law_error(fit: LossLawFit) -> None:
    """The fit's leave-one-run-out refits, one line on stderr each: they take most of a save's time."""
    n = len(fit.fitted_runs)
    print(
        f"measuring the law's error by leaving each of the {n} run(s) out (one refit each):", file=sys.stderr
    )
    start = time.perf_counter()

    def said(k: int, total: int, name: str, seconds: float) -> None:
        print(f"  refit {k} of {total}, without {name}: {seconds:.1f} s", file=sys.stderr, flush=True)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the refits' notes are the fit's own, said once above
        scale = fit.measure_law_error(progress=said)
    print(
        f"  the law's error x{scale:.2f}, in all: {time.perf_counter() - start:.1f} s",
        file=sys.stderr,
        flush=True,
    )


def write_atomically(path: Path, text: str) -> None:
    """Writes ``text`` to a temporary file beside ``path``, then renames it: a crash leaves the old
    file or the new one, never half of one."""
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def run_plan(args: argparse.Namespace) -> tuple[CooldownPlan, list[str]]:
    """Fits, plans and plots as ``args`` asks; returns the plan and the report's lines."""
    trunk: Any
    if args.published is not None:
        runs, held_out, trunk = published_inputs(args)
    else:
        with stage(f"reading {len(args.run) + len(args.held_out or [])} run(s)"):
            given = [*args.run, *(args.held_out or [])]
            names = run_names([files[0] if files else "" for files in given])
            loaded = [_run(files, args, name) for files, name in zip(given, names, strict=True)]
            runs, held_out = loaded[: len(args.run)], loaded[len(args.run) :]
            trunk = read_schedule(args.trunk)
    points = sum(r.steps.size for r in runs)
    prior = read_prior(args.prior)
    with stage(f"fitting the {args.law} law to {len(runs)} run(s), {points} logged points"
               + ("" if prior is None else f", with the prior {args.prior}")):  # fmt: skip
        fit = fit_loss_law(runs, args.law, prior=prior)
    measure_law_error(fit)
    other = None
    if args.second_opinion:
        other_law = next(name for name in LAWS if name != args.law)  # the other of the two laws
        with stage(f"fitting the {other_law} law too, for a second opinion"):
            other = fit_loss_law(runs, other_law, prior=prior)
    lines = fit.report(held_out).splitlines()
    with stage("predicting and ranking the candidates"):
        plan = plan_cooldown(
            fit,
            trunk,
            args.grid,  # (built and checked by _cli before any work)
            peak=args.peak if isinstance(trunk, WSDSpec) else None,
            level=args.level,
            warmup_steps=args.warmup_steps,
            second_opinion=other,
        )
    lines += ["", plan.table()]
    optimal: list[OptimalCooldown] = []
    if args.optimize:  # with --budgets: _cli checked it before any work
        for budget in args.budgets:
            with stage(f"optimising the cooldown of a {budget}-update run"):
                best = optimize_cooldown(fit, trunk, budget=budget, min_ratio=min(args.min_ratios),
                                         peak=args.peak if isinstance(trunk, WSDSpec) else None,
                                         warmup_steps=args.warmup_steps, level=args.level)  # fmt: skip
            lines += ["", best.summary()]
            optimal.append(best)
    if args.out is not None:
        plotted = plot_plan(plan, fit, runs + held_out, args.out, top=args.plot_top, optimal=optimal)
        lines.append(f"wrote {plotted}")
    return plan, lines


def plot_plan(
    plan: CooldownPlan,
    fit: Any,
    runs: list[LossRun],
    path: str | Path,
    *,
    top: int = 2,
    optimal: Sequence[OptimalCooldown] = (),
) -> Path:
    """Measured (solid) and predicted (dashed) curves of the given runs; per budget, its best
    candidate with its 90% interval shaded and the next ``top - 1`` (dotted); the law-optimal
    cooldowns (dash-dot)."""
    from wsd_core.plot import plot_series

    series: dict[str, tuple[Any, Any]] = {}
    styles: dict[str, dict[str, Any]] = {}
    bands: dict[str, tuple[Any, Any, Any]] = {}
    for i, r in enumerate(runs):
        name = r.name or f"run{i}"
        series[f"{name} measured"] = (r.steps.tolist(), r.losses.tolist())
        series[f"{name} predicted"] = (r.steps.tolist(), fit.predict_run(r).tolist())
        styles[f"{name} predicted"] = {"linestyle": "--"}
    for end in plan.end_steps:  # ranked within its budget: runs of different lengths never compete
        for rank, c in enumerate(plan.ranking(end)[:top], 1):
            label, band = _candidate_label_and_band(c, end, rank, plan.level)
            series[label] = (c.steps.tolist(), c.predicted.tolist())
            if band is not None:
                bands[label] = band
            styles[label] = {"linestyle": "-" if rank == 1 else ":", "linewidth": 1.8 if rank == 1 else 1.0}
    for best in optimal:
        label = f"law-optimal, {best.budget} updates"
        steps = np.unique(np.linspace(best.earliest, best.budget - 1, 64).round().astype(np.int64))
        series[label] = (steps.tolist(), fit.predict(best.lrs, steps).tolist())
        styles[label] = {"linestyle": "-.", "linewidth": 1.8}
    lows = [min(y) for _, y in series.values()] + [min(low) for _, low, _ in bands.values()]
    highs = [y[len(y) // 8] for _, y in series.values()]  # skip the early, steep part of the curve
    path = plot_series(
        series, path, title=f"{fit.law} law: measured, predicted and planned", ylabel="loss", styles=styles,
        ylim=(min(lows) - 0.02, max(highs)), bands=bands,
    )  # fmt: skip
    return path


def _candidate_label_and_band(
    c: CooldownCandidate, end: int, rank: int, level: float
) -> tuple[str, tuple[Any, Any, Any] | None]:
    """A plotted candidate's legend label, and for its budget's best, its interval from the branch
    step on (the trunk's own band would hide the others'), to shade."""
    label = f"{end} updates, {'best' if rank == 1 else f'#{rank}'}: {c.shape} {c.length} from {c.at_step}"
    label += f" (r={c.min_ratio:g})"
    if rank > 1 or c.predicted_low is None or c.predicted_high is None:
        return label, None
    cooldown = c.steps >= c.at_step - 1
    band = tuple(a[cooldown].tolist() for a in (c.steps, c.predicted_low, c.predicted_high))
    return f"{label}, {level:.0%} interval", band
