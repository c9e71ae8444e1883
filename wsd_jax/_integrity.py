"""An integrity record of a checkpointed pytree: per-leaf shape, dtype and a 64-bit fingerprint
(``wsd_jax._fingerprint``), the step and run it was saved as, and the digests of the spec and extra
items saved with it.

Orbax keeps no checksum of array data, so a flipped byte in a saved array restores silently. Each
checkpoint therefore carries this record, written with the save and verified on every restore.

**Formats.** 1: leaves and the spec's digest (a per-element fingerprint); 2: the step and the run id
too; 3: the row-and-column fingerprint; 4 (written now): the record's own digest, ``record_sha256``,
so that a flipped bit anywhere in the record is found before any field of it is believed. Every
format is read (``parse_record``), each verified by what it recorded. A record that is not one of
these, in any field, is damage: ``CheckpointIntegrityError``, never a ``KeyError``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import numbers
import re
from typing import Any

import jax
import numpy as np

from wsd_jax._fingerprint import fingerprints, legacy_fingerprints

FORMAT = 4
READABLE = (1, 2, 3, 4)
_HEX16, _HEX64 = re.compile(r"[0-9a-f]{16}"), re.compile(r"[0-9a-f]{64}")
_PYTHON_TYPES = ("int", "float", "bool")


class CheckpointIntegrityError(RuntimeError):
    """A checkpoint's data is damaged: unreadable, or different from what was saved.

    ``WSDCheckpointManager.restore`` raises it; ``restore_latest_readable`` skips such a step with a
    warning and tries the next older one. Mistakes of the caller (a target whose structure, shapes or
    dtypes do not match the saved state) are ``ValueError``s instead and are never skipped.
    """


def short(error: BaseException, limit: int = 200) -> str:
    """An exception as one short line: its type and the first line of its message (TensorStore's
    run to thousands of characters of its spec)."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _is_python_scalar(leaf: Any) -> bool:
    return isinstance(leaf, (bool, numbers.Number)) and not hasattr(leaf, "dtype")


def _scalar_record(path: str, leaf: Any) -> dict[str, Any]:
    # Orbax restores a Python scalar as whatever the target asks for; compare the value itself.
    value = repr(leaf) if isinstance(leaf, float) and not math.isfinite(leaf) else leaf
    return {"path": path, "python": type(leaf).__name__, "value": value}


def json_digest(value: Any) -> str:
    """sha256 of a JSON value's canonical text (raises TypeError for what JSON cannot hold)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, allow_nan=False).encode()).hexdigest()


def spec_digest(spec_dict: dict[str, Any]) -> str:
    return json_digest(spec_dict)


def _seal(record: dict[str, Any]) -> str:
    return json_digest({k: v for k, v in record.items() if k != "record_sha256"})


def make_record(
    state: Any, spec_dict: dict[str, Any], *, step: int, run_id: str, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The integrity record of ``state`` (any pytree) saved as checkpoint ``step`` of run ``run_id``
    with the spec ``spec_dict`` and the extra items ``extra``, sealed with its own digest."""
    leaves = [(jax.tree_util.keystr(p), leaf) for p, leaf in jax.tree_util.tree_flatten_with_path(state)[0]]
    digests = iter(fingerprints([leaf for _, leaf in leaves if not _is_python_scalar(leaf)]))
    records = [
        _scalar_record(path, leaf)
        if _is_python_scalar(leaf)
        else {
            "path": path,
            "shape": list(np.shape(leaf)),
            "dtype": str(np.dtype(leaf.dtype)),
            "fingerprint": next(digests),
        }
        for path, leaf in leaves
    ]
    record = {"format": FORMAT, "step": step, "run_id": run_id, "spec_sha256": spec_digest(spec_dict),
              "leaves": records, "extra": {n: json_digest(v) for n, v in (extra or {}).items()}}  # fmt: skip
    record["record_sha256"] = _seal(record)
    return record


