"""Continuing a trunk and branching cooldowns (WSDSpec.extend, branch_cooldown, continue_from), end
to end through Orbax checkpoints: the past is unchanged and the future follows the new spec."""

from __future__ import annotations

import jax
import pytest

from tests.reference import reference_multiplier
from tests.training import TRUNK, init_state, train
from wsd_jax import WSDCheckpointManager


def test_extend_the_trunk_from_a_pre_decay_checkpoint(tmp_path):
    trunk_dir = tmp_path / "trunk"
    with WSDCheckpointManager(trunk_dir, TRUNK) as manager:
        _, trunk_rates = train(TRUNK, init_state(TRUNK), 0, 90, manager)
    longer = TRUNK.extend(300, at_step=90)
    with WSDCheckpointManager(trunk_dir, longer) as manager:
        state = manager.restore(jax.eval_shape(lambda: init_state(TRUNK)), 90, allow_spec_change=True)
        _, rates = train(longer, state, 90, 300, manager)
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
        train(TRUNK, init_state(TRUNK), 0, 40, manager)
    before = sorted(p.name for p in trunk_dir.rglob("*"))

    branch = TRUNK.branch_cooldown(30, 15, decay_shape="linear")
    with WSDCheckpointManager(trunk_dir, branch) as trunk:
        state = trunk.restore(jax.eval_shape(lambda: init_state(TRUNK)), 30, allow_spec_change=True)
    with WSDCheckpointManager(branch_dir, branch, interval=5) as manager:
        state, rates = train(branch, state, 30, 50, manager)
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
