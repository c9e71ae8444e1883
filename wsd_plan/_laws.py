"""The two loss-curve laws, each written once in ``jax.numpy`` on a run's ``Features``.

Parameters are positive; the fit searches their logarithms (``theta``), so every law takes
``theta = log(params)`` in the order of ``PARAMETERS[law]``.

* **Multi-Power Law** (Luo et al., ICLR 2025, arXiv 2503.12811):
  ``L(t) = L0 + A (S_W + S1(t))^(-alpha) - LD(t)``,
  ``LD(t) = B sum_{k=1..t} (eta_{k-1} - eta_k) G(eta_k^(-gamma) S_k(t))``,
  ``G(x) = 1 - (C x + 1)^(-beta)``, ``S_k(t) = sum_{tau=k..t} eta_tau``.
* **Annealing law** (Tissue et al., arXiv 2408.11029):
  ``L(t) = L0 + A (S_W + S1(t))^(-alpha) - C S2(t)``, ``S2 = sum_i m_i``,
  ``m_i = lambda m_{i-1} + (eta_{i-1} - eta_i)``.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from wsd_plan._features import Features

PARAMETERS: dict[str, tuple[str, ...]] = {
    "multi-power": ("L0", "A", "alpha", "B", "C", "beta", "gamma"),
    "annealing": ("L0", "A", "alpha", "C"),
}


def multi_power(theta: jax.Array, f: Features) -> jax.Array:
    """The Multi-Power Law's loss at each logged step."""
    L0, A, alpha, B, C, beta, gamma = jnp.exp(theta)
    x = jnp.exp(-gamma * f.drop_log_lr) * f.drop_area_since
    # 1 - (C x + 1)^-beta as -expm1(-beta log1p(C x)): exact for the tiny C x of the newest drops.
    g = -jnp.expm1(-beta * jnp.log1p(C * x))
    loss_drop = B * jnp.sum(f.drop_size * g, axis=-1)
    return L0 + A * f.area ** (-alpha) - loss_drop


def annealing(theta: jax.Array, f: Features) -> jax.Array:
    """The annealing law's loss at each logged step."""
    L0, A, alpha, C = jnp.exp(theta)
    return L0 + A * f.area ** (-alpha) - C * f.s2


LAWS: dict[str, Callable[[jax.Array, Features], jax.Array]] = {
    "multi-power": multi_power,
    "annealing": annealing,
}
