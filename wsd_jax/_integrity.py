"""An integrity record of a checkpointed pytree: per-leaf shape, dtype and a 64-bit fingerprint.

Orbax keeps no checksum of array data, so a flipped byte in a saved array restores silently. Each
checkpoint therefore carries this record, written with the save and verified on every restore.

The fingerprint of an array is a sum over its elements of a bijective hash of (element bits,
position), modulo 2**32, in two independently salted lanes. Why this form:

* It is a reduction written in ``jax.numpy``, so for a sharded ``jax.Array`` it runs where the shards
  live (an all-reduce of two scalars); no array is gathered to one host.
* It depends on the values and their global positions only, so it is the same whichever sharding the
  array is saved from or restored onto (Orbax reshards on restore).
* For a fixed position the hash is a bijection of the element's bits, so *any* change confined to one
  element changes both sums; changes to several elements go unnoticed with probability 2**-64.
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

FORMAT = 2  # 2: the record binds its step and its run
_SALTS = (0x243F6A88, 0x85A308D3)  # two lanes: digits of pi, as in many hash constants
_GOLDEN = 0x9E3779B9


class CheckpointIntegrityError(RuntimeError):
    """A checkpoint's data is damaged: unreadable, or different from what was saved.

    ``WSDCheckpointManager.restore`` raises it; ``restore_latest_readable`` skips such a step with a
    warning and tries the next older one. Mistakes of the caller (a target whose structure, shapes or
    dtypes do not match the saved state) are ``ValueError``s instead and are never skipped.
    """


def _mix(h: jax.Array) -> jax.Array:
    # A bijection of uint32 (xor-shifts and odd multipliers, murmur3's finaliser): distinct element
    # bits at one position always give distinct terms.
    h = h ^ (h >> 16)
    h = h * jnp.uint32(0x85EBCA6B)
    h = h ^ (h >> 13)
    h = h * jnp.uint32(0xC2B2AE35)
    return h ^ (h >> 16)


def _words(leaf: Any) -> jax.Array:
    """The leaf's element bits as uint32 words (1- and 2-byte elements widened, 8-byte ones split
    into two words, low word first as in little-endian memory). Traceable: runs inside the jit."""
    if leaf.dtype == jnp.bool_:
        return leaf.astype(jnp.uint32)
    itemsize = leaf.dtype.itemsize
    if itemsize in (4, 8):
        return jax.lax.bitcast_convert_type(leaf, jnp.uint32)
    return jax.lax.bitcast_convert_type(leaf, {1: jnp.uint8, 2: jnp.uint16}[itemsize]).astype(jnp.uint32)


@jax.jit
def _all_lanes(leaves: list[jax.Array]) -> jax.Array:
    """Both lanes of every leaf, shape (len(leaves), 2), in one program: one dispatch and a transfer
    of a few bytes to the host for the whole state."""
    out = []
    for leaf in leaves:
        words = _words(leaf).reshape(-1)
        position = jnp.arange(words.size, dtype=jnp.uint32) * jnp.uint32(_GOLDEN)  # global positions
        lanes = [jnp.sum(_mix(words ^ (position + jnp.uint32(salt))), dtype=jnp.uint32) for salt in _SALTS]
        out.append(jnp.stack(lanes))
    return jnp.stack(out) if out else jnp.zeros((0, 2), jnp.uint32)


def _as_device_input(leaf: Any) -> jax.Array:
    """A jax array as it is (sharded or not); a numpy array as the same bits in a dtype jax holds
    (jax may lack 64-bit types without x64: such arrays are handed over as their uint32 words)."""
    if isinstance(leaf, jax.Array):
        return leaf
    array = np.ascontiguousarray(np.asarray(leaf))
    if array.dtype.itemsize == 8:
        return jnp.asarray(array.view("<u4").reshape(*array.shape, 2))
    return jnp.asarray(array)


def fingerprints(leaves: list[Any]) -> list[str]:
    """The 64-bit fingerprint of each array's values (jax or numpy), as 16 hex digits each."""
    lanes = np.asarray(_all_lanes([_as_device_input(leaf) for leaf in leaves]))
    return [f"{int(a):08x}{int(b):08x}" for a, b in lanes]


def fingerprint(leaf: Any) -> str:
    """The 64-bit fingerprint of one array's values, as 16 hex digits."""
    return fingerprints([leaf])[0]


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


