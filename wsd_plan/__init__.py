"""Predict a cooldown's loss before running it: loss-curve laws fit in JAX (``wsd-schedule[plan]``).

Two published laws relate a run's loss curve to its learning-rate sequence alone: the Multi-Power
Law (Luo et al., ICLR 2025) and the annealing law (Tissue et al., 2024). Fit one on the runs you have
(a WSD trunk and one cooldown is enough), then predict any other schedule, or rank candidate
cooldowns with ``plan_cooldown``. ``published_runs`` loads the real pre-training curves shipped with
the package (the Multi-Power Law paper's, MIT License) to try it on.

>>> from wsd_plan import LossRun, fit_loss_law
"""

try:
    import jax as _jax  # noqa: F401
    import numpy as _numpy  # noqa: F401
    import optax as _optax  # noqa: F401
    import scipy as _scipy  # noqa: F401
except ImportError as _missing:
    raise ImportError(
        f"wsd_plan needs jax, optax, numpy and scipy ({_missing.name} is missing): "
        "pip install 'wsd-schedule[plan]'"
    ) from _missing

from wsd_plan._fit import LossLawFit as LossLawFit
from wsd_plan._fit import curve_metrics as curve_metrics
from wsd_plan._fit import fit_loss_law as fit_loss_law
from wsd_plan._fit import relative_errors as relative_errors
from wsd_plan._laws import PARAMETERS as PARAMETERS
from wsd_plan._plan import CooldownCandidate as CooldownCandidate
from wsd_plan._plan import CooldownPlan as CooldownPlan
from wsd_plan._plan import plan_cooldown as plan_cooldown
from wsd_plan._published import published_rates as published_rates
from wsd_plan._published import published_runs as published_runs
from wsd_plan._runs import LossRun as LossRun
from wsd_plan._runs import branch_rates as branch_rates
from wsd_plan._runs import learning_rates as learning_rates

__all__ = [
    "PARAMETERS",
    "CooldownCandidate",
    "CooldownPlan",
    "LossLawFit",
    "LossRun",
    "branch_rates",
    "curve_metrics",
    "fit_loss_law",
    "learning_rates",
    "plan_cooldown",
    "published_rates",
    "published_runs",
    "relative_errors",
]
