"""The ``wsd`` command: look at WSD schedules from a shell. Needs only the core (+ matplotlib to plot).

Examples:
  wsd table --total-steps 200000 --warmup-steps 2000 --decay-ratio 0.2 --geometric-checkpoints 3
  wsd plot --total-steps 10000 --warmup-steps 500 --decay-ratio 0.2 \\
      --decay-shape 1-sqrt linear cosine --checkpoints 2500 5000 10000 --peak 3e-4 --out wsd.png
  wsd plan --run trunk.csv trunk.json --run cooldown.csv cooldown.json --peak 3e-4 \
      --trunk trunk.json --at 16000 20000 --lengths 2000 4000 --shapes linear 1-sqrt --out plan.png

Every bad value is a usage error (exit status 2) with a message, never a traceback.
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from wsd_core._formula import DECAY_SHAPES, WARMUP_SHAPES
from wsd_core._spec import WSDSpec
from wsd_core._validation import MAX_STEP


def _int_type(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an int, got {text!r}") from None
        if not minimum <= value <= MAX_STEP:
            raise argparse.ArgumentTypeError(f"expected an int in [{minimum}, 2**63 - 1], got {text}")
        return value

    parse.__name__ = "int"
    return parse


def _float_type(low: float, high: float, *, open_low: bool = False) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        ok = math.isfinite(value) and (value > low if open_low else value >= low) and value <= high
        if not ok:
            bracket = "(" if open_low else "["
            raise argparse.ArgumentTypeError(
                f"expected a finite number in {bracket}{low:g}, {high:g}], got {text}"
            )
        return value

    parse.__name__ = "number"
    return parse


def _out_path(text: str) -> Path:
    from wsd_core._plot import FORMATS

    if not text.strip():
        raise argparse.ArgumentTypeError("expected a file name, got an empty string")
    path = Path(text)
    suffix = path.suffix.lower().lstrip(".")
    if suffix not in FORMATS:
        raise argparse.ArgumentTypeError(
            f"the file name must end in one of {['.' + f for f in FORMATS]}, got {text!r}"
        )
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a folder, not a file name")
    parent = path.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise argparse.ArgumentTypeError(f"cannot write {text!r}: {parent} is not a writable folder")
    return path


def _add_spec_arguments(parser: argparse.ArgumentParser) -> None:
    spec = parser.add_argument_group("the schedule (WSDSpec fields; see docs/contract.md)")
    spec.add_argument("--total-steps", type=_int_type(1), required=True, help="T, updates in the run")
    spec.add_argument("--warmup-steps", type=_int_type(0), default=0, help="W, warmup length (default 0)")
    decay = spec.add_mutually_exclusive_group()
    decay.add_argument("--decay-steps", type=_int_type(0), help="D, the decay length of every period")
    decay.add_argument(
        "--decay-ratio",
        type=_float_type(0.0, 1.0),
        help="rho, each period decays for floor(rho * its length) (a fraction: 0.2 for 20%%; default 0.1)",
    )
    spec.add_argument(
        "--decay-shape", nargs="+", default=["1-sqrt"], choices=list(DECAY_SHAPES),
        help="one or more decay shapes, each drawn or tabulated as its own schedule (default 1-sqrt)",
    )  # fmt: skip
    spec.add_argument(
        "--warmup-shape", nargs="+", default=["linear"], choices=list(WARMUP_SHAPES),
        help="one or more warmup shapes (default linear)",
    )  # fmt: skip
    spec.add_argument(
        "--init-ratio", type=_float_type(0.0, 1.0), default=0.0, help="m(0) when W > 0 (default 0)"
    )
    spec.add_argument(
        "--min-ratio", type=_float_type(0.0, 1.0), default=0.0, help="m at the end of each decay (default 0)"
    )
    ends = spec.add_mutually_exclusive_group()
    ends.add_argument(
        "--checkpoints", type=_int_type(1), nargs="+", metavar="END",
        help="WSD-S period ends c_1 < ... < c_K; the last must equal --total-steps",
    )  # fmt: skip
    ends.add_argument(
        "--geometric-checkpoints", type=_int_type(1), metavar="K",
        help="K periods ending at total_steps >> (K - i), i = 1..K",
    )  # fmt: skip
    spec.add_argument(
        "--start-step", type=_int_type(0), default=0, help="s0: the schedule is m(max(s - s0, 0))"
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wsd", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    table = sub.add_parser("table", help="print the phase table of one or more schedules")
    _add_spec_arguments(table)
    plot = sub.add_parser("plot", help="plot one or more schedules to a PNG, PDF or SVG file")
    _add_spec_arguments(plot)
    plot.add_argument(
        "--peak", type=_float_type(0.0, math.inf, open_low=True),
        help="peak learning rate: plot rates peak * m(step) instead of multipliers m(step)",
    )  # fmt: skip
    plot.add_argument(
        "--out", type=_out_path, default=Path("wsd_schedule.png"), help="output file (default %(default)s)"
    )
    _add_plan_parser(sub)
    return parser


def _add_plan_parser(sub: Any) -> None:
    plan = sub.add_parser(
        "plan",
        help="fit a loss-curve law to logged runs and rank cooldowns off a trunk (needs wsd-schedule[jax])",
        description="Fits the Multi-Power Law (or the annealing law) to the logged runs, predicts every "
        "cooldown of --lengths x --shapes x --min-ratios branched at each --at step of the trunk, and "
        "prints them ranked by predicted final loss. A LOG is a CSV with step and loss columns; a "
        "SCHEDULE is a WSDSpec as JSON (spec.to_dict(); needs --peak) or the rate of every update from "
        "step 0 (.npy, or a CSV/text file with an lr column or one rate per line).",
    )
    pair = dict(nargs=2, metavar=("LOG", "SCHEDULE"), action="append")
    plan.add_argument("--run", required=True, help="a run to fit on (repeat for more)", **pair)
    plan.add_argument("--held-out", help="a run to check the fit on (repeat): sets the uncertainty", **pair)
    plan.add_argument("--trunk", required=True, metavar="SCHEDULE", help="the trunk to branch from")
    plan.add_argument(
        "--peak", type=_float_type(0.0, math.inf, open_low=True),
        help="the stable learning rate of the WSDSpec schedules",
    )  # fmt: skip
    plan.add_argument("--at", type=_int_type(0), nargs="+", required=True, help="steps to branch from")
    plan.add_argument("--lengths", type=_int_type(1), nargs="+", required=True, help="cooldown lengths")
    plan.add_argument(
        "--shapes", nargs="+", default=["1-sqrt"], choices=list(DECAY_SHAPES), help="decay shapes"
    )
    plan.add_argument(
        "--min-ratios", type=_float_type(0.0, 1.0), nargs="+", default=[0.0], help="floors (default 0)"
    )
    plan.add_argument("--law", choices=["multi-power", "annealing"], default="multi-power")
    plan.add_argument(
        "--warmup-steps", type=_int_type(0),
        help="the runs' warmup length (default: each spec's, or up to the largest rate)",
    )  # fmt: skip
    plan.add_argument("--out", type=_out_path, help="also plot measured, predicted and planned curves")
    plan.add_argument("--plot-top", type=_int_type(0), default=5, help="candidates to plot (default 5)")


def _plan(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    try:
        from wsd_jax.planner._command import InputError, run_plan
    except ImportError as e:
        parser.exit(2, f"wsd plan: error: it needs jax and optax ({e}): pip install 'wsd-schedule[jax]'\n")
    try:
        _, lines = run_plan(args)
    except (InputError, ValueError, TypeError) as e:
        parser.exit(2, f"wsd plan: error: {e}\n")
    except ImportError as e:
        parser.exit(2, f"wsd plan: error: {e}\n")
    print("\n".join(lines))
    return 0


def _specs(args: argparse.Namespace, parser: argparse.ArgumentParser) -> dict[str, WSDSpec]:
    checkpoints = args.checkpoints if args.geometric_checkpoints is None else args.geometric_checkpoints
    specs = {}
    for decay_shape, warmup_shape in itertools.product(args.decay_shape, args.warmup_shape):
        try:
            spec = WSDSpec(
                args.total_steps,
                warmup_steps=args.warmup_steps,
                decay_steps=args.decay_steps,
                decay_ratio=args.decay_ratio,
                decay_shape=decay_shape,
                warmup_shape=warmup_shape,
                init_ratio=args.init_ratio,
                min_ratio=args.min_ratio,
                checkpoints=checkpoints,
                start_step=args.start_step,
            )
        except (TypeError, ValueError) as e:
            parser.error(str(e))
        label = decay_shape if len(args.warmup_shape) == 1 else f"{decay_shape}, {warmup_shape} warmup"
        specs[label] = spec
    return specs


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "plan":
        return _plan(args, parser)
    specs = _specs(args, parser)
    for label, spec in specs.items():
        print(f"== {label}\n{spec.phase_table()}\n")
    if args.command == "plot":
        from wsd_core._plot import plot_schedules

        try:
            path = plot_schedules(specs, args.out, peak_value=args.peak)
        except ImportError as e:
            parser.exit(2, f"wsd plot: error: {e}\n")
        except OSError as e:
            parser.exit(2, f"wsd plot: error: cannot write {str(args.out)!r}: {e.strerror or e}\n")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