def make_record(state: Any, spec_dict: dict[str, Any], *, step: int, run_id: str) -> dict[str, Any]:
    """The integrity record of ``state`` (any pytree) saved as checkpoint ``step`` of run ``run_id``
    with the spec ``spec_dict``."""
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
    return {"format": FORMAT, "step": step, "run_id": run_id, "spec_sha256": spec_digest(spec_dict),
            "leaves": records}  # fmt: skip


def check_record(record: Any, step: int, run_id: str | None) -> dict[str, Any]:
    """Returns ``record`` if it is a record of this format, made for checkpoint ``step`` of the run
    ``run_id`` (None: a folder whose run id is unknown, checked for the step only).

    Otherwise the checkpoint is damaged: a step folder swapped with another, copied under another
    step, linked to another, or brought from another run's folder holds a record of another step or
    run. The record is an unkeyed hash: it guards against damage and mix-ups, not a forger."""
    if (
        not isinstance(record, dict)
        or record.get("format") != FORMAT
        or not isinstance(record.get("leaves"), list)
    ):
        raise CheckpointIntegrityError(f"checkpoint {step}: its integrity record is malformed")
    if record.get("step") != step:
        raise CheckpointIntegrityError(
            f"checkpoint {step}: its folder holds the checkpoint of step {record.get('step')!r} (a step "
            "folder swapped, copied or linked under another step's name)"
        )
    if run_id is not None and record.get("run_id") != run_id:
        raise CheckpointIntegrityError(
            f"checkpoint {step}: it was saved by another run ({record.get('run_id')!r}, this folder's is "
            f"{run_id!r}): a step folder copied from another run's folder"
        )
    return record


def check_target(record: dict[str, Any], target: Any, step: int) -> None:
    """Raises ``ValueError`` naming the first leaf where ``target`` does not match the saved state.

    Structure (the leaves' paths), shapes and dtypes are compared where the target states them; this
    runs before any array is read, so a caller's mistake is never taken for damage.
    """
    saved = {leaf["path"]: leaf for leaf in record["leaves"]}
    wanted = jax.tree_util.tree_flatten_with_path(target)[0]
    paths = [jax.tree_util.keystr(p) for p, _ in wanted]
    missing = [p for p in saved if p not in set(paths)]
    extra = [p for p in paths if p not in saved]
    if missing or extra:
        raise ValueError(
            f"the restore target does not match checkpoint {step}'s structure: "
            + (f"leaves saved but not in the target: {missing[:5]}; " if missing else "")
            + (f"leaves in the target but not saved: {extra[:5]}" if extra else "")
        )
    for path, leaf in zip(paths, (leaf for _, leaf in wanted), strict=True):
        entry = saved[path]
        if "python" in entry or not hasattr(leaf, "shape"):
            continue
        if list(leaf.shape) != entry["shape"]:
            raise ValueError(
                f"restore target leaf {path} has shape {tuple(leaf.shape)}, but checkpoint {step} "
                f"saved shape {tuple(entry['shape'])}"
            )
        if hasattr(leaf, "dtype") and str(np.dtype(leaf.dtype)) != entry["dtype"]:
            raise ValueError(
                f"restore target leaf {path} has dtype {np.dtype(leaf.dtype)}, but checkpoint {step} "
                f"saved dtype {entry['dtype']}"
            )


def check_spec(record: dict[str, Any], spec_dict: dict[str, Any], step: int) -> None:
    """Raises ``CheckpointIntegrityError`` if the saved spec is not the one the record was made with
    (a spec file changed after the save, even to another valid spec)."""
    if record.get("spec_sha256") != spec_digest(spec_dict):
        raise CheckpointIntegrityError(f"checkpoint {step}: its spec differs from the one saved with it")


def verify(record: dict[str, Any], restored: Any, step: int) -> None:
    """Raises ``CheckpointIntegrityError`` naming the step and the leaf if ``restored`` differs from
    what was saved."""
    saved = {leaf["path"]: leaf for leaf in record["leaves"]}
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
    digests = dict(zip([p for p, _ in comparable], fingerprints([x for _, x in comparable]), strict=True))
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
    value = np.asarray(restored)
    if value.shape != ():
        return False
    return bool(value == np.asarray(saved).astype(value.dtype))
