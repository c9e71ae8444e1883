"""Training logs as the planner reads them: a CSV of logged steps, losses and (optionally) rates.

Plain CSV logs (``step,loss[,lr]``), Weights & Biases CSV exports (``Step`` and ``<run> - train/loss``
columns, with ``__MIN``/``__MAX`` companions and blank cells where a metric was not logged) and any
CSV whose columns are named explicitly. Every error names the file and, for a bad value, its line.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from wsd_plan._log_columns import (
    LOSS_NAMES,
    LR_NAMES,
    STEP_NAMES,
    Log,
    LogError,
    find_column,
    find_optional_column,
)


def read_table(path: str | Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The header and the data rows (with their line numbers) of a CSV file.

    A byte-order mark is accepted. A row with more fields than the header is refused: it is how a
    decimal comma (``2176,4,101``) shows, and dropping the extra field would read the loss as 4.
    """
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = [(line, row) for line, row in enumerate(csv.reader(f), start=1) if row]
    except (OSError, UnicodeDecodeError) as e:
        raise LogError(f"{path}: cannot read it ({getattr(e, 'strerror', None) or e})") from None
    except csv.Error as e:
        raise LogError(f"{path}: not a CSV file ({e})") from None
    if len(rows) < 2:
        raise LogError(f"{path}: no data rows under a header")
    (_, header), data = rows[0], rows[1:]
    header = [name.strip() for name in header]
    for line, row in data:
        if len(row) != len(header):
            hint = " (a decimal comma?)" if len(row) > len(header) else ""
            shown = ",".join(row)[:80]
            raise LogError(
                f"{path}:{line}: {len(row)} fields, but the header has {len(header)}{hint}: {shown}"
            )
    return header, data


def read_log(
    path: str | Path,
    *,
    step_column: str | None = None,
    loss_column: str | None = None,
    lr_column: str | None = None,
) -> Log:
    """The logged steps, losses and rates of a CSV log (see the module docstring), or of a TensorBoard
    event file or run folder (``wsd_plan._tensorboard``).

    Rows whose loss cell is blank are skipped (a W&B export has a row for every step at which any
    metric was logged). Steps must be integers in [0, 2**63 - 1], increasing; losses finite and > 0.
    """
    from wsd_plan._tensorboard import is_event_log, read_event_log

    if is_event_log(path):
        return read_event_log(path, step_column=step_column, loss_column=loss_column, lr_column=lr_column)
    if Path(path).is_dir():
        raise LogError(f"{path}: a folder with no TensorBoard event files (events.out.tfevents.*) in it")
    header, data = read_table(path)
    step_i = find_column(path, header, step_column, STEP_NAMES, "steps", "--step-column")
    loss_i = find_column(path, header, loss_column, LOSS_NAMES, "losses", "--loss-column")
    lr_i = find_optional_column(path, header, lr_column, LR_NAMES, "rates", "--lr-column")
    steps, losses, lr_steps, lrs = [], [], [], []
    for line, row in data:
        has_loss, has_lr = bool(row[loss_i].strip()), lr_i is not None and bool(row[lr_i].strip())
        if not (has_loss or has_lr):
            continue
        step = _step(path, line, row[step_i])
        if has_loss:
            steps.append(step)
            losses.append(read_number(path, line, row[loss_i], "loss", positive=True))
        if has_lr:
            lr_steps.append(step)
            lrs.append(read_number(path, line, row[lr_i], "lr", positive=False))  # type: ignore[index]
    if not steps:
        raise LogError(f"{path}: no row has a loss")
    for series in (steps, lr_steps):
        for k in range(1, len(series)):
            if series[k] <= series[k - 1]:
                raise LogError(f"{path}: steps must increase, but step {series[k]} follows {series[k - 1]}")
    return Log(
        str(path),
        np.asarray(steps, dtype=np.int64),
        np.asarray(losses, dtype=np.float64),
        np.asarray(lr_steps, dtype=np.int64) if lr_i is not None else None,
        np.asarray(lrs, dtype=np.float64) if lr_i is not None else None,
    )


def _step(path: str | Path, line: int, text: str) -> int:
    try:
        value: int | float = int(text)  # exact: a float would round steps past 2**53
    except ValueError:
        try:
            value = float(text)  # "2200.0", "1e4": loggers write steps as floats too
        except ValueError:
            raise LogError(f"{path}:{line}: the step {text!r} is not a number") from None
    if not math.isfinite(value) or value != int(value) or not 0 <= value <= 2**63 - 1:
        raise LogError(f"{path}:{line}: the step {text!r} is not an integer in [0, 2**63 - 1]")
    return int(value)


def read_number(path: str | Path, line: int, text: str, what: str, *, positive: bool) -> float:
    """A finite number (> 0 if ``positive``, else >= 0) from a CSV cell; a ``LogError`` naming the
    file and line otherwise."""
    try:
        value = float(text)
    except ValueError:
        raise LogError(f"{path}:{line}: the {what} {text!r} is not a number") from None
    if not math.isfinite(value) or (value <= 0 if positive else value < 0):
        valid = "> 0" if positive else ">= 0"
        raise LogError(f"{path}:{line}: the {what} {text!r} must be finite and {valid}")
    return value


def rates_from_log(log: Log) -> np.ndarray:
    """The rate of every update from the log's ``lr`` column, which must cover every update from 0
    to the last logged loss (otherwise the run's schedule is needed)."""
    if log.lrs is None or log.lr_steps is None:
        raise LogError(f"{log.path}: no lr column; give the run's schedule (a WSDSpec JSON or its rates)")
    last = int(log.steps[-1])
    covered = log.lr_steps[log.lr_steps <= last]
    if covered.size != last + 1 or not np.array_equal(covered, np.arange(last + 1)):
        raise LogError(
            f"{log.path}: the lr column covers {covered.size} of the {last + 1} updates up to step "
            f"{last}; give the run's schedule too (the logged rates are then checked against it)"
        )
    return log.lrs[: last + 1]


def check_logged_rates(log: Log, rates: np.ndarray, schedule: str, rtol: float = 1e-3) -> None:
    """Refuses a schedule that disagrees with the rates the run logged. A logger may record the rate
    of the update it just applied or of the next one: either matches."""
    if log.lrs is None or log.lr_steps is None:
        return
    inside = log.lr_steps < rates.size
    steps, logged = log.lr_steps[inside], log.lrs[inside]
    this = rates[steps]
    before = rates[np.maximum(steps - 1, 0)]
    close = lambda a: np.abs(a - logged) <= rtol * np.maximum(np.abs(logged), 1e-12)
    bad = np.flatnonzero(~(close(this) | close(before)))
    if bad.size:
        k = int(bad[0])
        raise LogError(
            f"{log.path}: the logged lr at step {steps[k]} is {logged[k]:g}, but {schedule} gives "
            f"{this[k]:g}: is it this run's schedule (and peak)?"
        )
