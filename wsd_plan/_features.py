"""What the laws read from a run, computed once in numpy (a run's rates are data, not parameters).

The Multi-Power Law's loss-drop term sums over every LR drop k before each logged step t:
``LD(t) = B sum_k d_k G(eta_k^(-gamma) S_k(t))``. A cosine run drops its rate at every step, so the
exact sum costs (logged points x steps): 4 million terms for a 24,000-step run, 40 million for 72,000,
and a fit evaluates it (and its gradient) hundreds of times.

``drop_table`` therefore groups the drops before each logged step by their distance from it, in
blocks whose width grows geometrically (1, 1, ..., then 5% of the distance): near t, where
``G`` changes fastest, every drop keeps its own term; far from t a block of drops becomes one term
at the block's drop-weighted mean of ``log eta_k`` and of the rate sum before it. That is the
midpoint rule on a smooth integrand, second order in the block's relative width: the relative error
of LD is below 1e-5 on the shipped runs (``tests/test_planner.py`` checks it against the exact sum),
and a 72,000-step cosine run needs 200 terms per logged point instead of up to 70,000.
Runs with fewer drops than blocks (steps, two-stage schedules) keep the exact terms.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
import scipy.signal

ANNEALING_DECAY = 0.999  # lambda of the annealing law's momentum (Tissue et al.)
BLOCK_GROWTH = 0.05  # a block of drops spans at most 5% of its distance from the logged step


class Features(NamedTuple):
    """A run as the laws read it, at its logged steps (a pytree of arrays).

    ``drop_*`` are (points, terms) tables: term j of point i stands for a block of drops before
    logged step i (exact drops: one drop each; padding: size 0).
    """

    area: Any  # S_W + S1(t): the rate summed over the warmup and every update after it up to t
    s2: Any  # the annealing law's S2(t)
    drop_size: Any  # sum of eta_{k-1} - eta_k over the block
    drop_log_lr: Any  # drop-weighted mean of log eta_k
    drop_area_since: Any  # drop-weighted mean of S_k(t) = sum_{tau=k..t} eta_tau


def drops_after_warmup(lrs: np.ndarray, warmup: int) -> np.ndarray:
    """``d[k] = eta_{k-1} - eta_k`` for every update k after the warmup (0 before it and at k = 0)."""
    d = np.zeros_like(lrs)
    start = max(warmup, 0) + 1
    d[start:] = lrs[start - 1 : -1] - lrs[start:]
    return d


def features(lrs: np.ndarray, steps: np.ndarray, warmup: int) -> Features:
    """The laws' inputs for rates ``lrs`` (from step 0) at logged ``steps``, warmup length ``warmup``."""
    lrs = np.asarray(lrs, dtype=np.float64)
    steps = np.asarray(steps, dtype=np.int64)
    cum = np.cumsum(lrs)
    drops = drops_after_warmup(lrs, warmup)
    # S_W + S1(t) with S1(t) = sum_{tau=1..t} eta_tau, t counted from the end of the warmup: every rate
    # up to step t except the first stable one (the law's sums start at tau = 1).
    first_stable = lrs[warmup] if warmup < lrs.size else 0.0
    area = cum[steps] - first_stable
    # The annealing momentum m_i = lambda m_{i-1} + d_i is a first-order linear filter; S2 its sum.
    s2 = np.cumsum(scipy.signal.lfilter([1.0], [1.0, -ANNEALING_DECAY], drops))[steps]
    size, log_lr, since = drop_table(lrs, cum, drops, steps)
    return Features(area, s2, size, log_lr, since)


def block_edges(max_distance: int) -> np.ndarray:
    """Distances 0 = e_0 < e_1 < ... covering [0, max_distance]: block j holds the drops at distance
    e_j <= t - k < e_{j+1} from a logged step t; widths 1 until 5% of the distance exceeds 1."""
    edges = [0]
    while edges[-1] <= max_distance:
        edges.append(max(edges[-1] + 1, math.ceil(edges[-1] * (1.0 + BLOCK_GROWTH))))
    return np.asarray(edges, dtype=np.int64)


def drop_table(
    lrs: np.ndarray, cum: np.ndarray, drops: np.ndarray, steps: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(size, mean log eta, mean S_k(t)) of each block of drops before each logged step."""
    at = np.flatnonzero(drops)
    cum_before = np.concatenate([[0.0], cum[:-1]])  # sum of the rates before step k
    t_area = cum[steps][:, None]
    edges = block_edges(int(steps[-1]))
    if at.size <= edges.size:  # few drops: each keeps its exact term
        before = at[None, :] <= steps[:, None]
        size = np.where(before, drops[at][None, :], 0.0)
        log_lr = np.broadcast_to(_safe_log(lrs[at]), size.shape)
        since = np.where(before, t_area - cum_before[at][None, :], 0.0)
        return size, np.ascontiguousarray(log_lr), _non_negative(since)
    # Block sums from prefix sums over all steps: prefix[x] sums the steps < x. Weights are |d_k| so
    # that a block mixing rises and drops still averages inside its own range.
    weight = np.abs(drops)
    prefix = lambda v: np.concatenate([[0.0], np.cumsum(v)])
    p_size, p_weight = prefix(drops), prefix(weight)
    p_log, p_before = prefix(weight * _safe_log(lrs)), prefix(weight * cum_before)
    # Block j of point t spans the steps [t - e_{j+1} + 1, t - e_j], clipped at step 0.
    hi = np.clip(steps[:, None] - edges[None, :-1] + 1, 0, None)
    lo = np.clip(steps[:, None] - edges[None, 1:] + 1, 0, None)
    w = p_weight[hi] - p_weight[lo]
    has = w > 0
    safe_w = np.where(has, w, 1.0)
    size = np.where(has, p_size[hi] - p_size[lo], 0.0)
    log_lr = np.where(has, (p_log[hi] - p_log[lo]) / safe_w, 0.0)
    since = np.where(has, t_area - (p_before[hi] - p_before[lo]) / safe_w, 0.0)
    keep = has.any(axis=0)  # blocks beyond every point's start hold nothing
    return size[:, keep], log_lr[:, keep], _non_negative(since[:, keep])


def _non_negative(since: np.ndarray) -> np.ndarray:
    # S_k(t) sums rates >= 0, but as a difference of cumulative sums it can come out at -1e-12; times
    # the huge eta^-gamma of a drop to a rate of 0, that made log1p(C x) NaN and a fit diverge.
    return np.maximum(since, 0.0)


def _safe_log(x: np.ndarray) -> np.ndarray:
    # A drop to a rate of 0 makes eta^-gamma infinite and G = 1: log 0 = -inf gives exactly that, but
    # an infinite input poisons gradients; -200 (eta = 1e-87) gives G = 1 to double precision.
    with np.errstate(divide="ignore"):
        return np.maximum(np.log(x), -200.0)
