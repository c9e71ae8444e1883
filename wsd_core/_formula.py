"""The WSD multiplier m(s), written once for every backend.

``evaluate`` is the contract's piecewise function (``docs/contract.md``, "The function"). It
touches its input only through Python operators and the small ``Backend`` interface below, so the same
code runs on Python numbers (the per-step ``LambdaLR`` path), on ``jax.numpy`` arrays under ``jit``
and ``vmap`` and on torch tensors on any device. Backends differ only in how they select branches:
Python evaluates the chosen branch alone, array backends evaluate both and pick with ``where``.

Numerics (why the shapes are not typed exactly as the contract prints them):

* Phase tests compare integers, and the decay progress ``p`` and its complement ``q = 1 - p`` are each
  formed from an *integer* difference (``u - b_i`` and ``c_i - u``) before one division. Both are
  then exact up to one rounding, so boundaries are exact for every int32 count.
* Each shape is an algebraically identical rewrite of the contract's formula that avoids cancellation
  when the value approaches a floor of 0 (e.g. ``1 - sqrt(p) == q / (1 + sqrt(p))``,
  ``(1 + cos(pi p)) / 2 == sin(pi q / 2) ** 2``, ``2 * 0.5**p - 1 == expm1(q ln 2)``). The literal
  forms lose every significant digit of float32 near the end of a decay to ``min_ratio = 0``.
* ``p`` and ``q`` are clipped to [0, 1] before any sqrt or sine, ``Backend.sqrt`` is gradient-safe at
  0, and divisors are never 0, so no branch produces NaN, also the branches ``where`` discards (which
  would otherwise poison ``jax.grad``).
* The result is finally clipped to the contract's range [min(init_ratio, min_ratio), 1] so that
  rounding can never step outside it.
"""

from __future__ import annotations

import bisect
import math
import operator
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

_HALF_PI = math.pi / 2.0
_LN2 = math.log(2.0)


class Backend(Protocol):
    """What ``evaluate`` needs from a numeric backend beyond Python's arithmetic operators."""

    def locate(self, u: Any) -> tuple[Any, Any, Any]:
        """Returns ``(b_i, c_i, d_i)`` of the period that local step ``u`` falls in."""
        ...

    def to_float(self, x: Any) -> Any:
        """Converts an integer (or float) quantity to the backend's compute float type."""
        ...

    def select(self, cond: Any, if_true: Callable[[], Any], if_false: Callable[[], Any]) -> Any:
        """``if_true()`` where ``cond`` holds, else ``if_false()``."""
        ...

    def maximum(self, x: Any, y: Any) -> Any: ...

    def clip(self, x: Any, low: float, high: float) -> Any: ...

    def sqrt(self, x: Any) -> Any:
        """Square root of ``x >= 0`` whose gradient is finite (0) at ``x == 0``."""
        ...

    def sin(self, x: Any) -> Any: ...

    def expm1(self, x: Any) -> Any: ...

    def exp(self, x: Any) -> Any: ...

    def divide(self, x: Any, y: Any) -> Any:
        """``x / y``, correctly rounded also where ``x`` is a Python number and ``y`` an array
        (torch computes ``number / tensor`` as ``tensor.reciprocal() * number``, off by an ulp)."""
        ...


# --- shapes -----------------------------------------------------------------------------------
# Decay shapes take progress p, its complement q = 1 - p (formed independently, see above) and the
# floor r; each has g(p=0) = 1 and g(p=1) = r. Warmup shapes take progress p and have w(0)=0, w(1)=1.

DecayShape = Callable[[Any, Any, float, Backend], Any]
WarmupShape = Callable[[Any, Backend], Any]


def _decay_linear(p: Any, q: Any, r: float, ops: Backend) -> Any:
    # 1 - (1 - r) p
    return r + (1.0 - r) * q


def _decay_cosine(p: Any, q: Any, r: float, ops: Backend) -> Any:
    # r + (1 - r) (1 + cos(pi p)) / 2
    s = ops.sin(_HALF_PI * q)
    return r + (1.0 - r) * (s * s)


def _decay_one_minus_sqrt(p: Any, q: Any, r: float, ops: Backend) -> Any:
    # r + (1 - r) (1 - sqrt(p))
    return r + (1.0 - r) * (q / (1.0 + ops.sqrt(p)))


def _decay_inverse(p: Any, q: Any, r: float, ops: Backend) -> Any:
    # 1 / (p / r + 1 - p) == r / (r + p (1 - r)), with 1 - r taken in float64 here. The denominator
    # only grows with p, so every rounding step is monotone and so is m (r / (p + r q) is not: with
    # p and q rounded independently it can rise by an ulp when r is near 1). There is no division by
    # r: a tiny r (1e-40) is 0 once float32 flushes subnormals (XLA does) or rounds below them (torch,
    # 1e-46), and p / r would be 0/0 = NaN. The denominator is 0 only where p = 0 and r became 0; m = 1
    # there, as for every shape at p = 0, and adding the boolean keeps the discarded quotient finite
    # (no NaN gradient either).
    den = r + p * (1.0 - r)
    zero = den == 0
    return ops.select(zero, lambda: 1.0, lambda: ops.divide(r, den + zero))


