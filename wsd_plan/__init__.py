"""Predict a cooldown's loss before running it: loss-curve laws fit in JAX (``wsd-schedule[plan]``).

Two published laws relate a run's loss curve to its learning-rate sequence alone: the Multi-Power
Law (Luo et al., ICLR 2025) and the annealing law (Tissue et al., 2024). Fit one on the runs you have
(a WSD trunk and one cooldown is enough), then predict any other schedule, or rank candidate
cooldowns with ``plan_cooldown``. ``published_runs`` loads the real pre-training curves shipped with
the package (the Multi-Power Law paper's, MIT License) to try it on.

>>> from wsd_plan import LossRun, fit_loss_law
"""

import importlib
import importlib.util
from typing import TYPE_CHECKING, Any

# Checked without importing them: the ``wsd`` command imports this package to declare ``wsd plan``,
# and must not pay for jax there. The public names below are imported on first use.
_missing = [m for m in ("jax", "optax", "numpy", "scipy") if importlib.util.find_spec(m) is None]
if _missing:
    raise ImportError(
        f"wsd_plan needs jax, optax, numpy and scipy ({_missing[0]} is missing): "
        "pip install 'wsd-schedule[plan]'"
    )

# The public names: each is imported from its module on first use (``__getattr__``), and named in the
# TYPE_CHECKING block for type checkers and the API docs (tests/test_layout.py keeps the two equal).
if TYPE_CHECKING:
    from wsd_plan._fit import LossLawFit as LossLawFit
    from wsd_plan._fit import curve_metrics as curve_metrics
    from wsd_plan._fit import fit_loss_law as fit_loss_law
    from wsd_plan._fit import relative_errors as relative_errors
    from wsd_plan._forecast import Forecast as Forecast
    from wsd_plan._grid import CooldownGrid as CooldownGrid
    from wsd_plan._grid import GridFields as GridFields
    from wsd_plan._ladder import ModelLadder as ModelLadder
    from wsd_plan._laws import PARAMETERS as PARAMETERS
    from wsd_plan._loading import load_run as load_run
    from wsd_plan._loading import read_schedule as read_schedule
    from wsd_plan._logs import LogError as LogError
    from wsd_plan._optimize import OptimalCooldown as OptimalCooldown
    from wsd_plan._optimize import optimize_cooldown as optimize_cooldown
    from wsd_plan._plan import CooldownCandidate as CooldownCandidate
    from wsd_plan._plan import CooldownPlan as CooldownPlan
    from wsd_plan._plan import plan_cooldown as plan_cooldown
    from wsd_plan._predictions import Predictions as Predictions
    from wsd_plan._runs import LossRun as LossRun
    from wsd_plan._runs import branch_rates as branch_rates
    from wsd_plan._runs import learning_rates as learning_rates
    from wsd_plan._watch import ForecastWatcher as ForecastWatcher
    from wsd_plan.published import published_rates as published_rates
    from wsd_plan.published import published_runs as published_runs

_HOMES = {
    "LossLawFit": "_fit",
    "Forecast": "_forecast",
    "CooldownGrid": "_grid",
    "GridFields": "_grid",
    "curve_metrics": "_fit",
    "fit_loss_law": "_fit",
    "relative_errors": "_fit",
    "ModelLadder": "_ladder",
    "PARAMETERS": "_laws",
    "load_run": "_loading",
    "read_schedule": "_loading",
    "LogError": "_logs",
    "OptimalCooldown": "_optimize",
    "optimize_cooldown": "_optimize",
    "CooldownCandidate": "_plan",
    "CooldownPlan": "_plan",
    "plan_cooldown": "_plan",
    "Predictions": "_predictions",
    "published_rates": "published",
    "published_runs": "published",
    "LossRun": "_runs",
    "branch_rates": "_runs",
    "learning_rates": "_runs",
    "ForecastWatcher": "_watch",
}


def __getattr__(name: str) -> Any:
    """Imports a public name's module on first use (and caches the name in this module)."""
    if name not in _HOMES:
        raise AttributeError(f"module 'wsd_plan' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"wsd_plan.{_HOMES[name]}"), name)
    globals()[name] = value
    return value


__all__ = sorted(_HOMES)
