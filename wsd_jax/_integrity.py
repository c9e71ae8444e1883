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

import functools
import hashlib
import json
import math
import numbers
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

FORMAT = 1
_SALTS = (0x243F6A88, 0x85A308D3)  # two lanes: digits of pi, as in many hash constants
_GOLDEN = 0x9E3779B9


class CheckpointIntegrityError(RuntimeError):
    """A checkpoint's data is damaged: unreadable, or different from what was saved.

    ``WSDCheckpointManager.restore`` raises it; ``restore_latest_readable`` skips such a step with a
    warning and tries the next older one. Mistakes of the caller (a target whose structure, shapes or
    dtypes do not match the saved state) are ``ValueError``s instead and are never skipped.
    """


@functools.partial(jax.jit, static_argnums=1)
def _lanes(words: jax.Array, salt: int) -> jax.Array:
    n = words.size
    position = jnp.arange(n, dtype=jnp.uint32)  # global positions, also under a sharded jit
    h = words.reshape(-1) ^ (position * jnp.uint32(_GOLDEN) + jnp.uint32(salt))
    # murmur3's 32-bit finaliser: a bijection of h, so distinct element bits give distinct terms.
    h = h ^ (h >> 16)
    h = h * jnp.uint32(0x85EBCA6B)
    h = h ^ (h >> 13)
    h = h * jnp.uint32(0xC2B2AE35)
    h = h ^ (h >> 16)
    return jnp.sum(h, dtype=jnp.uint32)


def _words(leaf: Any) -> Any:
    """The leaf's element bits as uint32 words (1- and 2-byte elements widened, 8-byte ones split)."""
    if isinstance(leaf, jax.Array):
        itemsize = leaf.dtype.itemsize
        if itemsize in (4, 8):  # 8-byte elements become (..., 2) words, low word first
            return jax.lax.bitcast_convert_type(leaf, jnp.uint32)
        if leaf.dtype == jnp.bool_:
            return leaf.astype(jnp.uint32)
        return jax.lax.bitcast_convert_type(leaf, {1: jnp.uint8, 2: jnp.uint16}[itemsize]).astype(jnp.uint32)
    array = np.ascontiguousarray(np.asarray(leaf))
    itemsize = array.dtype.itemsize
    if itemsize in (4, 8):
        return jnp.asarray(array.view("<u4"))
    narrow = np.dtype(np.uint8) if itemsize == 1 else np.dtype("<u2")
    return jnp.asarray(array.view(narrow).astype(np.uint32))


def fingerprint(leaf: Any) -> str:
    """The 64-bit fingerprint of an array's values (jax or numpy), as 16 hex digits."""
    words = _words(leaf)
    return "".join(f"{int(_lanes(words, salt)):08x}" for salt in _SALTS)


def _is_python_scalar(leaf: Any) -> bool:
    return isinstance(leaf, (bool, numbers.Number)) and not hasattr(leaf, "dtype")


def _leaf_record(path: str, leaf: Any) -> dict[str, Any]:
    if _is_python_scalar(leaf):
        # Orbax restores a Python scalar as whatever the target asks for; compare the value itself.
        if isinstance(leaf, float) and not math.isfinite(leaf):
            return {"path": path, "python": type(leaf).__name__, "value": repr(leaf)}
        return {"path": path, "python": type(leaf).__name__, "value": leaf}
    return {
        "path": path,
        "shape": list(np.shape(leaf)),
        "dtype": str(np.dtype(leaf.dtype)),
        "fingerprint": fingerprint(leaf),
    }


def spec_digest(spec_dict: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(spec_dict, sort_keys=True).encode()).hexdigest()


def make_record(state: Any, spec_dict: dict[str, Any]) -> dict[str, Any]:
    """The integrity record of ``state`` (any pytree) saved with the spec ``spec_dict``."""
    leaves = jax.tree_util.tree_flatten_with_path(state)[0]
    return {
        "format": FORMAT,
        "spec_sha256": spec_digest(spec_dict),
        "leaves": [_leaf_record(jax.tree_util.keystr(p), leaf) for p, leaf in leaves],
    }


def check_record(record: Any, step: int) -> dict[str, Any]:
    """Returns ``record`` if it is a record of this format; otherwise the checkpoint is damaged."""
    if (
        not isinstance(record, dict)
        or record.get("format") != FORMAT
        or not isinstance(record.get("leaves"), list)
    ):
        raise CheckpointIntegrityError(f"checkpoint {step}: its integrity record is malformed")
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


def verify(record: dict[str, Any], restored: Any, spec_dict: dict[str, Any], step: int) -> None:
    """Raises ``CheckpointIntegrityError`` naming the step and the leaf if ``restored`` differs from
    what was saved (or the saved spec differs from the one the record was made with)."""
    if record.get("spec_sha256") != spec_digest(spec_dict):
        raise CheckpointIntegrityError(f"checkpoint {step}: its spec differs from the one saved with it")
    saved = {leaf["path"]: leaf for leaf in record["leaves"]}
    for p, leaf in jax.tree_util.tree_flatten_with_path(restored)[0]:
        path = jax.tree_util.keystr(p)
        entry = saved.get(path)
        if entry is None:
            raise CheckpointIntegrityError(f"checkpoint {step}: leaf {path} has no integrity record")
        if "python" in entry:
            ok = (
                repr(leaf) == entry["value"]
                if isinstance(entry["value"], str)
                else _same_scalar(leaf, entry["value"])
            )
        else:
            ok = (
                list(np.shape(leaf)) == entry["shape"]
                and str(np.dtype(leaf.dtype)) == entry["dtype"]
                and fingerprint(leaf) == entry["fingerprint"]
            )
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
