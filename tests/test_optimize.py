"""``optimize_cooldown``: the exact final loss against the planner's curves, the isotonic projection
against a brute-force reference, and the optimum on the published curves against every grid
candidate it must beat."""

from __future__ import annotations

import functools
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("jax")
pytest.importorskip("scipy")

import jax.numpy as jnp

from wsd_core import WSDSpec
from wsd_plan import LossLawFit, branch_rates, fit_loss_law, learning_rates, optimize_cooldown, published_runs
from wsd_plan import published as lc
from wsd_plan._optimize import final_loss, isotonic_non_increasing
from wsd_plan.laws import float64_mode

RUNS = published_runs("lm-25M")


@functools.cache
def _fit(law: str) -> LossLawFit:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fit_loss_law([RUNS[n] for n in lc.PAPER_FIT], law)


@pytest.mark.parametrize("law", ["multi-power", "annealing"])
@pytest.mark.parametrize("name", ["cosine_72000", "wsd_20000_24000", "wsdcon_3", "constant_24000"])
def test_the_exact_final_loss_is_the_laws_prediction(law, name):
    fit = _fit(law)
    lrs = lc.published_rates(name)
    with float64_mode():
        exact = float(final_loss(law, fit.theta(), jnp.asarray(lrs), lc.WARMUP))
    (predicted,) = fit.predict(lrs, [lrs.size - 1], warmup_steps=lc.WARMUP)
    # the planner's curves group far drops into blocks (1e-5 of the drop term); the annealing law's
    # S2 is a filter there and a closed form here
    assert exact == pytest.approx(predicted, rel=2e-6 if law == "multi-power" else 1e-12)


def _brute_force_non_increasing(y: list[float]) -> np.ndarray:
    # the min-max formula of isotonic regression: x_i = min_{j <= i} max_{k >= i} mean(y_j .. y_k)
    n = len(y)
    return np.array(
        [min(max(np.mean(y[j : k + 1]) for k in range(i, n)) for j in range(i + 1)) for i in range(n)]
    )


@given(st.lists(st.floats(-10, 10, allow_nan=False), min_size=1, max_size=25))
@settings(max_examples=200, deadline=None)
def test_the_projection_is_isotonic_regression(y):
    got = isotonic_non_increasing(np.asarray(y))
    np.testing.assert_allclose(got, _brute_force_non_increasing(y), rtol=1e-12, atol=1e-12)
    assert (np.diff(got) <= 1e-12).all()


@pytest.mark.slow
def test_the_optimum_on_published_curves_is_wsd_like_and_beats_every_grid_candidate():
    fit = _fit("multi-power")
    trunk = WSDSpec(72_000, warmup_steps=lc.WARMUP, decay_steps=0)
    best = optimize_cooldown(fit, trunk, peak=lc.PEAK, budget=24_000, min_ratio=0.1)
    x = best.lrs / lc.PEAK
    window = x[best.earliest :]
    assert (np.diff(window) <= 1e-12).all() and window.min() >= 0.1 - 1e-12 and window.max() <= 1.0
    np.testing.assert_array_equal(
        best.lrs[: best.earliest], learning_rates(trunk, best.earliest, peak=lc.PEAK)
    )
    # the shape the Multi-Power Law paper found: stable at the peak, then one decay to the floor over
    # the last fraction of the run (here the last 15-35%)
    decay_start = best.earliest + int(np.flatnonzero(window < 0.999)[0])
    assert 0.65 * 24_000 < decay_start < 0.85 * 24_000 and window[-1] == pytest.approx(0.1)
    # at least as good as every WSDSpec cooldown of the grid (they are inside the feasible set)
    assert best.final_loss <= best.grid_best.final_loss + 1e-6
    assert best.gain_low < best.gain < best.gain_high and best.low < best.final_loss < best.high
    assert best.closest.end_step == 24_000 and best.closest.min_ratio == pytest.approx(0.1)
    closest_rates = branch_rates(learning_rates(trunk, 24_000, peak=lc.PEAK), best.closest, lc.PEAK)
    assert np.abs(closest_rates - best.lrs).max() < 0.25 * lc.PEAK
    assert "law-optimal end of a 24000-update run" in best.summary()


def test_optimize_cooldown_refuses_bad_input():
    fit = LossLawFit(
        "multi-power", dict(L0=3.0, A=0.5, alpha=0.5, B=400.0, C=2.0, beta=0.6, gamma=0.6), {}, 0.0
    )
    trunk = WSDSpec(10_000, warmup_steps=100, decay_steps=2000)
    with pytest.raises(ValueError, match="peak is required"):
        optimize_cooldown(fit, trunk, budget=5000)
    with pytest.raises(ValueError, match=r"earliest must be in \[100, 5000\)"):
        optimize_cooldown(fit, trunk, peak=1e-3, budget=5000, earliest=5000)
    with pytest.raises(ValueError, match=r"the trunk's rate at step 8001 is .* not its peak"):
        optimize_cooldown(fit, trunk, peak=1e-3, budget=9000, earliest=7000)
    with pytest.raises(TypeError, match="fit must be a LossLawFit"):
        optimize_cooldown("fit", trunk, peak=1e-3, budget=5000)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="min_ratio"):
        optimize_cooldown(fit, trunk, peak=1e-3, budget=5000, min_ratio=1.5)
