"""A tiny jitted optax training loop over a WSD trunk, with Orbax saves: what the checkpoint and
branching tests train."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from wsd_jax import WSDSpec, learning_rate_from_state, wsd_schedule

TRUNK = WSDSpec(100, warmup_steps=5, decay_steps=10, checkpoints=[50, 100])


def optimizer_for(spec):
    return optax.inject_hyperparams(optax.adamw, hyperparam_dtype=jnp.float32)(
        learning_rate=wsd_schedule(1e-2, spec=spec)
    )


def init_state(spec):
    params = {"w": jnp.ones((3, 2)), "b": jnp.zeros(2)}
    return {"params": params, "opt_state": optimizer_for(spec).init(params)}


def train(spec, state, start, stop, manager=None):
    """Trains steps start..stop-1; returns the state and the rate each update used."""
    tx = optimizer_for(spec)

    @jax.jit
    def step(state):
        grads = jax.tree.map(jnp.ones_like, state["params"])
        updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
        return {"params": optax.apply_updates(state["params"], updates), "opt_state": opt_state}

    rates = []
    for s in range(start, stop):
        state = step(state)
        rates.append(float(learning_rate_from_state(state["opt_state"])))
        if manager is not None:
            manager.save(s + 1, state)
    if manager is not None:
        manager.wait_until_finished()
    return state, rates
