"""Levenberg-Marquardt on the Huber-weighted log residuals of a law, with exact Jacobians from JAX.

The fit's objective is ``sum huber(log L - log prediction)`` (delta ``HUBER_DELTA``) plus a mild
penalty (below). A Huber loss is a weighted least-squares problem whose weights depend on the
residuals (``w = min(1, delta / |r|)``, iteratively reweighted), so a least-squares method applies:
each iteration solves the damped normal equations ``(J^T W J + P + lam D) step = -(J^T W r + p)``
with the exact Jacobian ``J`` (``jax.jacfwd``: seven forward passes), accepts the step if the
objective falls and shrinks ``lam``, else grows ``lam``. It converges in tens of iterations where
L-BFGS needed hundreds, each with a line search.

**Variables.** The parameters are positive, so the solver works on logarithms. The multi-power
law's drop term ``B (1 - (C x + 1)^-beta)`` tends to ``B beta ln(1 + C x)`` as ``beta -> 0``: runs
with a single cooldown shape determine only the product ``B beta``, and a fit on ``log B`` ran off to
``B ~ 3e9, beta ~ 1e-9``. The solver's variables are therefore ``log(B beta)`` and ``log beta``
instead of ``log B`` and ``log beta`` (``Law.product``): the product stays where the data put it.

**Penalty.** A Gaussian penalty on ``log C``, ``log beta`` and ``log gamma`` of one decade's standard
deviation around the published fits' values (C ~ 2, beta ~ 0.6, gamma ~ 0.6; Luo et al. report
these for both model sizes), weighted as if each were one more residual of size ``HUBER_DELTA``.
Where the data determine a parameter it is far weaker than the data (the published curves move by
less than 1e-5 in PredE); where they do not (one cooldown shape says little about ``beta``), it
keeps the parameter at a meaningful value instead of at the edge of its range.

A fit given an earlier fit as its prior (``fit_loss_law(prior=)``) replaces this penalty with a
Gaussian on every variable (``Penalty``: a mean and a full precision matrix, arguments of the compiled
solver, so a fit with another prior reuses it): ``wsd_plan._transfer`` builds it from the prior.
("Prior" names the earlier ``LossLawFit``; "penalty" its Gaussian term in this objective.)

Shapes are padded to buckets (``bucket``) so that a second fit of similar data reuses the compiled
solver.
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from wsd_plan._features import Features
from wsd_plan._laws import LAWS, Law

HUBER_DELTA = 1e-3
# Fits of up to this many points share one compiled solver (padding costs less than compiling): a
# ``Forecast``, which thins its log to at most this many, never recompiles as the log grows.
MIN_POINTS = 256
PRIOR_SD = math.log(10.0)  # one decade


class Data(NamedTuple):
    """Every fitted point of every run, on one axis, padded (``weight`` 0) to bucketed shapes."""

    features: Features
    log_loss: Any
    weight: Any


def bucket(n: int, minimum: int) -> int:
    """``n`` rounded up to a power of two times 1, 1.25, 1.5 or 1.75 (at most 25% padding)."""
    n = max(n, minimum)
    power = 1 << (n.bit_length() - 3) if n >= 8 else 1
    return -(-n // power) * power


def pack(features: list[Features], losses: list[np.ndarray]) -> Data:
    """Concatenates runs' points (each point's features are its own) and pads to bucketed shapes."""
    points = sum(f.area.shape[0] for f in features)
    terms = max(f.drop_size.shape[1] for f in features)
    n, k = bucket(points, MIN_POINTS), bucket(terms, 8)

    def column(name: str) -> np.ndarray:
        values = np.concatenate([getattr(f, name) for f in features])
        # padded points get an area of 1 (finite predictions); their weight is 0
        return np.pad(values, (0, n - points), constant_values=1.0)

    def table(name: str) -> np.ndarray:
        rows = [np.pad(getattr(f, name), ((0, 0), (0, k - f.drop_size.shape[1]))) for f in features]
        return np.pad(np.concatenate(rows), ((0, n - points), (0, 0)))

    packed = Features(column("area"), column("s2"), table("drop_size"), table("drop_log_lr"),
                      table("drop_area_since"))  # fmt: skip
    log_loss = np.pad(np.log(np.concatenate(losses)), (0, n - points))
    weight = np.pad(np.ones(points), (0, n - points))
    return Data(packed, log_loss, weight)


class Penalty(NamedTuple):
    """A Gaussian penalty on the solver's variables, in objective units: the objective adds
    ``0.5 (u - mean)^T precision (u - mean)`` (precision 0: none on that direction)."""

    mean: Any
    precision: Any


class Solution(NamedTuple):
    """The solver's answer: jax arrays out of the solver, float64 host arrays once fetched."""

    variables: jax.Array | np.ndarray  # the solver's u
    objective: jax.Array | np.ndarray  # Huber objective plus penalty
    hessian: jax.Array | np.ndarray  # J^T W J + the penalty's curvature at u (Gauss-Newton)
    residual_scale: jax.Array | np.ndarray  # sqrt(sum w r^2 / (points - parameters))


