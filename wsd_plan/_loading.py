"""A run from the files a training loop leaves behind: its log and its schedule (``load_run``).

A log is a CSV (``step,loss[,lr]``, a W&B export, or any columns named) or a TensorBoard event file
or run folder (``wsd_plan._logs``, ``wsd_plan._tensorboard``). A schedule is a ``WSDSpec`` saved as
JSON (``spec.to_dict()``; with ``peak``), the rates of every update from step 0 (``.npy``, or a
CSV/text file with one rate per line or an ``lr`` column), or the log's own rates when they cover
every update.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from wsd_core import WSDSpec
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
from wsd_plan._runs import LossRun


def load_run(
    log: str | Path,
    schedule: str | Path | None = None,
    *,
    peak: float | None = None,
    warmup_steps: int | None = None,
    step_column: str | None = None,
    loss_column: str | None = None,
    lr_column: str | None = None,
    name: str | None = None,
) -> LossRun:
    """A ``LossRun`` from a log file (or TensorBoard folder) and, optionally, its schedule file.

    Without ``schedule`` the log's logged rates must cover every update; with one, logged rates are
    checked against it (a log whose rates disagree is refused, naming the first step). Every error is
    a ``LogError`` (a ``ValueError``) naming the file, and the line or step.

    Args:
      log: the log: a CSV file, a TensorBoard event file, or a folder of event files.
      schedule: a ``WSDSpec`` JSON (needs ``peak``) or per-update rates (``.npy``, CSV or text).
      peak: the stable learning rate of a ``WSDSpec`` schedule.
      warmup_steps: as in ``LossRun`` (None: inferred).
      step_column: the log's step column, when its name is not among the usual ones.
      loss_column: the log's loss column (or TensorBoard tag), likewise.
      lr_column: the log's learning-rate column (or TensorBoard tag), likewise.
      name: the run's name in reports (default: the log's file name without its suffix); runs fit
        together must have distinct names.
    """
    read = read_log(log, step_column=step_column, loss_column=loss_column, lr_column=lr_column)
    if schedule is None:
        rates: WSDSpec | np.ndarray = rates_from_log(read)
        peak = None
    else:
        rates = read_schedule(schedule)
        if not isinstance(rates, WSDSpec):
            peak = None
        elif peak is None:
            raise LogError(f"{schedule} is a WSDSpec: give --peak, the stable learning rate")
    files = " with ".join(str(f) for f in (log, schedule) if f is not None)
    try:
        run = LossRun(rates, read.steps, read.losses, warmup_steps, name or Path(log).stem, peak)  # type: ignore[arg-type]
    except ValueError as e:
        raise LogError(f"{files}: {e}") from None
    if schedule is not None:
        check_logged_rates(read, run.lrs, str(schedule))
    return run


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