@dataclasses.dataclass(frozen=True)
class Record:
    """A parsed integrity record, every field checked.

    Attributes:
      format: 1 to 4.
      step: the step it was saved as (None for format 1, which does not bind its step).
      run_id: the run it was saved by (None for format 1).
      spec_sha256: the digest of the spec item saved with it.
      leaves: each leaf's entry, by path.
      extra: each extra item's digest, by name.
      sealed: whether the record carries its own digest (format 4): every field is as written, so a
        target that disagrees with it is the caller's mistake, never damage.
    """

    format: int
    step: int | None
    run_id: str | None
    spec_sha256: str
    leaves: dict[str, dict[str, Any]]
    extra: dict[str, str]
    sealed: bool

    def fingerprints(self, arrays: list[Any]) -> list[str]:
        """The fingerprints of ``arrays`` as this record's format computes them."""
        return (fingerprints if self.format >= 3 else legacy_fingerprints)(arrays)


def parse_record(record: Any, step: int) -> Record:
    """``record`` (as read from checkpoint ``step``) checked in every field; anything else than a
    record of a format this release reads is ``CheckpointIntegrityError``."""

    def bad(what: str) -> CheckpointIntegrityError:
        return CheckpointIntegrityError(f"checkpoint {step}: its integrity record is malformed ({what})")

    if not isinstance(record, dict):
        raise bad(f"a {type(record).__name__}, not a JSON object")
    fmt = record.get("format")
    if isinstance(fmt, bool) or not isinstance(fmt, int):
        raise bad(f"format {fmt!r}")
    if fmt not in READABLE:
        newer = " (written by a newer release?)" if fmt > FORMAT else ""
        raise CheckpointIntegrityError(
            f"checkpoint {step}: its integrity record has format {fmt}{newer}; this release reads formats "
            f"{READABLE[0]} to {READABLE[-1]}"
        )
    if fmt >= 4 and record.get("record_sha256") != _seal(record):
        raise CheckpointIntegrityError(
            f"checkpoint {step}: its integrity record is damaged (its digest differs)"
        )
    spec_sha = record.get("spec_sha256")
    if not isinstance(spec_sha, str) or not _HEX64.fullmatch(spec_sha):
        raise bad("spec_sha256")
    bound_step, run_id = None, None
    if fmt >= 2:
        bound_step, run_id = record.get("step"), record.get("run_id")
        if isinstance(bound_step, bool) or not isinstance(bound_step, int):
            raise bad(f"step {bound_step!r}")
        if not isinstance(run_id, str) or not run_id:
            raise bad("run_id")
    extra = record.get("extra", {})
    if not isinstance(extra, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and _HEX64.fullmatch(v) for k, v in extra.items()
    ):
        raise bad("extra")
    return Record(
        fmt, bound_step, run_id, spec_sha, _parse_leaves(record.get("leaves"), bad), dict(extra), fmt >= 4
    )


