"""The shipped loss curves (tests/data/loss-curves, MIT, see its README and LICENSE) as LossRuns.

Each run's full per-step LR sequence is rebuilt from the definitions in the data's README (the CSVs
log the rate only at logged steps; a test checks the two agree).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parent / "data" / "loss-curves"
PEAK, FLOOR, WARMUP = 3e-4, 3e-5, 2160
FIT_PAPER = ("cosine_24000", "constant_24000", "wsdcon_9")
PREDICT_PAPER = (
    "constant_72000",
    "cosine_72000",
    "wsd_20000_24000",
    "wsdld_20000_24000",
    "wsdcon_3",
    "wsdcon_18",
)


def learning_rates(name: str) -> np.ndarray:
    """The per-step LR sequence of run ``name`` (step t counted from 0)."""
    kind, _, rest = name.partition("_")
    total = {"wsdcon": 16000}.get(kind, int(rest.split("_")[-1]))
    t = np.arange(total, dtype=np.float64)
    lrs = np.full(total, PEAK)
    if kind == "cosine":
        lrs = FLOOR + 0.5 * (PEAK - FLOOR) * (1.0 + np.cos(np.pi * (t - WARMUP) / (total - WARMUP)))
    elif kind == "wsd":
        decay = t >= 20000
        lrs[decay] = PEAK ** ((total - t[decay]) / 4000) * FLOOR ** ((t[decay] - 20000) / 4000)
    elif kind == "wsdld":
        decay = t >= 20000
        lrs[decay] = PEAK + (FLOOR - PEAK) * (t[decay] - 20000) / 4000
    elif kind == "wsdcon":
        lrs[t >= 8000] = {"3": 3e-5, "9": 9e-5, "18": 1.8e-4}[rest]
    lrs[:WARMUP] = np.linspace(0.0, PEAK, WARMUP)
    return lrs


def load(model: str, name: str):
    """(steps, logged lrs, losses) of a shipped CSV, steps < the run's length (as the paper does)."""
    with open(DATA / model / f"{name}.csv") as f:
        rows = [(int(r["step"]), float(r["lr"]), float(r["loss"])) for r in csv.DictReader(f)]
    total = learning_rates(name).size
    rows = [r for r in rows if r[0] < total]
    steps, lrs, losses = (np.asarray(c) for c in zip(*rows, strict=True))
    return steps, lrs, losses


def run(model: str, name: str):
    from wsd_jax.planner import LossRun

    steps, _, losses = load(model, name)
    return LossRun(lrs=learning_rates(name), steps=steps, losses=losses, warmup_steps=WARMUP, name=name)
