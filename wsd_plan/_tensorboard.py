"""TensorBoard event files as the planner reads them, through TensorBoard's own reader.

``EventAccumulator`` (from the ``tensorboard`` package, extra ``wsd-schedule[tensorboard]``) reads
an event file or a run's folder of them, and handles several files of one run. It stops quietly at a
damaged record, so ``check_records`` verifies every record's framing and checksums first. Scalars written
as ``simple_value`` (``torch.utils.tensorboard``, Lightning, HF Trainer) and as 0-d tensors
(``tf.summary`` in TF2) are both read. A run restarted from a checkpoint logs some steps again: the
later values replace the earlier from that step on (``without_orphans``).

Tags play the role of CSV columns: the loss and the rate are found among ``LOSS_NAMES`` and
``LR_NAMES`` (or named with ``--loss-column`` / ``--lr-column``); steps are the events' own.
"""

from __future__ import annotations

import math
import struct
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from wsd_plan._log_columns import LOSS_NAMES, LR_NAMES, Log, LogError, find_optional_column


def is_event_log(path: str | Path) -> bool:
    """Whether ``path`` is a TensorBoard event file or a folder holding some (directly)."""
    path = Path(path)
    if path.is_dir():
        return any(p.name.startswith("events.out.tfevents") for p in path.iterdir())
    return path.name.startswith("events.out.tfevents")


def _event_files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.name.startswith("events.out.tfevents") and p.is_file())
    return [path]


def check_records(path: str | Path, masked_crc32c: Any) -> int:
    """The records of one event file whose framing and checksums hold (TFRecord: an 8-byte length,
    its 4-byte masked CRC-32C, the data, the data's masked CRC-32C), refusing a damaged file.

    TensorBoard's reader stops quietly at the first bad record, so a flipped byte or a cut made
    half a run's points vanish. Here a checksum that fails is damage, refused with the record and
    its byte offset; a file that ends inside its last record (a writer still running, or a copy cut
    short) is read up to it with a warning saying how many records were read and where it ends."""
    data = Path(path).read_bytes()
    offset, records = 0, 0
    while offset < len(data):
        if len(data) - offset < 12:
            return _partial(path, records, offset, len(data))
        header = data[offset : offset + 8]
        (length,) = struct.unpack("<Q", header)
        (header_crc,) = struct.unpack("<I", data[offset + 8 : offset + 12])
        if masked_crc32c(header) != header_crc:
            raise LogError(f"{path}: damaged: record {records} (byte {offset}) fails its length checksum")
        end = offset + 12 + length + 4
        if end > len(data):
            return _partial(path, records, offset, len(data))
        (data_crc,) = struct.unpack("<I", data[end - 4 : end])
        if masked_crc32c(data[offset + 12 : end - 4]) != data_crc:
            raise LogError(f"{path}: damaged: record {records} (byte {offset}) fails its data checksum")
        offset, records = end, records + 1
    return records


def _partial(path: str | Path, records: int, offset: int, size: int) -> int:
    warnings.warn(
        f"{path}: the file ends inside record {records} (bytes {offset} to {size} of a record are "
        f"missing or cut): read the {records} whole record(s) before it, dropped the partial one "
        "(a writer still running, or a copy cut short?)",
        UserWarning,
        stacklevel=4,
    )
    return records


def _accumulator(path: str | Path) -> Any:
    try:
        from tensorboard.backend.event_processing import event_accumulator
        from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c
    except ImportError as e:
        raise LogError(
            f"{path}: reading TensorBoard event files needs the tensorboard package: "
            f"pip install 'wsd-schedule[tensorboard]' ({e})"
        ) from None
    for file in _event_files(Path(path)):
        check_records(file, masked_crc32c)
    # size_guidance 0: keep every event (the default samples 10,000 scalars per tag)
    acc = event_accumulator.EventAccumulator(str(path), size_guidance={"scalars": 0, "tensors": 0})
    try:
        acc.Reload()
    except Exception as e:  # a corrupt record, a truncated file: say which file, no traceback
        raise LogError(f"{path}: not a readable TensorBoard event log ({type(e).__name__}: {e})") from None
    return acc


