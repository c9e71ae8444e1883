"""How sure a prediction is: the intervals of ``LossLawFit.predict_interval`` and ``predict_difference``.

A predicted log loss has three sources of error under the fitted law, added as independent variances
(and a fourth, the choice of law, below):

1. **The parameters** (what the fitted runs leave uncertain): ``g^T Sigma g``, with ``g`` the gradient
   of the predicted log loss in ``log(params)`` (exact, from ``jax.jacfwd``) and ``Sigma`` the fit's
   Laplace covariance (the inverse Gauss-Newton matrix at the fit, scaled by the residuals).
2. **The noise** of a logged loss: the fit's root-mean-square log residual.
3. **The law's own error** when it extrapolates to another shape, floor or length, which neither of
   the above sees (on the shipped curves they are 4 to 40 times smaller than the errors made). It
   grows with the distance of the predicted point from the points the law was fit on:
   ``sd = LAW_ERROR_BASE + LAW_ERROR_SLOPE * d``, with ``d`` the Euclidean distance, in
   ``(AREA_WEIGHT * log area, drop)``, to the nearest fitted point. ``area`` is the rate summed up
   to the step (how far a run has trained), ``drop`` the fraction of the loss that the law's drop
   term removes there (how much of the run's loss is owed to its cooldown): a longer run moves along
   the first axis, another cooldown shape or floor along the second.

The three constants were measured on the published curves (both model sizes; fits on the paper's
three runs and on a trunk with one cooldown; every other run predicted; 26 cases): the smallest
``(base, slope)`` whose 90% intervals cover 90% of the measured final losses is (0.001, 0.11),
median half-width 0.46%. Measured on one size alone they covered only 54% of the other's, so the
shipped constants have a margin: (0.002, 0.15), which cover all 26 with a median half-width of
0.73% before the check below (``docs/planner.md`` has the table).

**Leave one run out.** The constants come from two models of one paper; a user's runs can be
harder. ``LossLawFit.law_error_scale`` refits the law once without each fitted run (where the rest
can still be fit) and predicts the run left out; if any of those predictions falls outside its own
interval, every interval of the fit widens by the smallest factor that covers them all. That
choice uses only the runs the fit was given.

**The choice of law**, which none of the above sees when the law itself is wrong. The other laws
(``wsd_plan.laws.LAWS``) are fitted to the same runs (``LossLawFit.other_law_fits``), and an interval is
the smallest one that holds every law's: each law's prediction with this fit's relative width. Laws
that fit the same runs about equally well but disagree on a schedule give it a wide interval; where
they agree, nothing widens. So an order called with 90% confidence is one that every fitted law
makes with that confidence. Measured on synthetic truths with the wrong law fitted
(``benchmarks/planner_calibration.py``, the table in ``docs/planner.md``).

**Calibrated on real runs.** A fit of the Multi-Power Law records what it was given (its protocol)
and scales the standard deviation above by a factor measured for that protocol on held-out models
of the shipped curves (``wsd_plan.calibration``): the constants here are conservative for the
protocols measured, 5-10 times wider than the errors on trunk-alone forecasts.

The difference ``L_a - L_b`` of two schedules at one step shares most of its error: the parameter
part is computed on the difference itself (its gradient is ``L_a g_a - L_b g_b``), the noise is that
of two measurements, and the law's part is ``LAW_ERROR_SLOPE`` times the distance between the two
points (no base: a bias common to both cancels).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.stats

from wsd_core.backend import check_real

LAW_ERROR_BASE = 0.002
LAW_ERROR_SLOPE = 0.15
AREA_WEIGHT = 0.03


def z_value(level: float) -> float:
    """The two-sided normal quantile of ``level`` (1.645 for 0.9)."""
    return float(scipy.stats.norm.ppf(0.5 + level / 2.0))


def check_level(level: Any) -> float:
    """``level`` as a float probability strictly between 0 and 1 (the core's number check first)."""
    level = check_real("level", level)
    if not 0 < level < 1:
        raise ValueError(f"level must be a probability strictly between 0 and 1 (e.g. 0.9), got {level!r}")
    return level


def coordinates(params: dict[str, float], area: Any, predicted: Any) -> np.ndarray:
    """``(AREA_WEIGHT * log area, drop)`` of each point: where it lies relative to other points."""
    area, predicted = np.asarray(area, np.float64), np.asarray(predicted, np.float64)
    power = params["L0"] + params["A"] * area ** -params["alpha"]
    return np.stack([AREA_WEIGHT * np.log(area), (power - predicted) / predicted], axis=-1)


def nearest(points: np.ndarray, fitted: np.ndarray | None) -> np.ndarray:
    """The distance of each point to the nearest fitted point (0 for a fit built by hand)."""
    if fitted is None or fitted.size == 0:
        return np.zeros(points.shape[0])
    gaps = points[:, None, :] - fitted[None, :, :]
    return np.sqrt(np.min(np.sum(gaps * gaps, axis=-1), axis=1))


def parameter_variance(jacobian: np.ndarray, covariance: np.ndarray | None) -> np.ndarray:
    """``g^T Sigma g`` of each row ``g`` of ``jacobian``."""
    if covariance is None:
        return np.zeros(jacobian.shape[0])
    return np.einsum("ij,jk,ik->i", jacobian, covariance, jacobian)


def log_sd(
    jacobian: np.ndarray,
    points: np.ndarray,
    *,
    covariance: np.ndarray | None,
    residual_scale: float | None,
    fitted: np.ndarray | None,
    scale: float,
) -> np.ndarray:
    """The standard deviation of each predicted log loss (``jacobian``: of the log loss in theta)."""
    law = scale * (LAW_ERROR_BASE + LAW_ERROR_SLOPE * nearest(points, fitted))
    noise = (residual_scale or 0.0) ** 2
    return np.sqrt(parameter_variance(jacobian, covariance) + noise + law**2)


def difference_sd(
    values: tuple[float, float],
    jacobians: tuple[np.ndarray, np.ndarray],
    points: tuple[np.ndarray, np.ndarray],
    *,
    covariance: np.ndarray | None,
    residual_scale: float | None,
    scale: float,
) -> float:
    """The standard deviation of ``L_a - L_b`` at one step (``jacobians``: of each log loss)."""
    (va, vb), (ja, jb), (pa, pb) = values, jacobians, points
    gradient = (va * ja - vb * jb)[None, :]
    params = float(parameter_variance(gradient, covariance)[0])
    noise = (residual_scale or 0.0) ** 2 * (va**2 + vb**2)
    law = scale * LAW_ERROR_SLOPE * float(np.linalg.norm(pa - pb)) * 0.5 * (va + vb)
    return float(np.sqrt(params + noise + law**2))
