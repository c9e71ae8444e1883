"""WSDCheckpointManager (Orbax) and the continuation / branch operations on WSDSpec."""

from __future__ import annotations

import logging
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from tests.reference import reference_multiplier
from wsd_jax import SavePlan, WSDCheckpointManager, WSDSpec, learning_rate_from_state, wsd_schedule

TRUNK = WSDSpec(100, warmup_steps=5, decay_steps=10, checkpoints=[50, 100])


def _tx(spec):
    return optax.inject_hyperparams(optax.adamw, hyperparam_dtype=jnp.float32)(
        learning_rate=wsd_schedule(1e-2, spec=spec)
    )


def _init(spec):
    params = {"w": jnp.ones((3, 2)), "b": jnp.zeros(2)}
    return {"params": params, "opt_state": _tx(spec).init(params)}


def _run(spec, state, start, stop, manager=None):
    """Trains steps start..stop-1; returns the state and the rate each update used."""
    tx = _tx(spec)

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


def test_save_plan_steps_are_kept_and_intervals_rotate(tmp_path):
    plan = SavePlan.for_spec(TRUNK, interval=7)
    assert plan.pre_decay == (40, 90) and plan.period_ends == (50, 100)
    with WSDCheckpointManager(tmp_path, TRUNK, interval=7, max_to_keep=2) as manager:
        _run(TRUNK, _init(TRUNK), 0, 100, manager)
        steps = manager.all_steps()
    assert {40, 50, 90, 100} <= set(steps)  # the plan's steps survive retention
    # besides those, the 2 latest checkpoints of any kind: 100 (a plan step) and 98
    assert set(steps) - {40, 50, 90, 100} == {98}


def test_restore_onto_abstract_state_keeps_optax_types(tmp_path):
    state, _ = _run(TRUNK, _init(TRUNK), 0, 40)
    with WSDCheckpointManager(tmp_path, TRUNK) as manager:
        manager.save(40, state)
        manager.wait_until_finished()
        restored = manager.restore(jax.eval_shape(lambda: _init(TRUNK)))
    assert jax.tree.structure(restored) == jax.tree.structure(state)
    for a, b in zip(jax.tree.leaves(restored), jax.tree.leaves(state), strict=True):
        np.testing.assert_array_equal(a, b)
    assert int(restored["opt_state"].count) == 40


def test_restore_under_another_spec_is_refused_unless_allowed(tmp_path):
    state, _ = _run(TRUNK, _init(TRUNK), 0, 40)
    with WSDCheckpointManager(tmp_path, TRUNK) as manager:
        manager.save(40, state)
    other = TRUNK.extend(200, at_step=40)
    with WSDCheckpointManager(tmp_path, other) as manager:
        with pytest.raises(ValueError, match="different spec"):
            manager.restore(jax.eval_shape(lambda: _init(TRUNK)))
        assert manager.saved_spec(40) == TRUNK
        manager.restore(jax.eval_shape(lambda: _init(TRUNK)), allow_spec_change=True)
        with pytest.raises(FileNotFoundError, match="step 41"):
            manager.restore(jax.eval_shape(lambda: _init(TRUNK)), 41)
    assert WSDCheckpointManager.open(tmp_path).spec == TRUNK  # a restarted job rebuilds its schedule


def test_extend_the_trunk_from_a_pre_decay_checkpoint(tmp_path):
    trunk_dir = tmp_path / "trunk"
    with WSDCheckpointManager(trunk_dir, TRUNK) as manager:
        _, trunk_rates = _run(TRUNK, _init(TRUNK), 0, 90, manager)
    longer = TRUNK.extend(300, at_step=90)
    with WSDCheckpointManager(trunk_dir, longer) as manager:
        state = manager.restore(jax.eval_shape(lambda: _init(TRUNK)), 90, allow_spec_change=True)
        _, rates = _run(longer, state, 90, 300, manager)
    # the past is unchanged, and the future follows the longer trunk
    assert [longer.multiplier(s) * 1e-2 for s in range(90)] == pytest.approx(trunk_rates, rel=1e-6)
    want = [1e-2 * reference_multiplier(s, **longer.to_dict()) for s in range(90, 300)]
    assert rates == pytest.approx(want, rel=1e-6)
    assert longer.period_ends == (50, 300) and longer.decay_starts == (40, 290)
    with pytest.raises(ValueError, match="pre-decay checkpoint"):
        TRUNK.extend(300, at_step=95)


