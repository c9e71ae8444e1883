"""Predict a cooldown's loss before running it: loss-curve laws fit in JAX (``wsd-schedule[jax]``).

Two published laws relate a run's loss curve to its learning-rate sequence alone: the Multi-Power
Law (Luo et al., ICLR 2025) and the annealing law (Tissue et al., 2024). Fit one on the runs you have
(a WSD trunk and one cooldown is enough), then predict any other schedule, or rank candidate
cooldowns with ``plan_cooldown``. ``published_runs`` loads the real pre-training curves shipped with
the package (the Multi-Power Law paper's, MIT License) to try it on.

>>> from wsd_jax.planner import LossRun, fit_loss_law
"""

from wsd_jax.planner._fit import LossLawFit as LossLawFit
from wsd_jax.planner._fit import curve_metrics as curve_metrics
from wsd_jax.planner._fit import fit_loss_law as fit_loss_law
from wsd_jax.planner._fit import relative_errors as relative_errors
from wsd_jax.planner._laws import PARAMETERS as PARAMETERS
from wsd_jax.planner._plan import CooldownCandidate as CooldownCandidate
from wsd_jax.planner._plan import CooldownPlan as CooldownPlan
from wsd_jax.planner._plan import plan_cooldown as plan_cooldown
from wsd_jax.planner._published import published_rates as published_rates
from wsd_jax.planner._published import published_runs as published_runs
from wsd_jax.planner._runs import LossRun as LossRun
from wsd_jax.planner._runs import learning_rates as learning_rates

__all__ = [
    "PARAMETERS",
    "CooldownCandidate",
    "CooldownPlan",
    "LossLawFit",
    "LossRun",
    "curve_metrics",
    "fit_loss_law",
    "learning_rates",
    "plan_cooldown",
    "published_rates",
    "published_runs",
    "relative_errors",
]
