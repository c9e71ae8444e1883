"""``wsd plan``: fit a law to logged runs and rank cooldowns from the shell.

The ``wsd`` command (``wsd_core._cli``) finds ``add_plan_command`` through the entry point group
``wsd_schedule.commands`` that ``pyproject.toml`` registers.

Inputs are the logs a training loop writes: a CSV with ``step`` and ``loss`` columns (``lr`` is
ignored: the rate of every update comes from the run's schedule), and each run's schedule, either
a ``WSDSpec`` saved as JSON (``spec.to_dict()``; with ``--peak``) or the rates of every update from
step 0 (a ``.npy`` file, or a CSV/text file with one rate per line or an ``lr`` column).
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from wsd_core import WSDSpec
from wsd_core import _validation as v
from wsd_core._cli import out_path
from wsd_core._formula import DECAY_SHAPES
from wsd_plan._fit import fit_loss_law
from wsd_plan._laws import LAWS
from wsd_plan._plan import CooldownPlan, plan_cooldown
from wsd_plan._runs import LossRun

PLAN_EXAMPLE = (
    "example:\n  wsd plan --run trunk.csv trunk.json --run cooldown.csv cooldown.json --peak 3e-4 "
    "--trunk trunk.json --at 16000 20000 --lengths 2000 4000 --shapes linear 1-sqrt --out plan.png\n"
)


def add_plan_command(sub: Any) -> None:
    """Adds ``plan`` to the ``wsd`` command's subparsers (``sub``); argparse parses, the planner
    validates."""
    plan = sub.add_parser(
        "plan",
        help="fit a loss-curve law to logged runs and rank cooldowns off a trunk",
        description="Fits the Multi-Power Law (or the annealing law) to the logged runs, predicts every "
        "cooldown of --lengths x --shapes x --min-ratios branched at each --at step of the trunk, and "
        "prints them ranked by predicted final loss. A LOG is a CSV with step and loss columns; a "
        "SCHEDULE is a WSDSpec as JSON (spec.to_dict(); needs --peak) or the rate of every update from "
        "step 0 (.npy, or a CSV/text file with an lr column or one rate per line).",
        epilog=PLAN_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    pair: dict[str, Any] = dict(nargs=2, metavar=("LOG", "SCHEDULE"), action="append")
    plan.add_argument("--run", required=True, help="a run to fit on (repeat for more)", **pair)
    plan.add_argument("--held-out", help="a run to check the fit on (repeat): sets the uncertainty", **pair)
    plan.add_argument("--trunk", required=True, metavar="SCHEDULE", help="the trunk to branch from")
    plan.add_argument("--peak", type=float, help="the stable learning rate of the WSDSpec schedules")
    plan.add_argument("--at", type=int, nargs="+", required=True, help="steps to branch from")
    plan.add_argument("--lengths", type=int, nargs="+", required=True, help="cooldown lengths")
    plan.add_argument(
        "--shapes", nargs="+", default=["1-sqrt"], choices=list(DECAY_SHAPES), help="decay shapes"
    )
    plan.add_argument("--min-ratios", type=float, nargs="+", default=[0.0], help="floors (default 0)")
    plan.add_argument("--law", choices=list(LAWS), default="multi-power")
    plan.add_argument(
        "--warmup-steps", type=int,
        help="the runs' warmup length (default: each spec's, or up to the largest rate)",
    )  # fmt: skip
    plan.add_argument("--out", type=out_path, help="also plot measured, predicted and planned curves")
    plan.add_argument("--plot-top", type=int, default=5, help="candidates to plot (default 5)")
    plan.set_defaults(handler=_main)


def _main(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    try:
        if args.peak is not None:
            v.check_real("--peak", args.peak, positive=True)
        v.check_int("--plot-top", args.plot_top, minimum=0)
        _, lines = run_plan(args)
    except (InputError, ValueError, TypeError, ImportError) as e:
        parser.exit(2, f"wsd plan: error: {e}\n")
    print("\n".join(lines))
    return 0


class InputError(ValueError):
    """A file the command was given cannot be used (the message says which and why)."""


def read_log(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(steps, losses) of a CSV log with ``step`` and ``loss`` columns."""
    rows = _csv_rows(path)
    missing = {"step", "loss"} - set(rows[0])
    if missing:
        raise InputError(
            f"{path}: needs the columns step and loss; missing {sorted(missing)} in {list(rows[0])}"
        )
    try:
        steps = np.array([int(float(r["step"])) for r in rows], dtype=np.int64)
        losses = np.array([float(r["loss"]) for r in rows])
    except ValueError as e:
        raise InputError(f"{path}: a step or loss is not a number ({e})") from None
    return steps, losses


def read_schedule(path: str | Path) -> WSDSpec | np.ndarray:
    """A ``WSDSpec`` from a JSON file, or per-update rates from ``.npy``, ``.csv`` or text."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file (a schedule: a WSDSpec as JSON, or per-update rates)")
    if path.suffix == ".json":
        try:
            return WSDSpec.from_dict(json.loads(path.read_text()))
        except (ValueError, TypeError) as e:
            raise InputError(f"{path}: not a WSDSpec ({e})") from None
    if path.suffix == ".npy":
        return np.load(path)
    first = path.read_text().splitlines()[:1]
    if first and not _is_number(first[0].split(",")[0]):
        rows = _csv_rows(path)
        if "lr" not in rows[0]:
            raise InputError(f"{path}: a rates CSV needs an lr column, got {list(rows[0])}")
        return np.array([float(r["lr"]) for r in rows])
    return np.loadtxt(path, ndmin=1)


def _csv_rows(path: str | Path) -> list[dict[str, str]]:
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError as e:
        raise InputError(f"{path}: cannot read it ({e.strerror or e})") from None
    if not rows:
        raise InputError(f"{path}: no rows")
    return rows


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _run(log: str, schedule: str, args: argparse.Namespace) -> LossRun:
    steps, losses = read_log(log)
    rates = read_schedule(schedule)
    peak = args.peak if isinstance(rates, WSDSpec) else None
    if isinstance(rates, WSDSpec) and peak is None:
        raise InputError(f"{schedule} is a WSDSpec: give --peak, the stable learning rate")
    try:
        return LossRun(rates, steps, losses, args.warmup_steps, Path(log).stem, peak)
    except ValueError as e:
        raise InputError(f"{log} with {schedule}: {e}") from None


def run_plan(args: argparse.Namespace) -> tuple[CooldownPlan, list[str]]:
    """Fits, plans and plots as ``args`` asks; returns the plan and the report's lines."""
    runs = [_run(log, schedule, args) for log, schedule in args.run]
    held_out = [_run(log, schedule, args) for log, schedule in args.held_out or []]
    trunk = read_schedule(args.trunk)
    fit = fit_loss_law(runs, args.law)
    lines = [
        f"{args.law} law fit on {len(runs)} run(s): "
        + ", ".join(f"{k}={v:.4g}" for k, v in fit.params.items())
    ]
    for label, metrics in (("fit", fit.fit_metrics), ("held out", fit.evaluate(held_out))):
        for name, m in metrics.items():
            errors = f"PredE {m['PredE']:.5f}  WorstE {m['WorstE']:.5f}  final {m['FinalE']:.5f}"
            lines.append(f"  {label:8s} {name}: {errors}")
    plan = plan_cooldown(
        fit,
        trunk,
        at_steps=args.at,
        lengths=args.lengths,
        shapes=args.shapes,
        min_ratios=args.min_ratios,
        peak=args.peak if isinstance(trunk, WSDSpec) else None,
        held_out=held_out,
        warmup_steps=args.warmup_steps,
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
