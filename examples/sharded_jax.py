"""Sharded JAX training with the WSD schedule, an Orbax checkpoint, and a restore onto a new mesh.

    python examples/sharded_jax.py CKPT_DIR [--json]

Runs on CPU with 4 simulated devices (set below, before jax is imported; on a real multi-device
host the flag is not needed). Parameters and optimizer state are sharded over a 1-D mesh of 4
devices; after SPLIT steps the state is saved with WSDCheckpointManager, restored onto a 2x2 mesh
(Orbax reshards it to the new layout) and training continues. The same run on a single device is
the reference: the per-step learning rates must match exactly and the losses to float rounding.
"""

from __future__ import annotations

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")

import argparse
import json
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from wsd_jax import WSDCheckpointManager, WSDSpec, wsd_schedule

SPEC = WSDSpec(60, warmup_steps=5, decay_steps=15, checkpoints=[30, 60])
SCHEDULE = wsd_schedule(2e-2, spec=SPEC)
TX = optax.adamw(SCHEDULE, weight_decay=0.01)
SPLIT, BATCH = 25, 16


def init_params() -> dict:
    k = jax.random.key(0)
    return {"w": jax.random.normal(k, (64, 32)) * 0.1, "b": jnp.zeros(32)}


def batch(step: Any) -> tuple[jax.Array, jax.Array]:
    k = jax.random.fold_in(jax.random.key(1), step)
    x = jax.random.normal(k, (BATCH, 64))
    return x, jnp.tanh(x[:, :32]) + 0.1 * jax.random.normal(jax.random.fold_in(k, 1), (BATCH, 32))


def loss_fn(params: dict, x: jax.Array, y: jax.Array) -> jax.Array:
    return jnp.mean((jnp.tanh(x @ params["w"]) + params["b"] - y) ** 2)


def make_step(data_sharding: NamedSharding | None = None) -> Any:
    @jax.jit
    def step(state: dict, count: jax.Array) -> tuple[dict, jax.Array, jax.Array]:
        x, y = batch(count)
        if data_sharding is not None:  # the batch is split over the data axis
            x = jax.lax.with_sharding_constraint(x, data_sharding)
            y = jax.lax.with_sharding_constraint(y, data_sharding)
        loss, grads = jax.value_and_grad(loss_fn)(state["params"], x, y)
        updates, opt_state = TX.update(grads, state["opt_state"], state["params"])
        new = {"params": optax.apply_updates(state["params"], updates), "opt_state": opt_state}
        return new, loss, SCHEDULE(count)

    return step


def state_shardings(mesh: Mesh, w_spec: P) -> tuple[Any, Any]:
    """Shardings for the whole train state: every leaf shaped like ``w`` (the parameter and its adam
    moments) is laid out as ``w_spec``, everything else is replicated; and the abstract state."""
    abstract = jax.eval_shape(lambda: {"params": init_params(), "opt_state": TX.init(init_params())})
    w, replicated = NamedSharding(mesh, w_spec), NamedSharding(mesh, P())
    w_shape = abstract["params"]["w"].shape
    return jax.tree.map(lambda leaf: w if leaf.shape == w_shape else replicated, abstract), abstract


def run_single_device() -> tuple[list[float], list[float]]:
    state = {"params": init_params(), "opt_state": TX.init(init_params())}
    step, rates, losses = make_step(), [], []
    for s in range(SPEC.total_steps):
        state, loss, rate = step(state, jnp.asarray(s, jnp.int32))
        rates.append(float(rate))
        losses.append(float(loss))
    return rates, losses


def run_sharded(ckpt_dir: str) -> tuple[list[float], list[float], dict]:
    devices = np.array(jax.devices())
    assert devices.size == 4, f"needs 4 devices, got {devices.size}"
    rates, losses = [], []

    # Phase 1: a 1-D mesh of 4 devices; w sharded by rows, batches split over the devices.
    mesh1 = Mesh(devices, ("data",))
    shardings1, abstract = state_shardings(mesh1, P("data", None))
    state = jax.device_put({"params": init_params(), "opt_state": TX.init(init_params())}, shardings1)
    step = make_step(NamedSharding(mesh1, P("data", None)))
    for s in range(SPLIT):
        state, loss, rate = step(state, jnp.asarray(s, jnp.int32))
        rates.append(float(rate))
        losses.append(float(loss))
    layout1 = state["params"]["w"].addressable_shards[0].data.shape  # one device's block of w
    with WSDCheckpointManager(ckpt_dir, SPEC) as manager:
        manager.save(SPLIT, state, force=True)

    # Phase 2: restore onto a 2x2 mesh with w sharded over both axes (Orbax reshards), continue.
    mesh2 = Mesh(devices.reshape(2, 2), ("data", "model"))
    shardings2, _ = state_shardings(mesh2, P("data", "model"))
    target = jax.tree.map(
        lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, shardings2
    )
    with WSDCheckpointManager(ckpt_dir, SPEC) as manager:
        state = manager.restore(target)
    layout2 = state["params"]["w"].addressable_shards[0].data.shape
    step = make_step(NamedSharding(mesh2, P("data", None)))
    for s in range(SPLIT, SPEC.total_steps):
        state, loss, rate = step(state, jnp.asarray(s, jnp.int32))
        rates.append(float(rate))
        losses.append(float(loss))
    return rates, losses, {"before": list(layout1), "after": list(layout2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("ckpt_dir")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    ref_rates, ref_losses = run_single_device()
    rates, losses, layouts = run_sharded(args.ckpt_dir)
    result = {"ref_rates": ref_rates, "ref_losses": ref_losses, "rates": rates, "losses": losses,
              "layouts": layouts, "devices": len(jax.devices())}  # fmt: skip
    if args.json:
        print(json.dumps(result))
        return
    worst = max(abs(a - b) / abs(b) for a, b in zip(losses, ref_losses, strict=True))
    print(
        f"{result['devices']} devices; each device's block of w (64x32): {layouts['before']} on the "
        f"1-D mesh, {layouts['after']} after the restore onto the 2x2 mesh"
    )
    print(f"rates identical to the single-device run: {rates == ref_rates}")
    print(f"largest relative loss difference: {worst:.2e}")


if __name__ == "__main__":
    main()
