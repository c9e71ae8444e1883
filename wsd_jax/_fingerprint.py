"""The 64-bit fingerprint of an array's values, which an integrity record keeps for every leaf.

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

**Records of formats 1 and 2** (written before the row-and-column form) fingerprint each element on
its own: the sum over elements of ``mix(word ^ (position * GOLDEN + SALT))``, a lane per salt, where an
element narrower than 4 bytes is widened to one word and an 8-byte element is two words (low, then
high), each with its own position. ``legacy_fingerprints`` computes it, so that those checkpoints are
verified by what they recorded.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

ROW = 1024  # words per row of the fingerprint's layout
_SALTS = (0x243F6A88, 0x85A308D3)  # lanes A and B: digits of pi, as in many hash constants
_GOLDEN = 0x9E3779B9
_M1, _M2 = 0x85EBCA6B, 0xC2B2AE35  # murmur3's finaliser


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


# --- records of formats 1 and 2: a per-element fingerprint -----------------------------------------


def _host_element_words(array: np.ndarray) -> np.ndarray:
    """Each element's bits as uint32 words: narrower elements widened, 8-byte ones split (low first)."""
    data = np.ascontiguousarray(array)
    if data.dtype.itemsize in (4, 8):
        return data.reshape(-1).view("<u4")
    narrow = np.uint8 if data.dtype.itemsize == 1 else np.dtype("<u2")
    return data.reshape(-1).view(narrow).astype(np.uint32)


def _legacy_host(array: np.ndarray) -> tuple[int, int]:
    words = _host_element_words(array)
    position = np.arange(words.size, dtype=np.uint32) * np.uint32(_GOLDEN)
    lanes = [
        np.add.reduce(_mix_host(words ^ (position + np.uint32(salt))), dtype=np.uint32) for salt in _SALTS
    ]
    return int(lanes[0]), int(lanes[1])


def _device_element_words(leaf: jax.Array) -> jax.Array:
    if leaf.dtype == jnp.bool_:
        return leaf.astype(jnp.uint32).reshape(-1)
    itemsize = leaf.dtype.itemsize
    if itemsize in (4, 8):
        return jax.lax.bitcast_convert_type(leaf, jnp.uint32).reshape(-1)
    narrow = {1: jnp.uint8, 2: jnp.uint16}[itemsize]
    return jax.lax.bitcast_convert_type(leaf, narrow).astype(jnp.uint32).reshape(-1)


@jax.jit
def _legacy_device(leaves: list[jax.Array]) -> jax.Array:
    out = []
    for leaf in leaves:
        words = _device_element_words(leaf)
        position = jnp.arange(words.size, dtype=jnp.uint32) * jnp.uint32(_GOLDEN)
        lanes = [jnp.sum(_mix(words ^ (position + jnp.uint32(salt))), dtype=jnp.uint32) for salt in _SALTS]
        out.append(jnp.stack(lanes))
    return jnp.stack(out) if out else jnp.zeros((0, 2), jnp.uint32)


def legacy_fingerprints(leaves: list[Any]) -> list[str]:
    """The fingerprint records of formats 1 and 2 kept, as 16 hex digits per array."""
    elsewhere = [leaf for leaf in leaves if not _on_host(leaf)]
    computed = iter(np.asarray(_legacy_device(elsewhere)) if elsewhere else [])
    lanes = [_legacy_host(np.asarray(leaf)) if _on_host(leaf) else tuple(next(computed)) for leaf in leaves]
    return [f"{int(a):08x}{int(b):08x}" for a, b in lanes]
