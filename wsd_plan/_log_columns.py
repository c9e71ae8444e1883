"""What every log reader of the planner shares (CSV and TensorBoard, ``_logs`` and
``_tensorboard``): the ``Log`` record, ``LogError``, the usual names of the step, loss and rate
columns, and the lookup of a column by name."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

STEP_NAMES = ("step", "Step", "global_step", "_step", "trainer/global_step", "train/global_step")
LOSS_NAMES = ("loss", "train/loss", "train_loss", "training_loss", "loss/train")
LR_NAMES = ("lr", "learning_rate", "train/lr", "train/learning_rate", "lr-AdamW", "lr/group0")


class LogError(ValueError):
    """A log or schedule file cannot be used; the message names the file (and line) and why."""


@dataclasses.dataclass(frozen=True)
class Log:
    """The logged points of one run: the loss's steps (int64, increasing) and losses, and the rate's
    own steps and values (None when the log has no rate column). A logger often records the rate at
    other steps than the loss (every update, or less often)."""

    path: str
    steps: np.ndarray
    losses: np.ndarray
    lr_steps: np.ndarray | None = None
    lrs: np.ndarray | None = None


def find_column(path: str | Path, header: list[str], given: str | None, names: tuple[str, ...], what: str,
                flag: str) -> int:  # fmt: skip
    """The index of the column ``given``, else of the first of ``names``, else of a single W&B export
    column ``<run> - <name>``; a ``LogError`` naming ``flag`` when there is none or several."""
    index = find_optional_column(path, header, given, names, what, flag, required=True)
    assert index is not None
    return index


def find_optional_column(path: str | Path, header: list[str], given: str | None, names: tuple[str, ...],
                         what: str, flag: str, *, required: bool = False) -> int | None:  # fmt: skip
    """The index of the column ``given``, else of the first of ``names``, else of a single W&B export
    column ``<run> - <name>`` (not its ``__MIN``/``__MAX`` companions)."""
    if given is not None:
        if given not in header:
            raise LogError(f"{path}: no column {given!r} ({flag}); the columns are {header}")
        return header.index(given)
    for name in names:
        if name in header:
            return header.index(name)
    exported = [
        i
        for i, col in enumerate(header)
        if " - " in col and col.rsplit(" - ", 1)[1] in names and not col.endswith(("__MIN", "__MAX"))
    ]
    if len(exported) == 1:
        return exported[0]
    if not required and not exported:
        return None
    found = f"several: {[header[i] for i in exported]}" if exported else f"none of {list(names)}"
    raise LogError(f"{path}: which column holds the {what}? {found} in {header}; name it with {flag}")
