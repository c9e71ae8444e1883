"""The two loss-curve laws, each one ``Law`` record: its parameters, its loss in ``jax.numpy``, its
prior and starting points. Everything else in the planner asks the record; nothing branches on a law's
name.

Parameters are positive; the fit searches their logarithms (``theta``), so every law takes
``theta = log(params)`` in the order of ``law.parameters``.

* **Multi-Power Law** (Luo et al., ICLR 2025, arXiv 2503.12811):
  ``L(t) = L0 + A (S_W + S1(t))^(-alpha) - LD(t)``,
  ``LD(t) = B sum_{k=1..t} (eta_{k-1} - eta_k) G(eta_k^(-gamma) S_k(t))``,
  ``G(x) = 1 - (C x + 1)^(-beta)``, ``S_k(t) = sum_{tau=k..t} eta_tau``.
* **Annealing law** (Tissue et al., arXiv 2408.11029):
  ``L(t) = L0 + A (S_W + S1(t))^(-alpha) - C S2(t)``, ``S2 = sum_i m_i``,
  ``m_i = lambda m_{i-1} + (eta_{i-1} - eta_i)``.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from wsd_plan._features import ANNEALING_DECAY, Features


class Drops(NamedTuple):
    """A whole rate sequence as the exact drop terms read it at its last update ``t``: every update's
    rate, the cumulative sum, the update indices and each update's drop (0 in the warmup)."""

    lrs: jax.Array
    cum: jax.Array
    steps: jax.Array
    drops: jax.Array
    t: int


@dataclasses.dataclass(frozen=True)
class Law:
    """One loss-curve law: all the fit, the plan and the optimiser need of it.

    Attributes:
      name: how users name it (``fit_loss_law(runs, law=name)``, ``LossLawFit.law``).
      parameters: the parameter names, in ``theta`` order.
      curve: the loss at each point of a run's ``Features``, from ``theta``.
      final_drop: the drop term at a rate sequence's last update, every drop its own term (exact, for
        ``optimize_cooldown``'s gradient in every rate), from the parameters by name.
      drop_parameters: the parameters of the drop term, which a run without an LR drop does not
        determine: a fit of such a run takes them from a prior (``wsd_plan._transfer``).
      needs_drop: whether a fit needs a run whose rate drops (else the drop term is undetermined).
      penalty_means: a weak Gaussian penalty's mean on some parameters (one decade wide,
        ``_least_squares``).
      product: ``(i, j)``: the solver's variable ``i`` is ``log(p_i * p_j)`` instead of ``log p_i``
        (the multi-power ``B*beta``, which the data determine when ``beta`` alone is not).
      start_grid: starting points of the fit from the power-law part ``(L0, A, alpha)``.
    """

    name: str
    parameters: tuple[str, ...]
    curve: Callable[[jax.Array, Features], jax.Array]
    final_drop: Callable[[Mapping[str, Any], Drops], jax.Array]
    start_grid: Callable[[float, float, float], list[list[float]]]
    drop_parameters: tuple[str, ...] = ()
    transfer_relative_to: Mapping[str, str] = dataclasses.field(default_factory=dict)
    needs_drop: bool = False
    penalty_means: Mapping[str, float] = dataclasses.field(default_factory=dict)
    product: tuple[int, int] | None = None

    @property
    def variables(self) -> tuple[str, ...]:
        """The solver's variable names."""
        names = [f"log {p}" for p in self.parameters]
        if self.product is not None:
            i, j = self.product
            names[i] = f"log {self.parameters[i]}*{self.parameters[j]}"
        return tuple(names)

    def to_theta(self, u: Any) -> jax.Array:
        """``theta = log(params)`` from the solver's variables ``u``."""
        if self.product is None:
            return jnp.asarray(u)
        i, j = self.product
        return jnp.asarray(u).at[..., i].add(-u[..., j])

    def to_variables(self, theta: Any) -> np.ndarray:
        """The inverse of ``to_theta``."""
        u = np.array(theta, dtype=np.float64)
        if self.product is not None:
            i, j = self.product
            u[..., i] += u[..., j]
        return u

    def theta_jacobian(self) -> np.ndarray:
        """``d theta / d u`` (constant: the map is linear), to carry a covariance from u to theta."""
        m = np.eye(len(self.parameters))
        if self.product is not None:
            m[self.product] = -1.0
        return m

    def starts(self, L0: float, A: float, alpha: float) -> np.ndarray:
        """The solver's starting points (``u``), from the power-law part's fit."""
        return self.to_variables(np.log(np.asarray(self.start_grid(L0, A, alpha), np.float64)))


