"""The published loss curves shipped with the package, as ``LossRun``s.

``data/loss-curves/`` holds the curves released with the Multi-Power Law paper (Luo et al., ICLR
2025; MIT License, Copyright (c) 2025 Kairong Luo: see its ``LICENSE`` and ``README.md``): 25M and
100M-parameter LMs under nine schedules. The CSVs log the rate only at logged steps; each run's rate
for every update is rebuilt here from the definitions in the data's README (the test suite checks
the two agree).

``data/loss-curves-schaipp/`` holds the WSD runs of Schaipp et al. 2025 (MIT License, Copyright (c)
2025 Fabian Schaipp and Alexander Hägele: see its ``LICENSE`` and ``README.md``): Llama models of 33M
to 360M parameters on SlimPajama and OpenWebText2 (``SCHAIPP_MODELS``, e.g. ``"slimpajama-60M"``),
each a constant trunk (``"trunk"``) and cooldowns of 20% of a run to 0 (``"cooldown_<updates>"``),
validation loss every 200 updates. A cooldown was restarted from its trunk's checkpoint: its log
starts there.

``published_runs`` and ``published_rates`` are also ``wsd_plan``'s; the constants name the paper's
protocol (``PAPER_FIT``: the three runs it fits, ``PAPER_PREDICT``: the six it predicts; ``PEAK``,
``FLOOR`` and ``WARMUP`` of every run; ``MODELS``) for scripts that reproduce it.

Examples:
  >>> runs = published_runs("lm-25M")
  >>> sorted(runs)[:3]
  ['constant_24000', 'constant_72000', 'cosine_24000']
  >>> runs["wsd_20000_24000"].lrs[[0, 2159, 20000, 23999]].round(7).tolist()
  [0.0, 0.0003, 0.0003, 3e-05]
"""

from __future__ import annotations

import csv
import functools
import json
from pathlib import Path

import numpy as np

from wsd_core.backend import check_choice
from wsd_plan._runs import LossRun

__all__ = [
    "DATA",
    "FLOOR",
    "MODELS",
    "PAPER_FIT",
    "PAPER_PREDICT",
    "PEAK",
    "RUNS",
    "SCHAIPP_DATA",
    "SCHAIPP_MODELS",
    "WARMUP",
    "published_rates",
    "published_runs",
    "read_published",
    "schaipp_rates",
]

DATA = Path(__file__).resolve().parent / "data" / "loss-curves"
SCHAIPP_DATA = Path(__file__).resolve().parent / "data" / "loss-curves-schaipp" / "runs.json"
MODELS = ("lm-25M", "lm-100M")
SCHAIPP_MODELS = ("slimpajama-33M", "slimpajama-53M", "slimpajama-60M", "slimpajama-93M", "slimpajama-152M",
                  "slimpajama-209M", "slimpajama-360M", "openwebtext2-60M", "openwebtext2-93M",
                  "openwebtext2-166M")  # fmt: skip
PEAK, FLOOR, WARMUP = 3e-4, 3e-5, 2160
# The paper's protocol: fit on three runs, predict the six others.
PAPER_FIT = ("cosine_24000", "constant_24000", "wsdcon_9")
PAPER_PREDICT = (
    "constant_72000",
    "cosine_72000",
    "wsd_20000_24000",
    "wsdld_20000_24000",
    "wsdcon_3",
    "wsdcon_18",
)
RUNS = PAPER_FIT + PAPER_PREDICT


def published_rates(name: str) -> np.ndarray:
    """The rate of every update (from step 0) of run ``name``, per the data's README."""
    check_choice("name", name, sorted(RUNS))
    kind, _, rest = name.partition("_")
    total = 16000 if kind == "wsdcon" else int(rest.split("_")[-1])
    t = np.arange(total, dtype=np.float64)
    lrs = np.full(total, PEAK)
    if kind == "cosine":
        lrs = FLOOR + 0.5 * (PEAK - FLOOR) * (1.0 + np.cos(np.pi * (t - WARMUP) / (total - WARMUP)))
    elif kind == "wsd":  # geometric: the peak ** (1 - p) * floor ** p over 20000 .. 24000
        decay = t >= 20000
        lrs[decay] = PEAK ** ((total - t[decay]) / 4000) * FLOOR ** ((t[decay] - 20000) / 4000)
    elif kind == "wsdld":
        decay = t >= 20000
        lrs[decay] = PEAK + (FLOOR - PEAK) * (t[decay] - 20000) / 4000
    elif kind == "wsdcon":
        lrs[t >= 8000] = {"3": 3e-5, "9": 9e-5, "18": 1.8e-4}[rest]
    lrs[:WARMUP] = np.linspace(0.0, PEAK, WARMUP)
    return lrs


def read_published(model: str, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(steps, logged rates, losses) of a shipped CSV, the steps before the run's end (as the
    paper's code reads them)."""
    check_choice("model", model, MODELS)
    total = published_rates(name).size
    with open(DATA / model / f"{name}.csv", newline="") as f:
        rows = [(int(r["step"]), float(r["lr"]), float(r["loss"])) for r in csv.DictReader(f)]
    steps, lrs, losses = (np.asarray(c) for c in zip(*(r for r in rows if r[0] < total), strict=True))
    return steps, lrs, losses


def published_runs(model: str = "lm-25M") -> dict[str, LossRun]:
    """Every published run of ``model`` by name: ``"lm-25M"`` or ``"lm-100M"`` (the Multi-Power Law
    paper's nine schedules), or one of ``SCHAIPP_MODELS`` (a trunk and its cooldowns)."""
    check_choice("model", model, MODELS + SCHAIPP_MODELS)
    if model in SCHAIPP_MODELS:
        return {name: _schaipp_run(name, run) for name, run in _schaipp()[model].items()}
    out = {}
    for name in RUNS:
        steps, _, losses = read_published(model, name)
        out[name] = LossRun(published_rates(name), steps, losses, WARMUP, name)
    return out


@functools.cache
def _schaipp() -> dict[str, dict[str, dict]]:
    with open(SCHAIPP_DATA) as f:
        return json.load(f)


def schaipp_rates(run: dict) -> np.ndarray:
    """The rate of every update of one of Schaipp et al.'s runs, from its settings: a linear warmup
    from 1% of the peak, the peak, and a linear cooldown to 0 over the last ``cooldown_fraction`` of
    the run (a trunk: none; its log's last rate, 0, is the scheduler's value after its last update)."""
    peak, total, fraction = run["peak"], run["iterations"], run["cooldown_fraction"]
    t = np.arange(total + 1, dtype=np.float64)
    lrs = np.full(total + 1, peak)
    warmup = run["warmup_steps"]
    lrs[:warmup] = peak * (0.01 + 0.99 * t[:warmup] / warmup)
    if fraction:
        decay = t >= total * (1.0 - fraction)
        lrs[decay] = peak * (total - t[decay]) / (fraction * total)
    return lrs


def _schaipp_run(name: str, run: dict) -> LossRun:
    steps, losses = np.asarray(run["step"]), np.asarray(run["loss"], np.float64)
    return LossRun(schaipp_rates(run), steps, losses, run["warmup_steps"], name)
