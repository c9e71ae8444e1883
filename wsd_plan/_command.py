"""What ``wsd plan`` runs (its arguments are declared in ``wsd_plan._cli``): read the runs, fit a law,
plan the cooldowns, print and plot.

Inputs are the logs a training loop writes (``wsd_plan._logs``) and each run's schedule: a
``WSDSpec`` saved as JSON (``spec.to_dict()``; with ``--peak``), the rates of every update from step
0 (a ``.npy`` file, or a CSV/text file with one rate per line or an ``lr`` column), or the log's own
``lr`` column when it covers every update.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from wsd_core import WSDSpec
from wsd_plan._fit import fit_loss_law
from wsd_plan._logs import (
    LR_NAMES,
    LogError,
    check_logged_rates,
    find_column,
    rates_from_log,
    read_log,
    read_number,
    read_table,
)
from wsd_plan._plan import CooldownPlan, plan_cooldown
from wsd_plan._runs import LossRun


def read_schedule(path: str | Path) -> WSDSpec | np.ndarray:
    """A ``WSDSpec`` from a JSON file, or per-update rates from ``.npy``, ``.csv`` or text."""
    path = Path(path)
    if not path.is_file():
        raise LogError(f"{path}: no such file (a schedule: a WSDSpec as JSON, or per-update rates)")
    if path.suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8-sig"))
        except (ValueError, RecursionError) as e:
            raise LogError(f"{path}: not JSON ({type(e).__name__}: {str(e)[:80]})") from None
        if not isinstance(data, dict):
            raise LogError(f"{path}: a WSDSpec JSON is an object of its fields, got {type(data).__name__}")
        try:
            return WSDSpec.from_dict(data)
        except (ValueError, TypeError) as e:
            raise LogError(f"{path}: not a WSDSpec ({e})") from None
    if path.suffix == ".npy":
        try:
            rates = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise LogError(f"{path}: not a numpy array file ({e})") from None
    elif _looks_like_csv(path):
        header, data = read_table(path)
        column = find_column(path, header, None, LR_NAMES, "rates", "an lr column")
        rates = np.array([read_number(path, line, row[column], "lr", positive=False) for line, row in data])
    else:
        try:
            rates = np.loadtxt(path, ndmin=1)
        except ValueError as e:
            raise LogError(f"{path}: not one rate per line ({e})") from None
    if rates.ndim != 1 or rates.size == 0 or rates.dtype.kind not in "fiu":
        raise LogError(
            f"{path}: the rates must be a non-empty 1-d array of numbers, got {rates.dtype} {rates.shape}"
        )
    return rates.astype(np.float64)


def _looks_like_csv(path: Path) -> bool:
    with open(path, encoding="utf-8-sig", errors="replace") as f:
        first = f.readline()
    return bool(first.strip()) and not _is_number(first.split(",")[0])


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _run(files: list[str], args: argparse.Namespace) -> LossRun:
    """A run from ``LOG [SCHEDULE]``: without a schedule the log's lr column must cover every update;
    with one, a logged lr column is checked against it."""
    if not 1 <= len(files) <= 2:
        raise LogError(f"--run takes a LOG and optionally its SCHEDULE, got {len(files)} files: {files}")
    log = read_log(
        files[0], step_column=args.step_column, loss_column=args.loss_column, lr_column=args.lr_column
    )
    if len(files) == 1:
        rates: WSDSpec | np.ndarray = rates_from_log(log)
        peak = None
    else:
        rates = read_schedule(files[1])
        peak = args.peak if isinstance(rates, WSDSpec) else None
        if isinstance(rates, WSDSpec) and peak is None:
            raise LogError(f"{files[1]} is a WSDSpec: give --peak, the stable learning rate")
    try:
        run = LossRun(rates, log.steps, log.losses, args.warmup_steps, Path(files[0]).stem, peak)
    except ValueError as e:
        raise LogError(f"{' with '.join(files)}: {e}") from None
    if len(files) == 2:
        check_logged_rates(log, run.lrs, files[1])
    return run


@contextlib.contextmanager
def stage(what: str) -> Iterator[None]:
    """Says on stderr what is being done and, when done, how long it took: the report itself goes to
    stdout, so progress never mixes into output that is piped or saved."""
    print(f"{what} ...", end="", file=sys.stderr, flush=True)
    start = time.perf_counter()
    try:
        yield
    except BaseException:
        print(" failed", file=sys.stderr, flush=True)  # the error's own message follows on its line
        raise
    print(f" {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)


def run_plan(args: argparse.Namespace) -> tuple[CooldownPlan, list[str]]:
    """Fits, plans and plots as ``args`` asks; returns the plan and the report's lines."""
    with stage(f"reading {len(args.run) + len(args.held_out or [])} run(s)"):
        runs = [_run(files, args) for files in args.run]
        held_out = [_run(files, args) for files in args.held_out or []]
        trunk = read_schedule(args.trunk)
    points = sum(r.steps.size for r in runs)
    with stage(f"fitting the {args.law} law to {len(runs)} run(s), {points} logged points"):
        fit = fit_loss_law(runs, args.law)
    with stage(f"measuring the law's error by leaving each of the {len(runs)} run(s) out"):
        fit.law_error_scale  # noqa: B018 (computed now, so that the stage says what takes the time)
    lines = fit.report(held_out).splitlines()
    with stage("predicting and ranking the candidates"):
        plan = plan_cooldown(
            fit,
            trunk,
            budgets=args.budgets,
            at_steps=args.at,
            lengths=args.lengths,
            shapes=args.shapes,
            min_ratios=args.min_ratios,
            peak=args.peak if isinstance(trunk, WSDSpec) else None,
            warmup_steps=args.warmup_steps,
            level=args.level,
        )
    lines += ["", plan.table()]
    if args.out is not None:
        lines.append(f"wrote {plot_plan(plan, fit, runs + held_out, args.out, top=args.plot_top)}")
    return plan, lines


def plot_plan(plan: CooldownPlan, fit: Any, runs: list[LossRun], path: str | Path, *, top: int = 5) -> Path:
    """Measured (solid) and predicted (dashed) curves of the given runs, and the best candidates."""
    from wsd_core._plot import plot_series

    series: dict[str, tuple[Any, Any]] = {}
    styles: dict[str, dict[str, Any]] = {}
    for i, r in enumerate(runs):
        name = r.name or f"run{i}"
        series[f"{name} measured"] = (r.steps.tolist(), r.losses.tolist())
        series[f"{name} predicted"] = (r.steps.tolist(), fit.predict_run(r).tolist())
        styles[f"{name} predicted"] = {"linestyle": "--"}
    for rank, c in enumerate(plan.candidates[:top], 1):
        label = f"#{rank} {c.shape} {c.length} from {c.at_step} (r={c.min_ratio:g})"
        series[label] = (c.steps.tolist(), c.predicted.tolist())
        styles[label] = {"linestyle": ":", "linewidth": 1.6}
    lows = [min(y) for _, y in series.values()]
    highs = [y[len(y) // 8] for _, y in series.values()]  # skip the early, steep part of the curve
    path = plot_series(
        series, path, title=f"{fit.law} law: measured, predicted and planned", ylabel="loss", styles=styles,
        ylim=(min(lows) - 0.02, max(highs)),
    )  # fmt: skip
    return path