def _decay_exponential(p: Any, q: Any, r: float, ops: Backend) -> Any:
    # r + (1 - r) (2 * 0.5**p - 1)
    return r + (1.0 - r) * ops.expm1(_LN2 * q)


def _decay_geometric(p: Any, q: Any, r: float, ops: Backend) -> Any:
    # r ** p = exp(p ln r), with ln r taken in float64 here: r itself may be below what float32 can
    # hold (1e-40 flushes to 0 under XLA), its logarithm never is. The exponent is <= 0, so exp cannot
    # overflow; the end of the decay (q = 0) is r exactly rather than exp(ln r) rounded.
    log_r = math.log(r)
    return ops.select(q == 0, lambda: r, lambda: ops.exp(p * log_r))


def _warmup_linear(p: Any, ops: Backend) -> Any:
    return p


def _warmup_cosine(p: Any, ops: Backend) -> Any:
    # (1 - cos(pi p)) / 2
    s = ops.sin(_HALF_PI * p)
    return s * s


DECAY_SHAPES: dict[str, DecayShape] = {
    "linear": _decay_linear,
    "cosine": _decay_cosine,
    "1-sqrt": _decay_one_minus_sqrt,
    "inverse": _decay_inverse,
    "exponential": _decay_exponential,
    "geometric": _decay_geometric,
}

WARMUP_SHAPES: dict[str, WarmupShape] = {
    "linear": _warmup_linear,
    "cosine": _warmup_cosine,
}


class Resolved(NamedTuple):
    """A validated spec reduced to the numbers ``evaluate`` reads (local steps, start_step removed)."""

    start_step: int
    warmup_steps: int
    init_ratio: float
    warmup_shape: str
    decay_shape: str
    min_ratio: float
    ends: tuple[int, ...]  # c_1 .. c_K
    decay_starts: tuple[int, ...]  # b_i = c_i - d_i
    decay_lengths: tuple[int, ...]  # d_i

    @property
    def count_range(self) -> tuple[int, int]:
        """(s0, s0 + T): a count below s0 evaluates as s0 and one above s0 + T as s0 + T, so a backend
        may clamp an integer count into this range, exactly, before narrowing its type."""
        return self.start_step, self.start_step + self.ends[-1]

    @property
    def floor(self) -> float:
        """The smallest value m can take: min(init_ratio, min_ratio) (init_ratio only with warmup)."""
        return min(self.init_ratio, self.min_ratio) if self.warmup_steps > 0 else self.min_ratio


def decay_value(u: Any, b: Any, c: Any, d: Any, plan: Resolved, ops: Backend) -> Any:
    """g(p) at local step ``u`` of the decay of period (b, c, d): p and q each from an integer
    difference, clipped to [0, 1]."""
    width = ops.to_float(ops.maximum(d, 1))
    p = ops.clip(ops.to_float(u - b) / width, 0.0, 1.0)
    q = ops.clip(ops.to_float(c - u) / width, 0.0, 1.0)
    return DECAY_SHAPES[plan.decay_shape](p, q, plan.min_ratio, ops)


def warmup_value(u: Any, plan: Resolved, ops: Backend) -> Any:
    """a + (1 - a) w(u / W) at local step ``u`` of the warmup (W > 0)."""
    a = plan.init_ratio
    p = ops.clip(ops.to_float(u) / plan.warmup_steps, 0.0, 1.0)
    return a + (1.0 - a) * WARMUP_SHAPES[plan.warmup_shape](p, ops)


def evaluate(step: Any, plan: Resolved, ops: Backend) -> Any:
    """The contract's m(step) on any backend; ``step`` is the optimizer's update count."""
    m = _by_phase(
        step,
        plan,
        ops,
        decay=lambda u, b, c, d: decay_value(u, b, c, d, plan, ops),
        warmup=lambda u: warmup_value(u, plan, ops),
    )
    return ops.clip(m, plan.floor, 1.0)


def stable_fraction(step: Any, plan: Resolved, ops: Backend) -> Any:
    """h(step) of the contract's companion hyperparameters: 1 where the rate is at its peak or warming
    up to it, 0 where a decay reaches the floor, and in between the rate's own decay progress
    ``(g - r) / (1 - r)`` (``g`` the decay shape, ``r = min_ratio``). A companion value is
    ``cooled + (stable - cooled) * h``. With ``min_ratio = 1`` nothing decays: h = 1."""
    r = plan.min_ratio
    if r < 1.0:  # static
        progress = lambda u, b, c, d: (decay_value(u, b, c, d, plan, ops) - r) / (1.0 - r)
    else:
        progress = lambda u, b, c, d: 1.0
    # the warmup counts as the peak: a companion moves only in a decay
    h = _by_phase(step, plan, ops, decay=progress, warmup=lambda u: 1.0)
    return ops.clip(h, 0.0, 1.0)


