"""Command line: ``python -m wsd_jax plot ...`` writes a PNG of one or more schedules and prints
their phase tables.

Example:
  python -m wsd_jax plot --total-steps 10000 --warmup-steps 500 --decay-ratio 0.2 \\
      --decay-shape 1-sqrt linear cosine --checkpoints 2500 5000 10000 --out wsd.png
"""

from __future__ import annotations

import argparse
import itertools
import sys
from collections.abc import Sequence

from wsd_core import DECAY_SHAPES, WARMUP_SHAPES, WSDSpec


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m wsd_jax",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    plot = sub.add_parser("plot", help="plot schedules to a PNG and print their phase tables")
    plot.add_argument("--total-steps", type=int, required=True)
    plot.add_argument("--warmup-steps", type=int, default=0)
    decay = plot.add_mutually_exclusive_group()
    decay.add_argument("--decay-steps", type=int)
    decay.add_argument("--decay-ratio", type=float)
    plot.add_argument(
        "--decay-shape",
        nargs="+",
        default=["1-sqrt"],
        choices=list(DECAY_SHAPES),
        help="one or more: each is drawn as its own curve",
    )
    plot.add_argument("--warmup-shape", nargs="+", default=["linear"], choices=list(WARMUP_SHAPES))
    plot.add_argument("--init-ratio", type=float, default=0.0)
    plot.add_argument("--min-ratio", type=float, default=0.0)
    plot.add_argument(
        "--checkpoints",
        type=int,
        nargs="+",
        help="period ends (WSD-S), or a single K for geometric ends T >> (K - i)",
    )
    plot.add_argument("--start-step", type=int, default=0)
    plot.add_argument("--peak", type=float, default=1.0, help="peak learning rate (default 1)")
    plot.add_argument("--out", default="wsd_schedule.png", help="PNG path (default %(default)s)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    checkpoints = args.checkpoints
    if checkpoints is not None and len(checkpoints) == 1 and checkpoints[0] != args.total_steps:
        checkpoints = checkpoints[0]  # a single number other than T: geometric count K
    curves = {}
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
            print(f"error: {e}", file=sys.stderr)
            return 2
        label = decay_shape if len(args.warmup_shape) == 1 else f"{decay_shape}, {warmup_shape} warmup"
        curves[label] = (spec, args.peak)
        print(f"== {label}\n{spec.phase_table()}\n")
    from wsd_jax._plot import plot_schedules

    path = plot_schedules(curves, args.out)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
