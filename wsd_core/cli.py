"""The ``wsd`` command: look at WSD schedules from a shell. Needs only the core (+ matplotlib to plot).

Subcommands that need more than the core (``wsd plan``, the cooldown planner's) are found through
the entry point group ``wsd_schedule.commands``: the core never imports a framework package by name.
Such a subcommand may use ``out_path``, the type of every plot-file argument.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import itertools
import os
import re
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from wsd_core._clock import UNITS
from wsd_core._formula import DECAY_SHAPES, WARMUP_SHAPES
from wsd_core._spec import WSDSpec
from wsd_core._validation import check_real
from wsd_core._version import __version__

DESCRIPTION = """\
Look at WSD learning-rate schedules from a shell.

examples:
  wsd table --total-steps 200000 --warmup-steps 2000 --decay-ratio 0.2 --geometric-checkpoints 3
  wsd plot --total-steps 10000 --warmup-steps 500 --decay-ratio 0.2 --decay-shape 1-sqrt linear --peak 3e-4

Every bad value is a usage error (exit status 2) with a message, never a traceback.
"""

# An entry point in this group names a function ``add(subparsers)`` that adds one subcommand and sets
# its ``handler(args, parser) -> int`` default. One that cannot be imported is listed with its error.
COMMANDS_GROUP = "wsd_schedule.commands"

__all__ = ["COMMANDS_GROUP", "main", "out_path"]


def out_path(text: str) -> Path:
    """An ``argparse`` type for a plot file: a name ending in one of ``wsd_core.plot.FORMATS``."""
    from wsd_core.plot import FORMATS

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
    try:  # a real write: root passes os.access, and some folders (/proc) take no new files at all
        if path.exists():
            with open(path, "ab"):
                pass
        else:
            with tempfile.TemporaryFile(dir=parent):
                pass
    except OSError as e:
        raise argparse.ArgumentTypeError(f"cannot write {text!r}: {e.strerror or e}") from None
    return path


def add_spec_arguments(parser: argparse.ArgumentParser) -> None:
    spec = parser.add_argument_group("the schedule (WSDSpec fields; see docs/contract.md)")
    spec.add_argument("--total-steps", type=int, required=True, help="T, updates in the run")
    spec.add_argument("--warmup-steps", type=int, default=0, help="W, warmup length (default 0)")
    decay = spec.add_mutually_exclusive_group()
    decay.add_argument(
        "--decay-steps", type=int, nargs="+", metavar="D",
        help="D, the decay length of every period, or one D per WSD-S period (in period order)",
    )  # fmt: skip
    decay.add_argument(
        "--decay-ratio",
        type=float,
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
    spec.add_argument("--init-ratio", type=float, default=0.0, help="m(0) when W > 0 (default 0)")
    spec.add_argument("--min-ratio", type=float, default=0.0, help="m at the end of each decay (default 0)")
    ends = spec.add_mutually_exclusive_group()
    ends.add_argument(
        "--checkpoints", type=int, nargs="+", metavar="END",
        help="WSD-S period ends c_1 < ... < c_K; the last must equal --total-steps",
    )  # fmt: skip
    ends.add_argument(
        "--geometric-checkpoints", type=int, metavar="K",
        help="K periods ending at total_steps >> (K - i), i = 1..K",
    )  # fmt: skip
    spec.add_argument("--start-step", type=int, default=0, help="s0: the schedule is m(max(s - s0, 0))")
    spec.add_argument(
        "--period-peaks", type=float, nargs="+", metavar="P",
        help="the peak of each WSD-S period as a ratio, one per period (default 1 in every period)",
    )  # fmt: skip
    spec.add_argument(
        "--rewarmup-steps", type=int, default=0,
        help="N: each later period rises from the floor back to its peak over its first N updates",
    )  # fmt: skip
    spec.add_argument(
        "--rewarmup-shape", default="linear", choices=list(WARMUP_SHAPES),
        help="the rewarmup's shape (default linear)",
    )  # fmt: skip
    spec.add_argument(
        "--decay-power", type=float, default=1.0, metavar="K",
        help="the polynomial decay shape's exponent: (1 - p) ** K (default 1)",
    )  # fmt: skip
    spec.add_argument(
        "--stable-power", type=float, default=0.0, metavar="B",
        help="a stable phase falling as ((u - W) / tau + 1) ** B, B <= 0 (-0.5: inverse square root)",
    )  # fmt: skip
    spec.add_argument("--stable-scale", type=int, metavar="TAU", help="tau of --stable-power (default W)")
    spec.add_argument(
        "--units", default="steps", choices=list(UNITS),
        help="what the lengths count (default steps); the table then reads in those units",
    )  # fmt: skip


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wsd", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    table = sub.add_parser("table", help="print the phase table of one or more schedules")
    add_spec_arguments(table)
    plot = sub.add_parser("plot", help="plot one or more schedules to a PNG, PDF or SVG file")
    add_spec_arguments(plot)
    plot.add_argument(
        "--peak", type=float,
        help="peak learning rate: plot rates peak * m(step) instead of multipliers m(step)"
    )  # fmt: skip
    plot.add_argument(
        "--out", type=out_path, default=Path("wsd_schedule.png"), help="output file (default %(default)s)"
    )
    _add_plugin_commands(sub)
    return parser


def _add_plugin_commands(sub: Any) -> None:
    """Each installed subcommand of ``COMMANDS_GROUP``; one whose package cannot be imported (an extra
    not installed) is listed with the reason, and running it is a usage error naming it."""
    for entry in sorted(importlib.metadata.entry_points(group=COMMANDS_GROUP), key=lambda e: e.name):
        try:
            add: Callable[[Any], None] = entry.load()
        except ImportError as e:
            reason = str(e)
            stub = sub.add_parser(entry.name, help=f"(unavailable: {reason})", add_help=False)
            stub.set_defaults(unavailable=reason)
            continue
        add(sub)


def usage_error(parser: argparse.ArgumentParser, error: Exception) -> None:
    """Exits with status 2 and the error's message; a message about a spec field names its flag."""
    message = str(error)
    field = re.match(r"(\w+)\b", message)
    if field and field.group(1) in WSDSpec.__dataclass_fields__:
        message = f"argument --{field.group(1).replace('_', '-')}: {message}"
    parser.error(message)


