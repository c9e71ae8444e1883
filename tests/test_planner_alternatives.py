"""The measuring tools of benchmarks/planner_alternatives.py (the record of fits measured and not
adopted): its robust covariance and its averaged prediction, on synthetic runs drawn from a known law."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest

pytest.importorskip("jax")

from wsd_plan import LossLawFit, fit_loss_law, published_runs
from wsd_plan import published as data

pytestmark = pytest.mark.slow  # three refits

TRUTH = LossLawFit(
    "multi-power", dict(L0=3.0, A=0.52, alpha=0.5, B=400.0, C=2.0, beta=0.6, gamma=0.6), {}, 0.0
)


def synthetic_fit(rho: float, offsets: tuple[float, ...] = (0.0, 0.0, 0.0)) -> tuple[LossLawFit, list]:
    """The paper protocol's three schedules, losses from ``TRUTH`` times AR(1) log noise (sd 4e-4),
    each run's log loss shifted by its ``offsets``."""
    rng = np.random.default_rng(1)
    runs = []
    for name, offset in zip(data.PAPER_FIT, offsets, strict=True):
        run = published_runs("lm-25M")[name].after_warmup()
        noise = np.zeros(run.steps.size)
        for i, z in enumerate(rng.normal(0.0, 4e-4, run.steps.size)):
            noise[i] = (rho * noise[i - 1] if i else 0.0) + np.sqrt(1.0 - rho**2) * z
        runs.append(dataclasses.replace(run, losses=TRUTH.predict_run(run) * np.exp(noise + offset)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fit_loss_law(runs), runs


def laplace(fit: LossLawFit) -> np.ndarray:
    assert fit.covariance is not None  # a fit made by fit_loss_law has one
    return fit.covariance


def test_the_robust_covariance_agrees_with_laplace_on_independent_noise_and_widens_on_correlated():
    from benchmarks.planner_alternatives import sandwich_covariance

    power_law = slice(0, 3)  # L0, A, alpha: what the data determine, away from the prior
    # independent noise and the right law: the Laplace covariance is right, and so is the sandwich
    fit, _ = synthetic_fit(rho=0.0)
    ratio = np.sqrt(np.diag(sandwich_covariance(fit, lags=0)) / np.diag(laplace(fit)))
    assert np.all((ratio[power_law] > 0.8) & (ratio[power_law] < 1.25)), ratio
    fit, _ = synthetic_fit(rho=0.9)
    laplace_like = np.sqrt(np.diag(sandwich_covariance(fit, lags=0)) / np.diag(laplace(fit)))
    robust = np.sqrt(np.diag(sandwich_covariance(fit, lags=50)) / np.diag(laplace(fit)))
    # the long-run variance of AR(1) at 0.9 is 19 times the pointwise one: sd ratio up to ~4.4
    assert np.all(robust[power_law] > 2.0 * laplace_like[power_law]), (robust, laplace_like)


def test_the_averaged_prediction_is_the_point_prediction_when_the_parameters_are_certain():
    from benchmarks.planner_alternatives import mean_pred_error

    fit, runs = synthetic_fit(rho=0.0)
    point = mean_pred_error(fit, runs)
    assert mean_pred_error(fit, runs, np.zeros((7, 7))) == pytest.approx(point, rel=1e-9)
    # and it differs when they are not (the law is not linear in them)
    assert mean_pred_error(fit, runs, 100.0 * laplace(fit)) != pytest.approx(point, rel=1e-3)


def test_an_offset_per_run_recovers_the_law_that_shifted_runs_hide():
    from benchmarks.planner_alternatives import mean_pred_error, run_offset_fit

    # three runs of the same law, one seed 0.3% above and one below: the plain fit bends the drop
    # term to explain them; the fit with an offset per run sees the law
    fit, runs = synthetic_fit(rho=0.0, offsets=(3e-3, -3e-3, 0.0))
    truth = [dataclasses.replace(r, losses=TRUTH.predict_run(r)) for r in runs]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        offset_fit = run_offset_fit(fit, sd=1e-2)
    assert mean_pred_error(offset_fit, truth) < 0.5 * mean_pred_error(fit, truth)
