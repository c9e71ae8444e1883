"""An integrity record of a checkpointed pytree: per-leaf shape, dtype and a 64-bit fingerprint.

Orbax keeps no checksum of array data, so a flipped byte in a saved array restores silently. Each
checkpoint therefore carries this record, written with the save and verified on every restore.

The fingerprint of an array is defined on its bytes in C order, zero-padded to whole little-endian
uint32 words, laid out in rows of ``ROW`` words. Two lanes, modulo 2**32:

* lane A: the sum over rows r of ``mix(row_sum[r] ^ (r * GOLDEN + SALT_A))``;
* lane B: the sum over columns c of ``mix(column_sum[c] ^ (c * GOLDEN + SALT_B))``;

where ``row_sum`` and ``column_sum`` are wrapping uint32 sums of the words and ``mix`` is a bijection
of uint32 (murmur3's finaliser). Why this form:

* It costs two plain sums over the data, which run at memory speed: about a tenth of the read it
  guards (``python -m benchmarks --only integrity``). The earlier form mixed every word, which cost
  more than the read itself on a CPU.
* Any change confined to one word changes its row's sum by a nonzero amount, so lane A always
  changes (``mix`` is a bijection). Two unequal words exchanged change the row sums (different rows)
  or the column sums (one row); a chunk moved elsewhere, or random damage to many words, changes
  the lanes except with probability about 2**-32 to 2**-64. It is not a cryptographic hash: a
  change crafted to keep every row and column sum escapes it, as a forger would (see the threat
  model in docs/checkpoints.md).
* It depends on the values and their positions only, so it is the same whichever sharding the array
  is saved from or restored onto (Orbax reshards on restore). Arrays on the host (numpy, jax on
  CPU) are summed by numpy in place; others by the same sums in ``jax.numpy``, where the shards live
  (an all-reduce of the sums; no array is gathered to one host). Both give the same bits (tested).
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

FORMAT = 3  # 2: the record binds its step and its run; 3: the row-and-column fingerprint
ROW = 1024  # words per row of the fingerprint's layout
_SALTS = (0x243F6A88, 0x85A308D3)  # lanes A and B: digits of pi, as in many hash constants
_GOLDEN = 0x9E3779B9
_M1, _M2 = 0x85EBCA6B, 0xC2B2AE35  # murmur3's finaliser


class CheckpointIntegrityError(RuntimeError):
    """A checkpoint's data is damaged: unreadable, or different from what was saved.

    ``WSDCheckpointManager.restore`` raises it; ``restore_latest_readable`` skips such a step with a
    warning and tries the next older one. Mistakes of the caller (a target whose structure, shapes or
    dtypes do not match the saved state) are ``ValueError``s instead and are never skipped.
    """


# --- on the host: numpy, in place ------------------------------------------------------------------


def _mix_host(h: np.ndarray) -> np.ndarray:
    # A bijection of uint32: distinct sums at one position always give distinct terms.
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(_M1)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(_M2)
    return h ^ (h >> np.uint32(16))


def _lanes_from_sums(rows: np.ndarray, columns: np.ndarray) -> tuple[int, int]:
    lanes = []
    for sums, salt in zip((rows, columns), _SALTS, strict=True):
        position = np.arange(sums.size, dtype=np.uint32) * np.uint32(_GOLDEN) + np.uint32(salt)
        lanes.append(int(np.add.reduce(_mix_host(sums ^ position), dtype=np.uint32)))
    return lanes[0], lanes[1]


def _host_lanes(array: np.ndarray) -> tuple[int, int]:
    """Both lanes of an array in host memory: two reductions over a view of its bytes, no copy
    (but for the last partial word)."""
    data = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
    whole = data.size // 4 * 4
    words = data[:whole].view("<u4")
    full = words.size // ROW
    grid = words[: full * ROW].reshape(full, ROW)
    rows = np.add.reduce(grid, axis=1, dtype=np.uint32)
    columns = np.add.reduce(grid, axis=0, dtype=np.uint32)
    rest = words[full * ROW :]
    if whole < data.size:  # the last bytes, zero-padded to a word
        last = np.zeros(4, np.uint8)
        last[: data.size - whole] = data[whole:]
        rest = np.concatenate([rest, last.view("<u4")])
    if rest.size:
        rows = np.append(rows, np.add.reduce(rest, dtype=np.uint32))
        columns[: rest.size] += rest
    return _lanes_from_sums(rows, columns)


# --- where the arrays live: the same sums in jax.numpy ---------------------------------------------


def _mix(h: jax.Array) -> jax.Array:
    h = h ^ (h >> 16)
    h = h * jnp.uint32(_M1)
    h = h ^ (h >> 13)
    h = h * jnp.uint32(_M2)
    return h ^ (h >> 16)


def _device_words(leaf: jax.Array) -> jax.Array:
    """The leaf's bytes in C order as little-endian uint32 words, the last zero-padded. Traceable."""
    if leaf.dtype == jnp.bool_:
        leaf = leaf.astype(jnp.uint8)
    itemsize = leaf.dtype.itemsize
    if itemsize in (4, 8):  # an 8-byte element splits into its low word, then its high word
        return jax.lax.bitcast_convert_type(leaf, jnp.uint32).reshape(-1)
    small = jax.lax.bitcast_convert_type(leaf, {1: jnp.uint8, 2: jnp.uint16}[itemsize]).reshape(-1)
    per_word = 4 // itemsize
    small = jnp.pad(small, (0, -small.size % per_word)).astype(jnp.uint32).reshape(-1, per_word)
    shifts = jnp.arange(per_word, dtype=jnp.uint32) * jnp.uint32(8 * itemsize)
    return jnp.sum(small << shifts, axis=1, dtype=jnp.uint32)  # disjoint bits: the sum is an or


@jax.jit
def _device_lanes(leaves: list[jax.Array]) -> jax.Array:
    """Both lanes of every leaf, shape (len(leaves), 2), in one program: one dispatch and a transfer
    of a few bytes to the host for the whole state."""
    out = []
    for leaf in leaves:
        words = _device_words(leaf)
        grid = jnp.pad(words, (0, -words.size % ROW)).reshape(-1, ROW)
        lanes = []
        for sums, salt in zip((jnp.sum(grid, axis=1, dtype=jnp.uint32),
                               jnp.sum(grid, axis=0, dtype=jnp.uint32)), _SALTS, strict=True):  # fmt: skip
            position = jnp.arange(sums.size, dtype=jnp.uint32) * jnp.uint32(_GOLDEN) + jnp.uint32(salt)
            lanes.append(jnp.sum(_mix(sums ^ position), dtype=jnp.uint32))
        out.append(jnp.stack(lanes))
    return jnp.stack(out) if out else jnp.zeros((0, 2), jnp.uint32)


def _on_host(leaf: Any) -> bool:
    """Whether the leaf's data is in this process's memory (numpy, or jax on CPU devices only)."""
    if not isinstance(leaf, jax.Array):
        return True
    return leaf.is_fully_addressable and all(getattr(d, "platform", "") == "cpu" for d in leaf.devices())


def fingerprints(leaves: list[Any]) -> list[str]:
    """The 64-bit fingerprint of each array's values (jax or numpy), as 16 hex digits each."""
    elsewhere = [leaf for leaf in leaves if not _on_host(leaf)]
    computed = iter(np.asarray(_device_lanes(elsewhere)) if elsewhere else [])
    lanes = [_host_lanes(np.asarray(leaf)) if _on_host(leaf) else tuple(next(computed)) for leaf in leaves]
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