def _by_phase(
    step: Any, plan: Resolved, ops: Backend, *, decay: Callable[..., Any], warmup: Callable[[Any], Any]
) -> Any:
    """The contract's pieces at update count ``step``: ``warmup(u)`` where u < W (warmup wins where it
    overlaps a decay), ``decay(u, b, c, d)`` in a period's decay, 1 elsewhere (stable)."""
    s0 = plan.start_step
    # u = max(s - s0, 0), written so that no intermediate can overflow a fixed-width integer.
    u = ops.maximum(step, s0) - s0
    b, c, d = ops.locate(u)
    decaying = (d > 0) & (u >= b)
    value = ops.select(decaying, lambda: decay(u, b, c, d), lambda: 1.0)
    if plan.warmup_steps > 0:  # static: no warmup branch at all when W = 0
        stable_or_decay = value
        value = ops.select(u < plan.warmup_steps, lambda: warmup(u), lambda: stable_or_decay)
    return value


class ArrayBackend:
    """What the array backends share, given their array module ``xp`` (``jax.numpy`` or ``torch``):
    both branches evaluated and chosen with ``where``, and a square root that is safe under autograd.

    Subclasses build the period tables as their framework's arrays and add ``to_float`` and
    ``maximum``, which differ between the frameworks. The core imports neither framework: the module
    is passed in.
    """

    def __init__(self, xp: Any, inner_ends: Any, tables: tuple[Any, Any, Any]) -> None:
        self._xp = xp
        self._inner_ends = inner_ends  # c_1 .. c_{K-1}
        self._tables = tables  # b_i, c_i, d_i for every period

    def locate(self, u: Any) -> tuple[Any, Any, Any]:
        """A value constant over each period is its first period's value plus the steps
        ``[u >= c_j] * (t_{j+1} - t_j)`` at the inner ends: one broadcast comparison and a sum, with
        no gather (slow on CPU, longer compiles), no branch per period and no host synchronisation."""
        if self._inner_ends.shape[0] == 0:  # one period: no lookup at all
            b, c, d = (t[0] for t in self._tables)
            return b, c, d
        past = u[..., None] >= self._inner_ends  # (..., K - 1) booleans
        b, c, d = (t[0] + self._xp.sum(past * (t[1:] - t[:-1]), axis=-1) for t in self._tables)
        return b, c, d

    def select(self, cond: Any, if_true: Callable[[], Any], if_false: Callable[[], Any]) -> Any:
        return self._xp.where(cond, if_true(), if_false())

    def clip(self, x: Any, low: float, high: float) -> Any:
        return self._xp.clip(x, low, high)

    def sqrt(self, x: Any) -> Any:
        # The double where keeps the discarded branch's gradient finite: d sqrt(x)/dx is inf at 0,
        # and 0 * inf in the unselected branch would make jax.grad (or torch autograd) NaN.
        xp, positive = self._xp, x > 0
        return xp.where(positive, xp.sqrt(xp.where(positive, x, 1.0)), 0.0)

    def sin(self, x: Any) -> Any:
        return self._xp.sin(x)

    def expm1(self, x: Any) -> Any:
        return self._xp.expm1(x)

    def exp(self, x: Any) -> Any:
        return self._xp.exp(x)

    def divide(self, x: Any, y: Any) -> Any:
        return self._xp.divide(x, y)


class PythonBackend:
    """Plain Python numbers; evaluates only the selected branch (a few microseconds a call)."""

    def __init__(self, plan: Resolved) -> None:
        self._ends = plan.ends
        self._inner_ends = plan.ends[:-1]
        self._starts = plan.decay_starts
        self._lengths = plan.decay_lengths

    def locate(self, u: Any) -> tuple[Any, Any, Any]:
        i = bisect.bisect_right(self._inner_ends, u)
        return self._starts[i], self._ends[i], self._lengths[i]

    # Builtins as class attributes (not methods: no binding, no Python frame): this backend runs once
    # per LambdaLR step, where each call's overhead shows.
    to_float = staticmethod(float)
    sqrt = staticmethod(math.sqrt)
    sin = staticmethod(math.sin)
    expm1 = staticmethod(math.expm1)
    exp = staticmethod(math.exp)
    divide = staticmethod(operator.truediv)

    @staticmethod
    def select(cond: Any, if_true: Callable[[], Any], if_false: Callable[[], Any]) -> Any:
        return if_true() if cond else if_false()

    @staticmethod
    def maximum(x: Any, y: Any) -> Any:
        return x if x >= y else y

    @staticmethod
    def clip(x: Any, low: float, high: float) -> Any:
        return low if x < low else high if x > high else x