def test_branch_a_cooldown_into_its_own_directory(tmp_path):
    trunk_dir, branch_dir = tmp_path / "trunk", tmp_path / "cooldown-at-30"
    with WSDCheckpointManager(trunk_dir, TRUNK, interval=10) as manager:
        _run(TRUNK, _init(TRUNK), 0, 40, manager)
    before = sorted(p.name for p in trunk_dir.rglob("*"))

    branch = TRUNK.branch_cooldown(30, 15, decay_shape="linear")
    with WSDCheckpointManager(trunk_dir, branch) as trunk:
        state = trunk.restore(jax.eval_shape(lambda: _init(TRUNK)), 30, allow_spec_change=True)
    with WSDCheckpointManager(branch_dir, branch, interval=5) as manager:
        state, rates = _run(branch, state, 30, 50, manager)
        assert manager.all_steps()[-1] == 50 and manager.saved_spec() == branch
    assert int(state["opt_state"].count) == 50  # the optimizer's count kept running
    assert rates[:16] == pytest.approx([1e-2 * (1 - k / 15) for k in range(16)], rel=1e-6, abs=1e-12)
    assert sorted(p.name for p in trunk_dir.rglob("*")) == before  # the trunk is untouched


def test_continue_from_a_cooled_checkpoint_returns_to_the_peak():
    cont = TRUNK.continue_from(100, total_steps=60, decay_steps=20)
    assert cont.start_step == 100 and cont.warmup_steps == 0
    assert cont.multiplier(100) == 1.0 and cont.decay_starts == (140,) and cont.end_step == 160
    with pytest.raises(TypeError, match="warmup_steps"):
        TRUNK.continue_from(100, total_steps=60, warmup_steps=5)


@pytest.mark.parametrize("damage", ["delete", "truncate"])
def test_damaged_latest_checkpoint_is_skipped_not_loaded(tmp_path, damage, caplog):
    with WSDCheckpointManager(tmp_path, TRUNK, interval=10, max_to_keep=None) as manager:
        state20, _ = _run(TRUNK, _init(TRUNK), 0, 20)
        manager.save(20, state20)
        state30, _ = _run(TRUNK, state20, 20, 30)
        manager.save(30, state30)
    files = [p for p in (tmp_path / "30" / "state").rglob("*") if p.is_file() and p.stat().st_size > 0]
    assert files
    if damage == "delete":
        shutil.rmtree(tmp_path / "30" / "state")
    else:
        for p in files:
            p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    abstract = jax.eval_shape(lambda: _init(TRUNK))
    with WSDCheckpointManager(tmp_path, TRUNK, interval=10) as manager:
        with pytest.raises(Exception):  # noqa: B017 - any read error, never a garbage state
            manager.restore(abstract, 30)
        with caplog.at_level(logging.WARNING):
            step, restored = manager.restore_latest_readable(abstract)
    assert step == 20 and "checkpoint 30" in caplog.text
    for a, b in zip(jax.tree.leaves(restored), jax.tree.leaves(state20), strict=True):
        np.testing.assert_array_equal(a, b)


def test_manager_bad_arguments(tmp_path):
    with pytest.raises(TypeError, match="spec"):
        WSDCheckpointManager(tmp_path, {"total_steps": 10})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_to_keep"):
        WSDCheckpointManager(tmp_path, TRUNK, max_to_keep=0)
    with pytest.raises(ValueError, match="interval"):
        WSDCheckpointManager(tmp_path, TRUNK, interval=0)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        WSDCheckpointManager.open(tmp_path / "empty")
