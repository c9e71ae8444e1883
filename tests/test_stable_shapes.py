"""The shapes beyond the constant stable phase: a power stable phase (OLMo-core's PowerLR; b = -0.5 is
an inverse square root), the polynomial decay and the 1-sqrt warmup. Their values against the
contract are in test_values.py and test_properties.py (the strategies draw them); here: what the
spec refuses, how it branches and serializes, and the planner on a power trunk."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import numpy as np
import pytest

from tests.reference import reference_multiplier
from wsd_core import WSDSpec

POWER: dict[str, Any] = dict(
    total_steps=10_000, warmup_steps=100, decay_steps=1000, decay_shape="linear", stable_power=-0.5
)


def test_a_power_stable_phase_falls_as_the_power_and_the_decay_starts_where_it_came_to():
    spec = WSDSpec(**POWER)
    for t in (100, 400, 2500, 8999):  # (t / W) ** b with tau = W: OLMo-core's PowerLR
        assert spec.multiplier(t) == pytest.approx((t / 100) ** -0.5, rel=1e-15)
    start = (9000 / 100) ** -0.5
    assert spec.multiplier(9500) == pytest.approx(start / 2, rel=1e-14)  # halfway down a linear decay
    assert spec.multiplier(10_000) == 0.0 and spec.multiplier(10**9) == 0.0
    assert spec.phase(5000).name == "stable"
    # with a scale: ((t - W) / tau + 1) ** b
    scaled = WSDSpec(1000, warmup_steps=10, decay_steps=0, stable_power=-1.0, stable_scale=50)
    assert scaled.multiplier(60) == pytest.approx(0.5, rel=1e-15)
    assert scaled.multiplier(5000) == pytest.approx(1 / ((1000 - 10) / 50 + 1), rel=1e-15)  # held at T


@pytest.mark.parametrize(
    ("fields", "error", "match"),
    [
        (dict(stable_power=0.5), ValueError, r"stable_power must be <= 0 .* got 0\.5"),
        (dict(stable_power="-0.5"), TypeError, "stable_power must be a real number"),
        (dict(stable_scale=10), ValueError, "stable_scale=10 applies to a power stable phase only"),
        (dict(stable_power=-0.5, stable_scale=0), ValueError, "stable_scale must be an int >= 1"),
        (dict(decay_power=2.0), ValueError, "decay_power=2.0 applies to decay_shape='polynomial' only"),
        (dict(decay_shape="polynomial", decay_power=0.0), ValueError, "decay_power must be > 0"),
        (dict(warmup_shape="sqrt"), ValueError, "warmup_shape must be one of"),
        # the power phase comes to 0.1 at step 10000 (tau = 100): a floor of 0.2 would make it rise
        (dict(warmup_steps=100, stable_power=-0.5, min_ratio=0.2), ValueError,
         r"min_ratio=0.2 is above the value the stable phase has come to where period 0's decay starts"),
    ],
)  # fmt: skip
def test_bad_shape_fields_are_refused_naming_them(fields, error, match):
    with pytest.raises(error, match=match):
        WSDSpec(**{"total_steps": 11_000, "decay_steps": 1000, **fields})


def test_new_fields_round_trip_and_are_left_out_at_their_defaults():
    spec = WSDSpec(**POWER, stable_scale=40)
    assert WSDSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    poly = WSDSpec(100, decay_steps=50, decay_shape="polynomial", decay_power=2.0)
    assert WSDSpec.from_dict(poly.to_dict()) == poly and poly.to_dict()["decay_power"] == 2.0
    plain = WSDSpec(100, decay_steps=10).to_dict()
    assert not {"stable_power", "stable_scale", "decay_power"} & set(plain)  # what 0.1 wrote and reads


def test_a_power_trunk_branches_continues_and_extends_along_its_curve():
    trunk = WSDSpec(**POWER)
    cooldown = trunk.branch_cooldown(4000, 500)
    assert cooldown.multiplier(4000) == pytest.approx(trunk.multiplier(4000), rel=1e-15)
    assert cooldown.multiplier(4250) == pytest.approx(trunk.multiplier(4000) / 2, rel=1e-14)
    # WSD-S: back to the curve, which goes on from the trunk's step (and past the trunk's end)
    continued = trunk.continue_from(9000, total_steps=5000, decay_steps=0)
    for t in (9000, 9500, 12_000):
        expected = reference_multiplier(t, **{**POWER, "total_steps": 20_000, "decay_steps": 0})
        assert continued.multiplier(t) == pytest.approx(expected, rel=1e-13)
    longer = trunk.extend(20_000, at_step=5000)
    assert [longer.multiplier(t) for t in (100, 5000, 8999)] == [
        trunk.multiplier(t) for t in (100, 5000, 8999)
    ]
    assert longer.multiplier(15_000) == pytest.approx((15_000 / 100) ** -0.5, rel=1e-15)


def test_the_polynomial_decay_and_the_one_minus_sqrt_warmup():
    poly = WSDSpec(100, decay_steps=50, decay_shape="polynomial", decay_power=2.0, min_ratio=0.1)
    assert poly.multiplier(75) == pytest.approx(0.1 + 0.9 * 0.25, rel=1e-15)
    assert WSDSpec(100, decay_steps=50, decay_shape="polynomial").multiplier(75) == 0.5  # k = 1: linear
    warm = WSDSpec(100, warmup_steps=10, warmup_shape="1-sqrt", decay_steps=0)
    assert warm.multiplier(1) == pytest.approx(1 - math.sqrt(0.9), rel=1e-15)
    assert warm.multiplier(1) == pytest.approx(0.1 / (1 + math.sqrt(0.9)), rel=1e-15)


def test_the_planner_fits_and_plans_off_a_power_trunk():
    pytest.importorskip("jax")
    from wsd_plan import LossLawFit, LossRun, fit_loss_law, learning_rates, plan_cooldown

    params: dict[str, Any] = dict(L0=3.0, A=0.5, alpha=0.5, B=400.0, C=2.0, beta=0.6, gamma=0.6)
    truth = LossLawFit("multi-power", params, {}, 0.0)
    trunk = WSDSpec(20_000, warmup_steps=500, decay_steps=0, stable_power=-0.3)
    cooled = trunk.branch_cooldown(8000, 2000)
    rates = np.concatenate(
        [learning_rates(trunk, 8000, peak=3e-4), learning_rates(cooled, 10_000, peak=3e-4)[8000:]]
    )
    steps = np.arange(600, 10_000, 100)
    runs = [
        LossRun(
            learning_rates(trunk, 10_000, peak=3e-4),
            steps,
            truth.predict(trunk, steps, peak=3e-4),
            500,
            "trunk",
        ),
        LossRun(rates, steps, truth.predict(rates, steps, warmup_steps=500), 500, "cooled"),
    ]
    fit = fit_loss_law(runs, "multi-power")
    assert fit.fit_error["PredE"] < 1e-4
    plan = plan_cooldown(fit, trunk, peak=3e-4, budgets=[12_000], lengths=[1000, 3000])
    best = plan.best_for(12_000)
    assert best.spec.multiplier(best.at_step) == pytest.approx(trunk.multiplier(best.at_step), rel=1e-12)


def test_a_spec_with_the_new_fields_travels_in_orbax_checkpoints_and_torch_states(tmp_path):
    pytest.importorskip("orbax.checkpoint")
    import jax.numpy as jnp

    from wsd_jax import WSDCheckpointManager

    ramp = [(0, 256), (40, 512)]
    spec = WSDSpec(200_000, units="tokens", warmup_steps=2000, decay_steps=20_000, decay_shape="polynomial",
                   decay_power=2.0, stable_power=-0.5, stable_scale=1000, tokens_per_step=ramp,
                   rate_batch_exponent=0.5)  # fmt: skip
    with WSDCheckpointManager(tmp_path, spec) as manager:
        manager.save(10, {"w": jnp.zeros(3)}, force=True)
    assert WSDCheckpointManager.open(tmp_path).spec == spec
    torch = pytest.importorskip("torch")
    from wsd_torch import WSDLR

    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = WSDLR(optimizer, spec=spec)
    for _ in range(50):
        optimizer.step()
        scheduler.step()
    again = WSDLR(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0), spec=spec)
    again.load_state_dict(scheduler.state_dict())
    assert again.get_last_lr() == scheduler.get_last_lr() == [spec.multiplier(50)]
    other = WSDLR(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0),
                  spec=dataclasses.replace(spec, stable_power=-0.4))  # fmt: skip
    with pytest.raises(ValueError, match="spec"):  # another power is another schedule
        other.load_state_dict(scheduler.state_dict())