def _parse_leaves(leaves: Any, bad: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(leaves, list):
        raise bad("leaves")
    out: dict[str, dict[str, Any]] = {}
    for i, leaf in enumerate(leaves):
        if not isinstance(leaf, dict) or not isinstance(leaf.get("path"), str) or leaf["path"] in out:
            raise bad(f"leaf {i}")
        if "python" in leaf:
            if leaf["python"] not in _PYTHON_TYPES or "value" not in leaf:
                raise bad(f"leaf {leaf['path']}")
        else:
            shape, dtype, digest = leaf.get("shape"), leaf.get("dtype"), leaf.get("fingerprint")
            dims_ok = isinstance(shape, list) and all(
                isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape
            )
            if (
                not dims_ok
                or not _is_dtype(dtype)
                or not isinstance(digest, str)
                or not _HEX16.fullmatch(digest)
            ):
                raise bad(f"leaf {leaf['path']}")
        out[leaf["path"]] = leaf
    return out


def _is_dtype(name: Any) -> bool:
    if not isinstance(name, str):
        return False
    try:
        return np.dtype(name).kind != "O" and str(np.dtype(name)) == name
    except TypeError:
        return False


def check_binding(record: Record, step: int) -> None:
    """Raises ``CheckpointIntegrityError`` if ``record`` was saved as another step: a step folder
    swapped with another, copied or linked under another step's name. (Its run is checked by the
    manager, which knows the folder's run.)"""
    if record.step is not None and record.step != step:
        raise CheckpointIntegrityError(
            f"checkpoint {step}: its folder holds the checkpoint of step {record.step} (a step folder "
            "swapped, copied or linked under another step's name)"
        )


def check_spec(record: Record, spec_item: Any, step: int) -> None:
    """Raises ``CheckpointIntegrityError`` if the saved spec item is not the one the record was made
    with (a spec file changed after the save, even to another valid spec). The item is compared as
    it was written, so a spec saved by an earlier release (with fewer fields) is verified too."""
    try:
        digest = spec_digest(spec_item)
    except (TypeError, ValueError):
        digest = None
    if digest != record.spec_sha256:
        raise CheckpointIntegrityError(f"checkpoint {step}: its spec differs from the one saved with it")


def target_mismatch(record: Record, target: Any, step: int) -> str | None:
    """Where ``target`` does not match the saved state as the record describes it (structure, then
    each leaf's shape and dtype where the target states them), or None where it matches."""
    saved = record.leaves
    wanted = jax.tree_util.tree_flatten_with_path(target)[0]
    paths = [jax.tree_util.keystr(p) for p, _ in wanted]
    missing = [p for p in saved if p not in set(paths)]
    extra = [p for p in paths if p not in saved]
    if missing or extra:
        return (
            f"the restore target does not match checkpoint {step}'s structure: "
            + (f"leaves saved but not in the target: {missing[:5]}; " if missing else "")
            + (f"leaves in the target but not saved: {extra[:5]}" if extra else "")
        )
    for path, (_, leaf) in zip(paths, wanted, strict=True):
        entry = saved[path]
        if "python" in entry or not hasattr(leaf, "shape"):
            continue
        if list(leaf.shape) != entry["shape"]:
            return (
                f"restore target leaf {path} has shape {tuple(leaf.shape)}, but checkpoint {step} saved "
                f"shape {tuple(entry['shape'])}"
            )
        if hasattr(leaf, "dtype") and str(np.dtype(leaf.dtype)) != entry["dtype"]:
            return (
                f"restore target leaf {path} has dtype {np.dtype(leaf.dtype)}, but checkpoint {step} saved "
                f"dtype {entry['dtype']}"
            )
    return None


def verify(record: Record, restored: Any, step: int) -> None:
    """Raises ``CheckpointIntegrityError`` naming the step and the leaf if ``restored`` differs from
    what was saved."""
    saved = record.leaves
    leaves = [
        (jax.tree_util.keystr(p), leaf) for p, leaf in jax.tree_util.tree_flatten_with_path(restored)[0]
    ]
    for path, _ in leaves:
        if path not in saved:
            raise CheckpointIntegrityError(f"checkpoint {step}: leaf {path} has no integrity record")
    comparable = [  # arrays restored with the saved shape and dtype: fingerprinted together
        (path, leaf)
        for path, leaf in leaves
        if "python" not in saved[path]
        and list(np.shape(leaf)) == saved[path]["shape"]
        and str(np.dtype(leaf.dtype)) == saved[path]["dtype"]
    ]
    digests = dict(
        zip([p for p, _ in comparable], record.fingerprints([x for _, x in comparable]), strict=True)
    )
    for path, leaf in leaves:
        entry = saved[path]
        if "python" not in entry:
            ok = digests.get(path) == entry["fingerprint"]
        elif isinstance(entry["value"], str):
            ok = repr(leaf) == entry["value"]
        else:
            ok = _same_scalar(leaf, entry["value"])
        if not ok:
            raise CheckpointIntegrityError(
                f"checkpoint {step}: leaf {path} does not match its integrity record (the saved data "
                "is damaged)"
            )


def _same_scalar(restored: Any, saved: Any) -> bool:
    try:
        value = np.asarray(restored)
        if value.shape != ():
            return False
        return bool(value == np.asarray(saved).astype(value.dtype))
    except (TypeError, ValueError, OverflowError):
        return False