def without_orphans(steps: list[int], values: list[float]) -> tuple[list[int], list[float]]:
    """The events a restarted run left current: a step logged again (a step at or below the last one
    seen) means the run restarted from a checkpoint there, so everything logged from that step on
    before it is dropped. TensorBoard's reader does this itself only when the writer marked the
    restart (a ``SessionLog.START`` event), which torch's ``SummaryWriter`` does not."""
    kept_steps: list[int] = []
    kept_values: list[float] = []
    for step, value in zip(steps, values, strict=True):
        while kept_steps and kept_steps[-1] >= step:
            kept_steps.pop()
            kept_values.pop()
        kept_steps.append(step)
        kept_values.append(value)
    return kept_steps, kept_values


def _series(path: str | Path, acc: Any, tag: str) -> tuple[list[int], list[float]]:
    """(steps, values) of a scalar tag, from ``simple_value`` scalars or 0-d tensors, in the order
    written (files by name, i.e. by creation time), without a restart's orphans."""
    tags = acc.Tags()
    if tag in tags.get("scalars", []):
        events = acc.Scalars(tag)
        return without_orphans([int(e.step) for e in events], [float(e.value) for e in events])
    from tensorboard.util import tensor_util

    steps, values = [], []
    for e in acc.Tensors(tag):
        value = tensor_util.make_ndarray(e.tensor_proto)
        if value.size != 1:
            raise LogError(f"{path}: the tag {tag!r} holds tensors of shape {value.shape}, not scalars")
        steps.append(int(e.step))
        values.append(float(value.reshape(())))
    return without_orphans(steps, values)


def read_event_log(
    path: str | Path,
    *,
    step_column: str | None = None,
    loss_column: str | None = None,
    lr_column: str | None = None,
) -> Log:
    """The logged steps and losses, and the rate's own steps and values (None without a rate tag), of
    a TensorBoard event file or run folder. Errors name the file, the tag and the step."""
    if step_column is not None:
        raise LogError(f"{path}: a TensorBoard log carries its own steps; --step-column is for CSV logs")
    acc = _accumulator(path)
    tags = acc.Tags()
    scalar_tags = sorted(set(tags.get("scalars", [])) | set(tags.get("tensors", [])))
    if not scalar_tags:
        raise LogError(f"{path}: no scalars logged (a TensorBoard event log with no scalar tags)")
    loss_i = find_optional_column(path, scalar_tags, loss_column, LOSS_NAMES, "losses", "--loss-column",
                                  required=True)  # fmt: skip
    assert loss_i is not None
    lr_i = find_optional_column(path, scalar_tags, lr_column, LR_NAMES, "rates", "--lr-column")
    loss_tag = scalar_tags[loss_i]
    steps, losses = _series(path, acc, loss_tag)
    for step, loss in zip(steps, losses, strict=True):
        if not math.isfinite(loss) or loss <= 0:
            raise LogError(f"{path}: step {step}: the loss ({loss_tag!r}) {loss!r} must be finite and > 0")
    if not steps:
        raise LogError(f"{path}: the tag {loss_tag!r} holds no events")
    lr_steps = lrs = None
    if lr_i is not None:
        lr_tag = scalar_tags[lr_i]
        at, values = _series(path, acc, lr_tag)
        for step, lr in zip(at, values, strict=True):
            if not math.isfinite(lr) or lr < 0:
                raise LogError(f"{path}: step {step}: the lr ({lr_tag!r}) {lr!r} must be finite and >= 0")
        lr_steps, lrs = np.asarray(at, dtype=np.int64), np.asarray(values, dtype=np.float64)
    return Log(
        str(path), np.asarray(steps, dtype=np.int64), np.asarray(losses, dtype=np.float64), lr_steps, lrs
    )
