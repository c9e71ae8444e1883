"""Checkpoint integrity: what the integrity record costs on a 100 MB state, side by side.

Saves and restores with ``WSDCheckpointManager`` (fingerprints written with every save, verified on
every restore) against a plain ``orbax.checkpoint.CheckpointManager`` writing the same state and spec,
and against our own restore with ``verify=False``; both write synchronously, so each figure is the
whole save.
"""

from __future__ import annotations

import itertools
import shutil
import statistics
import tempfile
from pathlib import Path

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp

from benchmarks._timing import Row, interleaved_samples, paired_ratios
from wsd_jax import WSDCheckpointManager, WSDSpec

SPEC = WSDSpec(10**9, decay_steps=0)


def _state(megabytes: int) -> dict[str, jax.Array]:
    n = megabytes * 2**20 // 4 // 4  # four float32 leaves
    keys = jax.random.split(jax.random.key(0), 4)
    return {f"w{i}": jax.random.normal(k, (n,), jnp.float32) for i, k in enumerate(keys)}


def integrity(repeats: int, megabytes: int = 100) -> list[Row]:
    state = _state(megabytes)
    abstract = jax.eval_shape(lambda: state)
    root = Path(tempfile.mkdtemp(prefix="wsd-bench-"))
    steps = itertools.count(1)
    ours = WSDCheckpointManager(root / "ours", SPEC, max_to_keep=1, async_save=False)
    plain = ocp.CheckpointManager(
        root / "plain",
        item_names=("state", "spec"),
        options=ocp.CheckpointManagerOptions(max_to_keep=1, enable_async_checkpointing=False),
    )

    def save_plain() -> None:
        args = ocp.args.Composite(state=ocp.args.StandardSave(state), spec=ocp.args.JsonSave(SPEC.to_dict()))
        plain.save(next(steps), args=args)

    def restore_plain() -> None:
        args = ocp.args.Composite(state=ocp.args.StandardRestore(abstract))
        jax.block_until_ready(plain.restore(plain.latest_step(), args=args)["state"])

    try:
        save_plain()
        ours.save(next(steps), state, force=True)
        save_samples = interleaved_samples(
            {"ours": lambda: ours.save(next(steps), state, force=True), "plain": save_plain}, repeats
        )
        restore_samples = interleaved_samples(
            {
                "verified": lambda: jax.block_until_ready(ours.restore(abstract)),
                "unverified": lambda: jax.block_until_ready(ours.restore(abstract, verify=False)),
                "plain": restore_plain,
            },
            repeats,
        )
    finally:
        ours.close()
        plain.close()
        shutil.rmtree(root, ignore_errors=True)
    section = f"6 integrity ({megabytes} MB)"
    saves = {k: statistics.median(v) for k, v in save_samples.items()}
    restores = {k: statistics.median(v) for k, v in restore_samples.items()}
    save_lo, save_ratio, save_hi = paired_ratios(save_samples, "ours", "plain")
    restore_lo, restore_ratio, restore_hi = paired_ratios(restore_samples, "verified", "unverified")
    spread = f"(min / median / max of {repeats} paired repeats)"
    return [
        Row(section, "save, plain Orbax (state + spec)", f"{saves['plain'] * 1e3:.0f} ms"),
        Row(section, "save, WSDCheckpointManager (+ integrity record)", f"{saves['ours'] * 1e3:.0f} ms"),
        Row(
            section,
            f"save: ours / plain {spread}",
            f"{save_lo:.2f} / {save_ratio:.2f} / {save_hi:.2f}",
            "<= 1.10",
            _verdict(save_ratio, 1.10),
            why="integrity should cost little next to the write it protects",
        ),
        Row(section, "restore, plain Orbax", f"{restores['plain'] * 1e3:.0f} ms"),
        Row(section, "restore, ours, verify=False", f"{restores['unverified'] * 1e3:.0f} ms"),
        Row(section, "restore, ours, verified", f"{restores['verified'] * 1e3:.0f} ms"),
        Row(
            section,
            f"restore: verified / unverified {spread}",
            f"{restore_lo:.2f} / {restore_ratio:.2f} / {restore_hi:.2f}",
            "<= 1.15",
            _verdict(restore_ratio, 1.15),
            why="a verified restore should cost little more than the read it guards",
        ),
    ]


def _verdict(value: float, target: float) -> str:
    return "met" if value <= target else f"missed by {100 * (value / target - 1):.0f}%"
