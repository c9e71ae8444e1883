"""The JAX side as people use it: the rate without inject_hyperparams, a user's own Orbax manager
with the spec item and the save plan as policies, and extra items, metrics and best-N in
WSDCheckpointManager."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest

from wsd_jax import (
    CheckpointIntegrityError,
    WSDCheckpointManager,
    WSDSpec,
    learning_rate_from_state,
    orbax_policies,
    rate_of_last_update,
    spec_from_restored,
    spec_restore_args,
    spec_save_args,
    wsd_schedule,
)

SPEC = WSDSpec(60, warmup_steps=5, decay_steps=10, checkpoints=[30, 60], decay_shape="linear")
SCHEDULE = wsd_schedule(1e-2, spec=SPEC)


def test_the_rate_without_inject_hyperparams_matches_the_injected_one_at_every_step():
    params = {"w": jnp.ones(3)}
    plain, injected = optax.adamw(SCHEDULE), optax.inject_hyperparams(optax.adamw)(learning_rate=SCHEDULE)
    a, b = plain.init(params), injected.init(params)
    grads = {"w": jnp.ones(3)}
    for _ in range(62):
        assert float(learning_rate_from_state(a, schedule=SCHEDULE)) == float(learning_rate_from_state(b))
        a = plain.update(grads, a, params)[1]
        b = injected.update(grads, b, params)[1]
    with pytest.raises(ValueError, match="schedule="):
        learning_rate_from_state(a)


@pytest.mark.parametrize("dtype", [jnp.uint32, jnp.int32, jnp.uint8])
def test_rate_of_last_update_is_right_at_zero_for_every_count_type(dtype):
    assert float(rate_of_last_update(SCHEDULE, jnp.asarray(0, dtype))) == float(SCHEDULE(0))
    assert float(rate_of_last_update(SCHEDULE, jnp.asarray(8, dtype))) == float(SCHEDULE(7))


def test_a_users_own_checkpoint_manager_with_the_spec_and_the_plan(tmp_path):
    with pytest.raises(TypeError, match="WSDSpec"):
        spec_save_args(SPEC.to_dict())  # type: ignore[arg-type]
    options = ocp.CheckpointManagerOptions(**orbax_policies(SPEC, interval=7, max_to_keep=1))
    with ocp.CheckpointManager(tmp_path, options=options) as manager:
        for step in range(1, 61):
            state = ocp.args.StandardSave({"w": jnp.full(2, step)})
            manager.save(step, args=ocp.args.Composite(state=state, spec=spec_save_args(SPEC)))
        manager.wait_until_finished()
        steps = set(manager.all_steps())
        restored = manager.restore(60, args=ocp.args.Composite(spec=spec_restore_args()))
    assert {20, 30, 50, 60} <= steps  # the plan's pre-decay steps and period ends survive max_to_keep=1
    assert steps - {20, 30, 50, 60} == set()  # the latest (60) is a plan step; intervals rotated out
    assert spec_from_restored(restored["spec"]) == SPEC


def test_extra_items_metrics_and_best_n_never_drop_the_plans_steps(tmp_path):
    state = {"w": jnp.zeros(2)}
    losses = {10: 3.0, 15: 1.0, 20: 2.5, 25: 0.5, 35: 4.0, 40: 0.7, 45: 5.0}
    with WSDCheckpointManager(tmp_path, SPEC, interval=5, max_to_keep=1, best_n=2, best_metric="loss") as m:
        for step, loss in sorted(losses.items()):
            m.save(step, state, extra={"data": {"position": step * 8}}, metrics={"loss": loss})
        m.wait_until_finished()
        steps = set(m.all_steps())
        assert m.restore_extra("data", 25) == {"position": 200}
    assert {25, 40} <= steps  # the two best by loss
    assert 45 in steps  # the latest
    assert {15, 10, 35} & steps == set()
    with WSDCheckpointManager(tmp_path, SPEC, max_to_keep=None) as m:
        m.save(50, state, extra={"data": {"position": 1}}, force=True)  # a plan step: kept whatever
        m.wait_until_finished()
    path = tmp_path / "25" / "data" / "metadata"
    path.write_text(json.dumps({"position": 201}))
    with WSDCheckpointManager(tmp_path, SPEC, read_only=True) as m:
        assert 50 in m.all_steps()
        with pytest.raises(CheckpointIntegrityError, match="extra item 'data'"):
            m.restore_extra("data", 25)


@pytest.mark.parametrize(
    ("extra", "error"),
    [
        ({"state": {}}, ValueError),
        ({"bad name": 1}, ValueError),
        ({"x": jnp.ones(2)}, TypeError),
        ([1], TypeError),
    ],
)
def test_bad_extra_items_are_refused_before_writing(tmp_path, extra, error):
    with WSDCheckpointManager(tmp_path, SPEC) as m, pytest.raises(error):
        m.save(10, {"w": np.zeros(2)}, extra=extra, force=True)
    assert not [p for p in tmp_path.iterdir() if not p.name.startswith(".")]


def test_the_state_fingerprint_is_the_same_under_jit_and_grad_free_paths():
    # learning_rate_from_state works inside jit too (a user's logging step)
    params = {"w": jnp.ones(3)}
    tx = optax.adamw(SCHEDULE)
    rate = jax.jit(lambda s: learning_rate_from_state(s, schedule=SCHEDULE))(tx.init(params))
    assert float(rate) == float(SCHEDULE(0))