def _scaled_area(gamma: jax.Array, log_lr: jax.Array, since: jax.Array) -> jax.Array:
    """``eta_k^-gamma S_k(t)``, its exponent capped at 600: a drop to a rate of 0 (log -200) at a
    large ``gamma`` overflowed to inf, and inf * 0 (``S_k(t) = 0``) or its derivative made a fit NaN;
    at ``e^600`` the term ``G`` is 1 to double precision already."""
    return jnp.exp(jnp.minimum(-gamma * log_lr, 600.0)) * since


def multi_power(theta: jax.Array, f: Features) -> jax.Array:
    """The Multi-Power Law's loss at each logged step."""
    L0, A, alpha, B, C, beta, gamma = jnp.exp(theta)
    x = _scaled_area(gamma, f.drop_log_lr, f.drop_area_since)
    # 1 - (C x + 1)^-beta as -expm1(-beta log1p(C x)): exact for the tiny C x of the newest drops.
    g = -jnp.expm1(-beta * jnp.log1p(C * x))
    loss_drop = B * jnp.sum(f.drop_size * g, axis=-1)
    return L0 + A * f.area ** (-alpha) - loss_drop


def _multi_power_final_drop(p: Mapping[str, Any], d: Drops) -> jax.Array:
    since = d.cum[d.t] - (d.cum - d.lrs)  # S_k(t): the rates from k to t
    log_lr = jnp.maximum(jnp.log(jnp.maximum(d.lrs, 1e-300)), -200.0)  # as _features._safe_log
    x = _scaled_area(p["gamma"], log_lr, jnp.maximum(since, 0.0))
    g = -jnp.expm1(-p["beta"] * jnp.log1p(p["C"] * x))
    return p["B"] * jnp.sum(d.drops * g)


def _multi_power_starts(L0: float, A: float, alpha: float) -> list[list[float]]:
    # B scales the drop term; C, beta and gamma shape its saturation (G ~ 1 after a few hundred steps
    # at typical rates). A small grid over the two that matter most is enough for the solver.
    return [[L0, A, alpha, b, c, 0.5, 0.5] for b in (100.0, 1000.0) for c in (0.5, 5.0)]


def annealing(theta: jax.Array, f: Features) -> jax.Array:
    """The annealing law's loss at each logged step."""
    L0, A, alpha, C = jnp.exp(theta)
    return L0 + A * f.area ** (-alpha) - C * f.s2


def _annealing_final_drop(p: Mapping[str, Any], d: Drops) -> jax.Array:
    # S2 = sum_i m_i with m_i = lambda m_{i-1} + d_i: each drop d_k contributes
    # d_k (1 - lambda^(t - k + 1)) / (1 - lambda)
    lam = ANNEALING_DECAY
    weight = -jnp.expm1((d.t - d.steps + 1) * np.log(lam)) / (1.0 - lam)
    return p["C"] * jnp.sum(d.drops * weight)


def _annealing_starts(L0: float, A: float, alpha: float) -> list[list[float]]:
    return [[L0, A, alpha, c] for c in (0.1, 1.0, 10.0, 100.0)]


MULTI_POWER = Law(
    name="multi-power",
    parameters=("L0", "A", "alpha", "B", "C", "beta", "gamma"),
    curve=multi_power,
    final_drop=_multi_power_final_drop,
    start_grid=_multi_power_starts,
    drop_parameters=("B", "C", "beta", "gamma"),
    transfer_relative_to=types.MappingProxyType({"B": "A"}),
    needs_drop=True,
    penalty_means=types.MappingProxyType({"C": 2.0, "beta": 0.6, "gamma": 0.6}),
    product=(3, 5),  # log B*beta
)
ANNEALING = Law(
    name="annealing",
    parameters=("L0", "A", "alpha", "C"),
    curve=annealing,
    final_drop=_annealing_final_drop,
    start_grid=_annealing_starts,
    drop_parameters=("C",),
    transfer_relative_to=types.MappingProxyType({"C": "A"}),
)

LAWS: Mapping[str, Law] = types.MappingProxyType({law.name: law for law in (MULTI_POWER, ANNEALING)})
# The parameter names of each law, by name (public, as ``wsd_plan.PARAMETERS``): read off the records.
PARAMETERS: Mapping[str, tuple[str, ...]] = types.MappingProxyType(
    {n: law.parameters for n, law in LAWS.items()}
)
