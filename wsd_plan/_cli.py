"""``wsd plan``'s arguments, for the ``wsd`` command (``wsd_core.cli``), which finds
``add_plan_command`` through the entry point group ``wsd_schedule.commands`` in ``pyproject.toml``.

Nothing here imports jax: every ``wsd`` invocation declares the subcommand, and only ``wsd plan``
itself imports the planner (``wsd_plan._command``). argparse parses; the planner validates.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import re
from pathlib import Path
from typing import Any

from wsd_core import DECAY_SHAPES
from wsd_core.backend import check_choice, check_int, check_real
from wsd_core.cli import out_path

# The shipped published curves (wsd_plan.published, which needs numpy: named here to keep this light)
PUBLISHED_MODELS = ("lm-25M", "lm-100M")
PUBLISHED_DEFAULTS = {"budgets": [24_000, 48_000, 72_000], "lengths": [2000, 4000, 8000],
                      "shapes": ["linear", "1-sqrt"], "min_ratios": [0.1]}  # fmt: skip

PLAN_EXAMPLE = (
    "example:\n  wsd plan --run trunk.csv trunk.json --run cooldown.csv cooldown.json --peak 3e-4 "
    "--trunk trunk.json --at 16000 20000 --lengths 2000 4000 --shapes linear 1-sqrt --out plan.png\n"
    "  wsd plan --published lm-25M --out plan.png   (on the curves shipped with the package)\n"
    "  wsd plan --run trunk.csv trunk.json --peak 3e-4 --trunk trunk.json --prior prior.json "
    "--budgets 24000 --lengths 2000 4000   (a trunk alone, with a prior from wsd fit --save)\n"
)
FIT_EXAMPLE = (
    "examples:\n  wsd fit --published lm-100M --save prior.json   (a prior from the shipped curves)\n"
    "  wsd fit --run trunk.csv trunk.json --run cooldown.csv cooldown.json --peak 3e-4 --save fit.json\n"
    "  wsd fit --ladder 25e6=fit-25m.json 100e6=fit-100m.json --parameters 400e6 --save ladder.json\n"
    "      (a prior for a 400M model's trunk from fits of two smaller sizes: a model ladder)\n"
)


def add_plan_command(sub: Any) -> None:
    """Adds ``plan`` to the ``wsd`` command's subparsers (``sub``); argparse parses, the planner
    validates."""
    plan = sub.add_parser(
        "plan",
        help="fit a loss-curve law to logged runs and rank cooldowns off a trunk",
        description="Fits the Multi-Power Law (or the annealing law) to the logged runs, predicts every "
        "cooldown of --lengths x --shapes x --min-ratios that ends at each of --budgets (or branches "
        "at each --at step) of the trunk, and ranks the runs of each length by predicted final loss. "
        "A LOG is a CSV with step and loss columns, or a TensorBoard event file or run folder (extra "
        "[tensorboard]); a SCHEDULE is a WSDSpec as JSON (spec.to_dict(); "
        "needs --peak) or the rate of every update from step 0 (.npy, or a CSV/text file with an lr "
        "column or one rate per line).",
        epilog=PLAN_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    pair: dict[str, Any] = dict(nargs="+", metavar="LOG [SCHEDULE]", action="append")
    plan.add_argument("--run", help="a run to fit on (repeat for more); SCHEDULE may be left out when the "
                      "log's lr column holds every update's rate", **pair)  # fmt: skip
    plan.add_argument("--published", metavar="MODEL", help="try the planner on the shipped published curves "
                      f"({' or '.join(PUBLISHED_MODELS)}): fit on their trunk and one cooldown, check on the "
                      "other runs, plan off a 72,000-update trunk (instead of --run, --held-out, --trunk, "
                      "--peak and --warmup-steps)")  # fmt: skip
    plan.add_argument("--held-out", help="a run to check the fit on (repeat): its errors are reported",
                      **pair)  # fmt: skip
    plan.add_argument("--level", type=float, default=0.9,
                      help="probability of the intervals on final losses (default 0.9)")  # fmt: skip
    plan.add_argument("--step-column", help="the log's step column (default: step, Step, global_step, ...)")
    plan.add_argument("--loss-column", help="the log's loss column (default: loss, train/loss, ...)")
    plan.add_argument("--lr-column", help="the log's learning-rate column (default: lr, if present)")
    plan.add_argument("--trunk", metavar="SCHEDULE", help="the trunk to branch from")
    plan.add_argument("--peak", type=float, help="the stable learning rate of the WSDSpec schedules")
    where = plan.add_mutually_exclusive_group()
    where.add_argument("--budgets", type=int, nargs="+",
                       help="run lengths in updates: each cooldown branches at budget - length")  # fmt: skip
    where.add_argument("--at", type=int, nargs="+", help="checkpoints to branch from")
    plan.add_argument("--lengths", type=int, nargs="+", help="cooldown lengths")
    plan.add_argument("--shapes", nargs="+", choices=list(DECAY_SHAPES),
                      help="decay shapes (default 1-sqrt; with --published, linear and 1-sqrt)")  # fmt: skip
    plan.add_argument("--min-ratios", type=float, nargs="+",
                      help="floors (default 0; with --published, 0.1 as its runs)")  # fmt: skip
    plan.add_argument("--law", default="multi-power", help="the loss-curve law to fit (default %(default)s)")
    plan.add_argument("--prior", metavar="FIT.json", help="an earlier fit (wsd fit --save) of another model, "
                      "peak or dataset whose drop term stands in for what the runs cannot determine: with it "
                      "--run may be a trunk alone, before any cooldown; or a model ladder of other sizes' "
                      "fits (wsd fit --ladder ... --save)")  # fmt: skip
    plan.add_argument("--second-opinion", action="store_true",
                      help="fit the other law too and say, per budget, whether it picks the same best "
                      "run")  # fmt: skip
    plan.add_argument("--optimize", action="store_true",
                      help="also find the law-optimal cooldown of each --budgets (gradient descent through "
                      "the law, floor: the smallest --min-ratios)")  # fmt: skip
    plan.add_argument(
        "--warmup-steps", type=int,
        help="the runs' warmup length (default: each spec's, or up to the largest rate)",
    )  # fmt: skip
    plan.add_argument("--out", type=out_path, help="also plot measured, predicted and planned curves")
    plan.add_argument("--plot-top", type=int, default=2, help="candidates to plot per budget, best first: "
                      "the best with its interval shaded (default 2)")  # fmt: skip
    plan.set_defaults(handler=_main)


def add_fit_command(sub: Any) -> None:
    """Adds ``fit`` to the ``wsd`` command's subparsers: fit a law to runs and save it as JSON (a
    prior for ``wsd plan --prior`` and ``wsd_plan.Forecast``)."""
    fit = sub.add_parser(
        "fit",
        help="fit a loss-curve law to logged runs and save it (a prior for wsd plan --prior)",
        description="Fits the Multi-Power Law (or the annealing law) to the logged runs, prints how well "
        "it fits, and with --save writes the fit as JSON (LossLawFit.to_json): a prior for a trunk of "
        "another model, peak or dataset (wsd plan --prior, wsd_plan.Forecast). LOG and SCHEDULE as for "
        "wsd plan.",
        epilog=FIT_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    fit.add_argument("--run", help="a run to fit on (repeat for more)", nargs="+", metavar="LOG [SCHEDULE]",
                     action="append")  # fmt: skip
    fit.add_argument("--published", metavar="MODEL", help="fit every run of a model shipped with the package "
                     f"({', '.join(PUBLISHED_MODELS)}, or one of Schaipp et al.'s, e.g. slimpajama-60M) "
                     "instead of --run")  # fmt: skip
    fit.add_argument("--ladder", nargs="+", metavar="SIZE=FIT.json",
                     help="instead of fitting runs, make a model ladder of fits saved by wsd fit --save, "
                     "each with its model's parameter count (e.g. 25e6=fit-25m.json; or a model shipped "
                     "with the package, e.g. 33e6=slimpajama-33M): a prior whose parameters move with the "
                     "model size, for a model of --parameters")  # fmt: skip
    fit.add_argument("--parameters", type=float, metavar="N",
                     help="with --ladder: the parameter count of the model the prior is for")  # fmt: skip
    fit.add_argument("--save", metavar="FIT.json", type=_json_path, help="write the fit here (JSON)")
    fit.add_argument("--law", default="multi-power", help="the loss-curve law to fit (default %(default)s)")
    fit.add_argument("--prior", metavar="FIT.json", help="an earlier fit (or a saved --ladder) standing in "
                     "for what the runs cannot determine (as in wsd plan)")  # fmt: skip
    fit.add_argument("--peak", type=float, help="the stable learning rate of the WSDSpec schedules")
    fit.add_argument("--warmup-steps", type=int, help="the runs' warmup length")
    fit.add_argument("--step-column", help="the log's step column")
    fit.add_argument("--loss-column", help="the log's loss column")
    fit.add_argument("--lr-column", help="the log's learning-rate column")
    fit.set_defaults(handler=_fit_main)


def _json_path(text: str) -> str:
    """``--save``'s file: refused at parsing where it cannot be written (no fit is lost to a typo)."""
    path = Path(text)
    if not text.strip() or path.is_dir():
        raise argparse.ArgumentTypeError(f"expected a file name to write, got {text!r}")
    if not path.parent.is_dir():
        raise argparse.ArgumentTypeError(f"the folder {str(path.parent)!r} does not exist")
    if not os.access(path.parent, os.W_OK):
        raise argparse.ArgumentTypeError(f"the folder {str(path.parent)!r} is not writable")
    return text


