"""Which run a checkpoint folder holds, so that a step folder copied in from another run is refused.

Every checkpoint's integrity record names the run that saved it. The folder keeps that id in
``.wsd-run-id`` too, but only as a witness that never decides alone whether an intact checkpoint is
readable: the id it names counts only when some checkpoint of the folder carries it. So

* a damaged, empty or binary ``.wsd-run-id``, or one naming no checkpoint of the folder (a folder
  copied with ``cp -r src/* dst/``, which skips dotfiles, then resumed), is ignored with a warning,
  and every checkpoint is checked for its step alone;
* a folder without one (``rsync`` or ``gsutil cp`` of the step folders) is read the same way;
* a writer adopts the run of the newest checkpoint in the folder (the one it resumes from) and
  writes the file again, so a copied run stays one run; a new id is made only for an empty folder.

A step whose record names another run than the one the folder's file names, where some other step
carries the file's id, was copied in from another run's folder: that is damage.
"""

from __future__ import annotations

import logging
import os
import re
import uuid
from pathlib import Path

RUN_ID_NAME = ".wsd-run-id"
_WELL_FORMED = re.compile(r"[0-9a-f]{32}")
_log = logging.getLogger("wsd_jax._checkpoint")


def new_run_id() -> str:
    return uuid.uuid4().hex


def read_folder_id(directory: str | os.PathLike[str]) -> str | None:
    """The id ``.wsd-run-id`` names, or None: no file, or one that is not an id (warned about: a
    damaged file is ignored, never trusted)."""
    path = Path(directory) / RUN_ID_NAME
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        _log.warning("%s cannot be read (%s): ignored; the checkpoints' own records decide", path, e)
        return None
    text = data.decode("ascii", errors="replace").strip()
    if not _WELL_FORMED.fullmatch(text):
        _log.warning(
            "%s is damaged (%d bytes that are not a run id): ignored; each checkpoint is checked for its "
            "step, and the next writer writes it again",
            path,
            len(data),
        )
        return None
    return text


def write_folder_id(directory: str | os.PathLike[str], run_id: str) -> None:
    """Writes ``run_id`` as the folder's, atomically (a crash leaves the old file or the new one)."""
    path = Path(directory) / RUN_ID_NAME
    partial = path.with_name(f"{RUN_ID_NAME}.{new_run_id()}.tmp")
    partial.write_text(run_id + "\n")
    os.replace(partial, path)
