"""A fit's prior from an earlier fit (``fit_loss_law(prior=)``): which parameters carry over to other
runs, and how sure they then are.

A trunk alone (a run at its peak rate, no drop yet) determines the power-law part of a law
(``L0``, ``A``, ``alpha``) but not its drop term: that is what the prior supplies. So the prior is a
Gaussian on the **drop term only** (``Law.drop_parameters``), with mean the earlier fit's and
covariance the earlier fit's own (its Laplace covariance) plus a **transfer** variance
``TRANSFER_SD ** 2`` on each: how far the drop term moves between models. The power-law part is
left to the runs: it differs between model sizes and datasets by far more than that.

**What carries over.** Not ``B`` itself, the drop term's scale (loss per unit of rate), but
``B * peak / A`` (``Law.transfer_relative_to``, ``PEAK_EXPONENT``): the loss a whole cooldown removes,
``B * peak``, relative to the power-law term's scale ``A``. Fitted to every run of each shipped model
(``benchmarks/forecast_validation.py``), ``log(B peak / A)`` is -1.63 and -1.48 for the published 25M
and 100M models (peak 3e-4) and -1.47 to -1.64 for eight of Schaipp et al.'s ten (33M to 360M, two
datasets, peaks 1e-3 and 5e-4; the other two, -0.8 and -1.0, trade ``B`` for a tiny ``beta``), while
``B`` alone spans a factor of 30. Carrying ``B`` unscaled predicted a cooldown of another peak rate
6.5% off (``trunk + published prior``: 0.56% with the scaling); the shape parameters ``C``, ``beta``
and ``gamma`` carry over as they are. ``TRANSFER_SD`` = 0.3 is the spread of ``log(B peak / A)``
over the shipped models (0.26; the two published sizes differ by 0.15). ``docs/planner.md``
("Forecasts from a trunk alone") has the validation.

The prior enters the solver's objective as a Gaussian penalty (``_least_squares.Penalty``) in its
units: the objective is ``sum huber(r)``, about ``sum r^2 / 2``, i.e. ``noise^2`` times a negative
log-likelihood; a Gaussian prior of precision ``Sigma^-1`` is therefore ``noise^2 Sigma^-1`` there.
``noise`` is these runs' own residual scale: the fit solves once with the earlier fit's (a guess),
then again from that solution with its own (``fit_loss_law``). The fit's covariance is the exact
posterior one, ``(J^T W J / s^2 + Sigma^-1)^-1``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from wsd_plan._laws import Law
from wsd_plan._least_squares import Penalty

# The least relative noise a prior is weighed by: exact (synthetic) losses fit to a residual of 1e-12,
# which would make the prior's weight 0 and the undetermined drop term singular.
NOISE_FLOOR = 1e-6
TRANSFER_SD = 0.3  # on each carried combination's logarithm (the module's docstring)
PEAK_EXPONENT = 1.0  # B scales as peak ** -PEAK_EXPONENT: B * peak carries over


def carry_rows(law: Law) -> np.ndarray:
    """The carried combinations of ``theta`` (``log(params)``), one row each: a drop-term parameter, or
    its ratio to the power-law parameter it scales with (``Law.transfer_relative_to``)."""
    names = law.parameters
    rows = np.zeros((len(law.drop_parameters), len(names)))
    for r, name in enumerate(law.drop_parameters):
        rows[r, names.index(name)] = 1.0
        if name in law.transfer_relative_to:
            rows[r, names.index(law.transfer_relative_to[name])] = -1.0
    return rows


def carried(
    law: Law,
    params: Mapping[str, float],
    covariance: np.ndarray | None,
    fitted_peaks: tuple[float, float] | None,
    *,
    peak: float,
) -> tuple[np.ndarray, np.ndarray]:
    """What an earlier fit of ``law`` says of runs of peak rate ``peak``: its ``theta``, with ``B``
    moved to that peak (``PEAK_EXPONENT``; as it is where ``fitted_peaks`` is not known), and the
    carried combinations' covariance, the fit's own (0 where it has none)."""
    names = law.parameters
    theta = np.log(np.asarray([params[n] for n in names], np.float64))
    if fitted_peaks is not None:
        shift = PEAK_EXPONENT * (0.5 * np.log(fitted_peaks[0] * fitted_peaks[1]) - np.log(peak))
        for name in law.transfer_relative_to:
            theta[names.index(name)] += shift
    rows = carry_rows(law)
    own = np.zeros((len(names), len(names))) if covariance is None else np.asarray(covariance, np.float64)
    return theta, rows @ own @ rows.T


def penalty_from_prior(
    law: Law,
    params: Mapping[str, float],
    covariance: np.ndarray | None,
    fitted_peaks: tuple[float, float] | None,
    *,
    peak: float,
    noise: float,
) -> tuple[Penalty, np.ndarray]:
    """The solver's ``Penalty`` from an earlier fit of ``law`` (its ``params``, ``covariance`` and
    ``fitted_peaks``) for runs of peak rate ``peak`` whose logged losses have relative noise
    ``noise``, and the prior's precision on ``theta`` (``log(params)``) in probability units, which
    ``posterior_covariance`` needs."""
    theta, own = carried(law, params, covariance, fitted_peaks, peak=peak)
    return gaussian_penalty(law, theta, own + np.eye(len(own)) * TRANSFER_SD**2, noise=noise)


def gaussian_penalty(
    law: Law, theta: np.ndarray, block: np.ndarray, *, noise: float, rows: np.ndarray | None = None
) -> tuple[Penalty, np.ndarray]:
    """The ``Penalty`` of a Gaussian prior on combinations of ``theta`` (``rows``; default the carried
    ones, ``carry_rows``): mean those of ``theta``, covariance ``block``; and its precision on
    ``theta``."""
    rows = carry_rows(law) if rows is None else rows
    precision_theta = rows.T @ np.linalg.inv(block) @ rows
    # theta = M u (Law.theta_jacobian), so (theta - t)^T P (theta - t) = (u - m)^T M^T P M (u - m)
    m = law.theta_jacobian()
    noise = max(noise, NOISE_FLOOR)
    return Penalty(law.to_variables(theta), noise**2 * (m.T @ precision_theta @ m)), precision_theta


def posterior_covariance(
    law: Law, hessian: np.ndarray, penalty: Penalty, precision_theta: np.ndarray, scale: float
) -> np.ndarray:
    """The covariance of ``theta`` given the data and the prior: the solver's ``hessian`` less the
    prior's part is the data's ``J^T W J`` (in ``u``), scaled by this fit's residual scale."""
    m = law.theta_jacobian()
    m_inv = np.linalg.inv(m)
    data_theta = m_inv.T @ (hessian - np.asarray(penalty.precision)) @ m_inv
    return np.linalg.pinv(data_theta / max(scale, NOISE_FLOOR) ** 2 + precision_theta, hermitian=True)