def _default_terms(law: Law) -> tuple[np.ndarray, np.ndarray]:
    """(mean, precision) of the default penalty on each variable (precision 0: none), in objective units."""
    names = law.parameters
    mean, precision = np.zeros(len(names)), np.zeros(len(names))
    for name, value in law.penalty_means.items():
        i = names.index(name)
        mean[i] = math.log(value)
        precision[i] = (HUBER_DELTA / PRIOR_SD) ** 2
    return mean, precision


def default_penalty(law: Law) -> Penalty:
    """The mild penalty of a fit without a prior (the module's docstring): diagonal."""
    mean, precision = _default_terms(law)
    return Penalty(mean, np.diag(precision))


def huber(r: jax.Array) -> jax.Array:
    """The Huber loss of each residual: ``r^2 / 2`` within ``HUBER_DELTA``, linear beyond."""
    a = jnp.abs(r)
    return jnp.where(a <= HUBER_DELTA, 0.5 * r * r, HUBER_DELTA * (a - 0.5 * HUBER_DELTA))


def _solve(name: str, u0: jax.Array, data: Data, iterations: jax.Array, penalty: Penalty) -> Solution:
    law = LAWS[name]
    mean, precision = penalty

    def residuals(u: jax.Array) -> jax.Array:
        pred = law.curve(law.to_theta(u), data.features)
        # a non-positive prediction has no log: NaN, which makes the objective infinite (rejected)
        r = data.log_loss - jnp.log(jnp.where(pred > 0, pred, jnp.nan))
        return jnp.where(data.weight > 0, r, 0.0)

    def objective(u: jax.Array, r: jax.Array) -> jax.Array:
        total = jnp.sum(huber(r)) + 0.5 * (u - mean) @ precision @ (u - mean)
        return jnp.where(jnp.isfinite(total), total, jnp.inf)

    def normal_equations(u: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
        r = residuals(u)
        jac = jax.jacfwd(residuals)(u)
        w = jnp.minimum(1.0, HUBER_DELTA / jnp.maximum(jnp.abs(r), 1e-300))
        hess = jac.T @ (w[:, None] * jac) + precision
        # d huber(r)/dr = w r, so the gradient is J^T (w r) (J = dr/du); the penalty adds P (u - mean)
        grad = jac.T @ (w * r) + precision @ (u - mean)
        return r, hess, grad, objective(u, r)

    class State(NamedTuple):
        u: Any
        r: Any
        hess: Any
        grad: Any
        value: Any
        lam: Any
        it: Any
        done: Any

    def step(s: State) -> State:
        damped = s.hess + s.lam * jnp.diag(jnp.diag(s.hess) + 1e-12)
        trial = s.u - jnp.linalg.solve(damped, s.grad)
        r, hess, grad, value = normal_equations(trial)
        better = jnp.isfinite(value) & (value < s.value)
        # converged: the objective stopped moving, or no damping finds a better point
        gain = (s.value - value) / jnp.maximum(s.value, 1e-300)
        moved = jnp.max(jnp.abs(trial - s.u))
        done = (better & ((gain < 1e-12) | (moved < 1e-10))) | (s.lam > 1e12)
        pick = lambda new, old: jnp.where(better, new, old)
        return State(
            pick(trial, s.u), pick(r, s.r), pick(hess, s.hess), pick(grad, s.grad), pick(value, s.value),
            jnp.where(better, s.lam / 3.0, s.lam * 4.0), s.it + 1, done,
        )  # fmt: skip

    r, hess, grad, value = normal_equations(u0)
    start = State(u0, r, hess, grad, value, jnp.asarray(1e-3), jnp.asarray(0), ~jnp.isfinite(value))
    end = jax.lax.while_loop(lambda s: ~s.done & (s.it < iterations), step, start)
    r = end.r
    w = jnp.minimum(1.0, HUBER_DELTA / jnp.maximum(jnp.abs(r), 1e-300))
    dof = jnp.maximum(jnp.sum(data.weight) - u0.shape[0], 1.0)
    scale = jnp.sqrt(jnp.sum(w * r * r) / dof)
    return Solution(end.u, end.value, end.hess, scale)


@functools.cache
def solver(law: str) -> Any:
    """The jitted solver of ``law`` over a batch of starting points:
    ``solver(law)(u0s, data, iterations, penalty)`` (``iterations``: the most per start)."""
    return jax.jit(jax.vmap(functools.partial(_solve, law), in_axes=(0, None, None, None)))
