"""The main job (``make demo``): shows a WSD-S schedule, its phase table and a plot of every shape."""

from __future__ import annotations

import argparse
from pathlib import Path

from wsd_core import DECAY_SHAPES, WSDSpec
from wsd_jax._plot import plot_schedules


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="demo_output", help="folder for the PNG plots")
    args = parser.parse_args()
    out = Path(args.out)
    spec = WSDSpec(10_000, warmup_steps=500, decay_ratio=0.2, checkpoints=3, min_ratio=0.0)
    print(f"WSD-S schedule, 3 geometric checkpoints:\n{spec.phase_table()}\n")
    curves = {
        shape: (
            WSDSpec(10_000, warmup_steps=500, decay_ratio=0.2, decay_shape=shape, min_ratio=0.05),
            3e-4,
        )
        for shape in DECAY_SHAPES
    }
    curves["WSD-S (1-sqrt, 3 periods)"] = (spec, 3e-4)
    path = plot_schedules(curves, out / "schedules.png")
    print(f"wrote {path.resolve()}")


if __name__ == "__main__":
    main()