def _fit_main(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from wsd_plan._command import run_fit, run_ladder

    try:
        from wsd_plan._laws import LAWS

        check_choice("--law", args.law, LAWS)
        if args.ladder is not None or args.parameters is not None:
            lines = run_ladder(_check_ladder_usage(args))
            print("\n".join(lines))
            return 0
        if (args.run is None) == (args.published is None):
            raise ValueError("wsd fit needs --run (repeat for more) or --published MODEL, not both")
        if args.published is not None and (args.peak is not None or args.warmup_steps is not None):
            raise ValueError(f"--published {args.published} brings its own peak and warmup: leave out --peak "
                             "and --warmup-steps")  # fmt: skip
        if args.peak is not None:
            check_real("--peak", args.peak, positive=True)
        lines = run_fit(args)
    except (ValueError, TypeError, ImportError, RuntimeError, OSError) as e:
        parser.exit(2, f"wsd fit: error: {in_cli_terms(str(e))}\n")
    print("\n".join(lines))
    return 0


def _check_ladder_usage(args: argparse.Namespace) -> argparse.Namespace:
    """``wsd fit --ladder``'s flags: each ``SIZE=FIT.json`` read into ``args.sizes``; every flag of a
    fit of runs refused by name."""
    if args.ladder is None or args.parameters is None:
        raise ValueError("a model ladder needs --ladder SIZE=FIT.json ... and --parameters N (the size of "
                         "the model it is a prior for), both")  # fmt: skip
    given = [flag for flag, value in (("--run", args.run), ("--published", args.published),
             ("--prior", args.prior), ("--peak", args.peak), ("--warmup-steps", args.warmup_steps))
             if value is not None]  # fmt: skip
    if given:
        raise ValueError(f"--ladder combines saved fits and fits no runs: leave out {', '.join(given)}")
    args.sizes = {}
    for item in args.ladder:
        size, sep, path = item.partition("=")
        try:
            value = float(size)
        except ValueError:
            value = math.nan
        if not sep or not path or not math.isfinite(value) or value <= 0:
            raise ValueError(f"--ladder takes SIZE=FIT.json, a positive parameter count and a saved fit "
                             f"(e.g. 25e6=fit-25m.json), got {item!r}")  # fmt: skip
        if value in args.sizes:
            raise ValueError(f"--ladder gives the size {size} twice ({args.sizes[value]} and {path})")
        args.sizes[value] = path
    check_real("--parameters", args.parameters, positive=True)
    return args


def _main(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    # The planner (jax, optax, scipy) is imported only now: declaring the command costs nothing to
    # every other ``wsd`` subcommand.
    from wsd_plan._command import run_plan

    try:
        _check_usage(args)
        _, lines = run_plan(args)
    except (ValueError, TypeError, ImportError, RuntimeError, OSError) as e:  # a LogError is a ValueError
        parser.exit(2, f"wsd plan: error: {in_cli_terms(str(e))}\n")
    print("\n".join(lines))
    return 0


# The library's errors name its keywords (``prior=``, ``law='annealing'``); the command says the flags
# a user types instead: any ``keyword=value`` of a keyword that is a flag, then whole phrases.
_FLAGS = {"law": "--law", "prior": "--prior", "peak": "--peak", "warmup_steps": "--warmup-steps",
          "lengths": "--lengths", "budgets": "--budgets", "at_steps": "--at", "shapes": "--shapes",
          "min_ratios": "--min-ratios", "level": "--level"}  # fmt: skip
_KEYWORD = re.compile(r"\b(" + "|".join(_FLAGS) + r")=(?:'([^']*)'|(?=\s|$|[),;]))")
_PHRASES = (
    ("give a prior (fit_loss_law(..., prior=an earlier fit))",
     "give --prior FIT.json (an earlier fit, saved by wsd fit --save)"),
    ("fit --law", "--law"),
    ("or give a prior of the", "or give a --prior of the"),
)  # fmt: skip


def in_cli_terms(message: str) -> str:
    """An error of the library, said with the command's flags instead of Python keywords."""
    message = _KEYWORD.sub(lambda m: _FLAGS[m.group(1)] + (f" {m.group(2)}" if m.group(2) else ""), message)
    for api, cli in _PHRASES:
        message = message.replace(api, cli)
    if message.startswith("prior is a "):  # check_prior names its argument first
        message = "--prior is a " + message[len("prior is a ") :]
    return message


def _check_usage(args: argparse.Namespace) -> None:
    """Every mistake that needs no data, found before anything is read or fit."""
    from wsd_plan._grid import CooldownGrid
    from wsd_plan._laws import LAWS
    from wsd_plan._plan import check_plan_size

    _fill_in(args)
    check_choice("--law", args.law, LAWS)
    if args.peak is not None:
        check_real("--peak", args.peak, positive=True)
    check_int("--plot-top", args.plot_top, minimum=0)
    if args.optimize and args.budgets is None:
        raise ValueError("--optimize needs --budgets: the optimal cooldown is found for a run's length")
    if args.out is not None and importlib.util.find_spec("matplotlib") is None:
        raise ImportError("--out plots with matplotlib, which is missing: pip install 'wsd-schedule[plot]'")
    args.grid = CooldownGrid(args.lengths, budgets=args.budgets, at_steps=args.at, shapes=args.shapes,
                             min_ratios=args.min_ratios)  # fmt: skip
    ends = args.budgets if args.budgets is not None else [a + max(args.lengths) for a in args.at]
    check_plan_size(max(ends), "--budgets" if args.budgets is not None else "--at + --lengths")


def _fill_in(args: argparse.Namespace) -> None:
    """The defaults: ``--published``'s runs and plan, or the required arguments of a plan of one's
    own runs (checked here rather than by argparse, which cannot make them depend on --published)."""
    if args.published is not None:
        check_choice("--published", args.published, PUBLISHED_MODELS)
        given = [flag for flag, value in (("--run", args.run), ("--held-out", args.held_out),
                 ("--trunk", args.trunk), ("--peak", args.peak), ("--warmup-steps", args.warmup_steps))
                 if value is not None]  # fmt: skip
        if given:
            raise ValueError(f"--published {args.published} brings its own runs, trunk, peak and warmup: "
                             f"leave out {', '.join(given)}")  # fmt: skip
        for name, value in PUBLISHED_DEFAULTS.items():
            if getattr(args, name) is None and (name != "budgets" or args.at is None):
                setattr(args, name, value)
        return
    needed = (("--run", args.run), ("--trunk", args.trunk), ("--lengths", args.lengths),
              ("--budgets or --at", args.budgets or args.at))  # fmt: skip
    missing = [flag for flag, value in needed if value is None]
    if missing:
        raise ValueError(f"wsd plan needs {', '.join(missing)} (or --published lm-25M, to try it on the "
                         "curves shipped with the package)")  # fmt: skip
    args.shapes = args.shapes or ["1-sqrt"]
    args.min_ratios = args.min_ratios or [0.0]