def _one_or_each(values: list[int] | None) -> int | tuple[int, ...] | None:
    """One value for every period, or one per period. A list of one is the single value: the spec
    would read a 1-tuple as one period's length."""
    if values is None:
        return None
    return values[0] if len(values) == 1 else tuple(values)


def _specs(args: argparse.Namespace, parser: argparse.ArgumentParser) -> dict[str, WSDSpec]:
    checkpoints = args.checkpoints if args.geometric_checkpoints is None else args.geometric_checkpoints
    if args.decay_power != 1.0 and "polynomial" not in args.decay_shape:
        usage_error(
            parser,
            ValueError(f"--decay-power {args.decay_power} is the exponent of --decay-shape polynomial"),
        )
    specs = {}
    for decay_shape, warmup_shape in itertools.product(args.decay_shape, args.warmup_shape):
        try:
            spec = WSDSpec(
                args.total_steps,
                warmup_steps=args.warmup_steps,
                decay_steps=_one_or_each(args.decay_steps),
                decay_ratio=args.decay_ratio,
                decay_shape=decay_shape,
                warmup_shape=warmup_shape,
                init_ratio=args.init_ratio,
                min_ratio=args.min_ratio,
                checkpoints=checkpoints,
                start_step=args.start_step,
                period_peaks=args.period_peaks,
                rewarmup_steps=args.rewarmup_steps,
                rewarmup_shape=args.rewarmup_shape,
                units=args.units,
                stable_power=args.stable_power,
                stable_scale=args.stable_scale,
                decay_power=args.decay_power if decay_shape == "polynomial" else 1.0,
            )
        except (TypeError, ValueError) as e:
            usage_error(parser, e)
        label = decay_shape if len(args.warmup_shape) == 1 else f"{decay_shape}, {warmup_shape} warmup"
        specs[label] = spec
    return specs


def main(argv: Sequence[str] | None = None) -> int:
    """Runs ``wsd`` with ``argv`` (default: the process's arguments); returns the exit status."""
    parser = _parser()
    args, unknown = parser.parse_known_args(argv)
    if getattr(args, "unavailable", None):
        parser.exit(2, f"wsd {args.command}: error: {args.unavailable}\n")
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if hasattr(args, "handler"):  # a subcommand from COMMANDS_GROUP
        return int(args.handler(args, parser))
    peak = None
    if args.command == "plot" and args.peak is not None:
        try:
            peak = check_real("--peak", args.peak, positive=True)
        except ValueError as e:
            parser.error(str(e))
    specs = _specs(args, parser)
    for label, spec in specs.items():
        print(f"== {label}\n{spec.phase_table()}\n")
    if args.command == "plot":
        from wsd_core.plot import plot_schedules

        try:
            path = plot_schedules(specs, args.out, peak_value=peak)
        except ImportError as e:
            parser.exit(2, f"wsd plot: error: {e}\n")
        except OSError as e:
            parser.exit(2, f"wsd plot: error: cannot write {str(args.out)!r}: {e.strerror or e}\n")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
