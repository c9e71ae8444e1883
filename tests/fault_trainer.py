"""A small, deterministic training job for the fault-tolerance test (run as a subprocess).

python -m tests.fault_trainer CKPT_DIR OUT.npz [--step-sleep S]

Resumes from the newest readable checkpoint in CKPT_DIR (or starts fresh), trains to the end, saving
asynchronously on the spec's save plan, prints "SAVE_STARTED <step>" right after each save is started,
and writes the final parameters, optimizer state and per-step rates to OUT.npz.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from wsd_jax import WSDCheckpointManager, WSDSpec, wsd_schedule

SPEC = WSDSpec(80, warmup_steps=6, decay_steps=12, checkpoints=[40, 80], decay_shape="1-sqrt")
SCHEDULE = wsd_schedule(5e-2, spec=SPEC)
TX = optax.adamw(SCHEDULE, weight_decay=0.01)
KEY = jax.random.key(0)


def init_state() -> dict:
    params = {"w": jax.random.normal(KEY, (16, 8)) * 0.1, "b": jnp.zeros(8)}
    return {"params": params, "opt_state": TX.init(params), "rates": jnp.zeros(SPEC.total_steps)}


@jax.jit
def train_step(state: dict, step: jax.Array) -> dict:
    k = jax.random.fold_in(KEY, step)  # the batch depends on the step alone: resumable
    x = jax.random.normal(k, (32, 16))
    y = jnp.sin(x[:, :8]) + 0.1 * jax.random.normal(jax.random.fold_in(k, 1), (32, 8))

    def loss(p: dict) -> jax.Array:
        return jnp.mean((jnp.tanh(x @ p["w"]) + p["b"] - y) ** 2)

    grads = jax.grad(loss)(state["params"])
    updates, opt_state = TX.update(grads, state["opt_state"], state["params"])
    return {
        "params": optax.apply_updates(state["params"], updates),
        "opt_state": opt_state,
        "rates": state["rates"].at[step].set(SCHEDULE(step)),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("ckpt_dir")
    parser.add_argument("out")
    parser.add_argument("--step-sleep", type=float, default=0.0)
    args = parser.parse_args()
    manager = WSDCheckpointManager(args.ckpt_dir, SPEC, interval=5, max_to_keep=2)
    restored = manager.restore_latest_readable(jax.eval_shape(init_state))
    step, state = restored if restored is not None else (0, init_state())
    print(f"START {step}", flush=True)
    while step < SPEC.total_steps:
        state = train_step(state, jnp.asarray(step, jnp.int32))
        step += 1
        if manager.save(step, state):
            print(f"SAVE_STARTED {step}", flush=True)
        time.sleep(args.step_sleep)
    manager.wait_until_finished()
    manager.close()
    leaves = jax.tree_util.tree_leaves_with_path(state)
    arrays = {jax.tree_util.keystr(path): np.asarray(leaf) for path, leaf in leaves}
    np.savez(args.out, **arrays)  # type: ignore[arg-type]
    print("DONE", flush=True)


if __name__ == "__main__":
    main()
