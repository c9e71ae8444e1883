"""Flax use: NNX (nnx.Optimizer) and linen (TrainState) with the schedule, Orbax save and restore."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

flax = pytest.importorskip("flax")
from flax import nnx  # noqa: E402
from flax.training import train_state  # noqa: E402

from wsd_jax import (  # noqa: E402
    WSDCheckpointManager,
    WSDSpec,
    learning_rate_from_state,
    wsd_schedule,
)

SPEC = WSDSpec(40, warmup_steps=4, decay_steps=8)


def _tx():
    return optax.inject_hyperparams(optax.adamw, hyperparam_dtype=jnp.float32)(
        learning_rate=wsd_schedule(1e-2, spec=SPEC)
    )


def test_linen_train_state_save_restore_and_current_rate(tmp_path):
    model = flax.linen.Dense(2)
    params = model.init(jax.random.key(0), jnp.ones((1, 3)))
    state = train_state.TrainState.create(apply_fn=model.apply, params=params, tx=_tx())

    @jax.jit
    def step(state):
        grads = jax.grad(lambda p: jnp.mean(state.apply_fn(p, jnp.ones((4, 3))) ** 2))(state.params)
        return state.apply_gradients(grads=grads)

    for _ in range(10):
        state = step(state)
    lr = learning_rate_from_state(state.opt_state)
    assert float(lr) == pytest.approx(1e-2 * SPEC.multiplier(9), rel=1e-6)  # the 10th update's rate
    with WSDCheckpointManager(tmp_path, SPEC) as manager:
        manager.save(10, state, force=True)
        manager.wait_until_finished()
        restored = manager.restore(jax.eval_shape(lambda: state))
    assert isinstance(restored, train_state.TrainState) and int(restored.step) == 10
    for a, b in zip(jax.tree.leaves(restored), jax.tree.leaves(state), strict=True):
        np.testing.assert_array_equal(a, b)
    assert float(learning_rate_from_state(restored.opt_state)) == float(lr)


def test_nnx_optimizer_save_restore_and_current_rate(tmp_path):
    def make():
        model = nnx.Linear(3, 2, rngs=nnx.Rngs(0))
        return model, nnx.Optimizer(model, _tx(), wrt=nnx.Param)

    model, optimizer = make()

    @nnx.jit
    def step(model, optimizer):
        grads = nnx.grad(lambda m: jnp.mean(m(jnp.ones((4, 3))) ** 2))(model)
        optimizer.update(model, grads)

    for _ in range(12):
        step(model, optimizer)
    lr = float(learning_rate_from_state(optimizer.opt_state))
    assert lr == pytest.approx(1e-2 * SPEC.multiplier(11), rel=1e-6)
    with WSDCheckpointManager(tmp_path, SPEC) as manager:
        manager.save(12, nnx.to_pure_dict(nnx.state((model, optimizer))), force=True)
        manager.wait_until_finished()
        model2, optimizer2 = make()
        state = nnx.state((model2, optimizer2))
        abstract = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), nnx.to_pure_dict(state))
        nnx.replace_by_pure_dict(state, manager.restore(abstract))
        nnx.update((model2, optimizer2), state)
    assert float(learning_rate_from_state(optimizer2.opt_state)) == lr
    np.testing.assert_array_equal(np.asarray(model2.kernel[...]), np.asarray(model.kernel[...]))
    step(model, optimizer)
    step(model2, optimizer2)  # training resumes identically
    np.testing.assert_array_equal(np.asarray(model2.kernel[...]), np.asarray(model.kernel[...]))
