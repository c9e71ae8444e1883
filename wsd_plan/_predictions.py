"""``Predictions``: several runs' predicted loss curves from one batched evaluation of a fit, with
the uncertainty of every point and of every difference between two runs' final losses.

``LossLawFit.predict_batch`` makes one; the plan ranks its candidates with it, the optimiser compares
the optimum with the grid's best, and ``predict_interval`` / ``predict_difference`` are its
one-run and two-run cases. How each part of the uncertainty is measured: ``wsd_plan._uncertainty``.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import numpy as np

from wsd_plan._uncertainty import check_level, difference_sd, log_sd, z_value
from wsd_plan.calibration import Calibration


@dataclasses.dataclass(frozen=True, eq=False)
class FitUncertainty:
    """What a fit knows of its own uncertainty (None for a fit built by hand).

    Attributes:
      covariance: the Laplace covariance of ``log(params)``.
      residual_scale: the root-mean-square weighted log residual of the fit.
      fitted: the coordinates of every fitted point (``_uncertainty.coordinates``).
      scale_of: gives the leave-one-run-out factor on the law's error (``law_error_scale``), which
        refits the law once per run: asked for only when a standard deviation needs it.
      calibration: the factor on the intervals measured for what the fit was given (None: the
        model-based intervals; ``wsd_plan.calibration``).
    """

    covariance: np.ndarray | None
    residual_scale: float | None
    fitted: np.ndarray | None
    scale_of: Callable[[], float]
    calibration: Calibration | None = None

    @functools.cached_property
    def law_error_scale(self) -> float:
        return self.scale_of()


@dataclasses.dataclass(frozen=True, eq=False)
class Predictions:
    """Runs' predicted loss curves and their uncertainty; runs are numbered as given.

    Attributes:
      curves: each run's predicted loss at its steps.
      jacobians: each run's Jacobian of the log loss in ``theta`` (points x parameters).
      points: each run's points' coordinates (``_uncertainty.coordinates``).
      uncertainty: the fit's ``FitUncertainty``.
      other_laws: gives each other law's curves of the same runs, that law fitted to the same runs
        (``LossLawFit.other_law_fits``); called once, when an interval first needs them (None: no
        other law).
    """

    curves: tuple[np.ndarray, ...]
    jacobians: tuple[np.ndarray, ...]
    points: tuple[np.ndarray, ...]
    uncertainty: FitUncertainty
    # Each other law fitted to the same runs, its curves of the same runs (``_uncertainty``, "The
    # choice of law"): asked for only when an interval needs them.
    other_laws: Callable[[], tuple[tuple[np.ndarray, ...], ...]] | None = None

    @functools.cached_property
    def _laws(self) -> tuple[tuple[np.ndarray, ...], ...]:
        """This law's curves first, then each other law's."""
        return (self.curves, *(self.other_laws() if self.other_laws is not None else ()))

    def __len__(self) -> int:
        return len(self.curves)

    @property
    def final(self) -> np.ndarray:
        """Each run's predicted loss at its last step."""
        return np.array([float(c[-1]) for c in self.curves])

    def log_sd(self, run: int, *, scale: float | None = None) -> np.ndarray:
        """The standard deviation of each predicted log loss of ``run`` under this law, the law's
        error times ``scale`` (default: the fit's ``law_error_scale``)."""
        return self._sd(self.jacobians[run], self.points[run], scale)

    def interval(self, run: int, level: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
        """``(low, high)`` on ``run``'s loss at each of its steps, with probability ``level``: the
        smallest interval holding every fitted law's (each law's prediction, the same relative width:
        the fit's calibrated one if it has a calibration)."""
        level = check_level(level)
        half = self._half(self.log_sd(run), level)
        curves = np.stack([law[run] for law in self._laws])
        return curves.min(axis=0) * np.exp(-half), curves.max(axis=0) * np.exp(half)

    def final_intervals(self, level: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
        """``(low, high)`` on every run's final loss, in one evaluation of the standard deviations."""
        level = check_level(level)
        last = lambda arrays: np.stack([a[-1] for a in arrays])
        half = self._half(self._sd(last(self.jacobians), last(self.points), None), level)
        finals = np.stack([last(law) for law in self._laws])
        return finals.min(axis=0) * np.exp(-half), finals.max(axis=0) * np.exp(half)

    def _half(self, log_sd: np.ndarray, level: float) -> np.ndarray:
        """The log half-width of the ``level`` intervals of predictions of these standard deviations."""
        calibration = self.uncertainty.calibration
        if calibration is None:
            return z_value(level) * log_sd
        return calibration.half_width(log_sd, level)

    def _sd(self, jacobians: np.ndarray, points: np.ndarray, scale: float | None) -> np.ndarray:
        """``log_sd`` of these rows with the fit's uncertainty (``scale`` None: its law_error_scale)."""
        u = self.uncertainty
        return log_sd(jacobians, points, covariance=u.covariance, residual_scale=u.residual_scale,
                      fitted=u.fitted, scale=u.law_error_scale if scale is None else scale)  # fmt: skip

    def difference_sd(self, a: int, b: int) -> float:
        """The standard deviation of run ``a``'s final loss minus run ``b``'s (both at their last
        step) under this law: most of two predictions' error is shared, so it is far below either's own."""
        u = self.uncertainty
        return difference_sd(
            (float(self.curves[a][-1]), float(self.curves[b][-1])),
            (self.jacobians[a][-1], self.jacobians[b][-1]),
            (self.points[a][-1], self.points[b][-1]),
            covariance=u.covariance,
            residual_scale=u.residual_scale,
            scale=u.law_error_scale,
        )

    def difference_interval(self, a: int, b: int, level: float = 0.9) -> tuple[float, float]:
        """``(low, high)`` on run ``a``'s final loss minus run ``b``'s, with probability ``level``: the
        smallest interval holding every fitted law's. Where it excludes 0, the two runs are
        distinguishable: every law puts them in the same order, each with that confidence."""
        half = z_value(check_level(level)) * self.difference_sd(a, b)
        gaps = [float(law[a][-1] - law[b][-1]) for law in self._laws]
        return min(gaps) - half, max(gaps) + half
