"""The laws as a research script builds on them: each law's record, its curve on a schedule's
features, and the objective a fit minimises.

``fit_loss_law`` is how to fit a law; this module is for measuring alternatives to that fit
(``benchmarks/planner_alternatives.py``, ``benchmarks/planner_bench.py``) and for studying a law.
Each law is one ``Law`` record (``LAWS`` by name: its parameters, its loss in ``jax.numpy`` on
``Features``, its solver variables and starting points); ``features`` computes a schedule's
``Features`` (``wsd_plan._features`` says how the drop sums are blocked); the objective is
``sum huber(log loss - log law)`` plus a Gaussian ``Penalty`` (``default_penalty``: the mild one
of a fit without a prior), solved by ``solver(name)`` over packed ``Data`` (``pack``).

Examples:
  >>> import numpy as np
  >>> from wsd_plan.laws import LAWS, features, float64_mode, on_device
  >>> lrs = np.r_[np.linspace(0.0, 3e-4, 100), np.full(900, 3e-4)]
  >>> f = features(lrs, np.array([500, 999]), warmup=100)
  >>> theta = np.log([3.0, 0.5, 0.5, 400.0, 2.0, 0.6, 0.6])  # L0, A, alpha, B, C, beta, gamma
  >>> with float64_mode():
  ...     loss = LAWS["multi-power"].curve(theta, on_device(f))
  >>> [round(float(x), 3) for x in loss]
  [4.361, 3.937]
"""

from wsd_plan._features import Features, drops_after_warmup, features
from wsd_plan._fit import float64_mode, on_device, power_law_start
from wsd_plan._laws import ANNEALING, LAWS, MULTI_POWER, PARAMETERS, Law, annealing, multi_power
from wsd_plan._least_squares import HUBER_DELTA, Data, Penalty, default_penalty, huber, pack, solver

__all__ = [
    "ANNEALING",
    "HUBER_DELTA",
    "LAWS",
    "MULTI_POWER",
    "PARAMETERS",
    "Data",
    "Features",
    "Law",
    "Penalty",
    "annealing",
    "default_penalty",
    "drops_after_warmup",
    "features",
    "float64_mode",
    "huber",
    "multi_power",
    "on_device",
    "pack",
    "power_law_start",
    "solver",
]
