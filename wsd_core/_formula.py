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
import functools
import math
import operator
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

_HALF_PI = math.pi / 2.0
_LN2 = math.log(2.0)


class Backend(Protocol):
    """What ``evaluate`` needs from a numeric backend beyond Python's arithmetic operators."""

    def locate(self, u: Any) -> Period:
        """The ``Period`` values of the period that local step ``u`` falls in."""
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

    def log1p(self, x: Any) -> Any: ...

    def power(self, x: Any, exponent: float) -> Any:
        """``x ** exponent`` for ``x >= 0`` and ``exponent > 0``, with a finite gradient at 0."""
        ...

    def divide(self, x: Any, y: Any) -> Any:
        """``x / y``, correctly rounded also where ``x`` is a Python number and ``y`` an array
        (torch computes ``number / tensor`` as ``tensor.reciprocal() * number``, off by an ulp)."""
        ...


# --- shapes -----------------------------------------------------------------------------------
# Decay shapes take progress p, its complement q = 1 - p (formed independently, see above), the floor
# r (a Python float), the value P the decay starts from (the period's peak, or where a power stable
# phase has come to: a Python float, or an array where it differs between periods), ln(r / P) (used
# by "geometric" alone) and the plan (whose ``decay_power`` "polynomial" reads); each has g(p=0) = P
# and g(p=1) = r. A decay from P to r is P times the shape from 1 to r / P; each is written so that
# P = 1.0 (a Python float) gives the very same operations as a single peak. Warmup shapes take
# progress p and its complement q and return the fraction risen w(p) and the fraction left 1 - w(p),
# each written without cancellation; w(0) = 0, w(1) = 1.

DecayShape = Callable[[Any, Any, float, Any, Any, "Resolved", Backend], Any]
WarmupShape = Callable[[Any, Any, Backend], tuple[Any, Any]]


def _scaled(peak: Any, x: Any) -> Any:
    # peak * x, with no operation at all for the default peak of 1 (exact either way)
    return x if peak.__class__ is float and peak == 1.0 else peak * x


def _decay_linear(p: Any, q: Any, r: float, peak: Any, log_ratio: Any, plan: Resolved, ops: Backend) -> Any:
    # P - (P - r) p
    return r + (peak - r) * q


def _decay_cosine(p: Any, q: Any, r: float, peak: Any, log_ratio: Any, plan: Resolved, ops: Backend) -> Any:
    # r + (P - r) (1 + cos(pi p)) / 2
    s = ops.sin(_HALF_PI * q)
    return r + (peak - r) * (s * s)


def _decay_one_minus_sqrt(
    p: Any, q: Any, r: float, peak: Any, log_ratio: Any, plan: Resolved, ops: Backend
) -> Any:
    # r + (P - r) (1 - sqrt(p))
    return r + (peak - r) * (q / (1.0 + ops.sqrt(p)))


def _decay_inverse(p: Any, q: Any, r: float, peak: Any, log_ratio: Any, plan: Resolved, ops: Backend) -> Any:
    # 1 / (p / r + (1 - p) / P) == P r / (r + p (P - r)), with P - r taken in float64 here for a
    # single peak. The denominator only grows with p, so every rounding step is monotone and so is m
    # (r / (p + r q) is not: with p and q rounded independently it can rise by an ulp when r is near
    # 1). There is no division by r: a tiny r (1e-40) is 0 once float32 flushes subnormals (XLA does)
    # or rounds below them (torch, 1e-46), and p / r would be 0/0 = NaN. The denominator is 0 only
    # where p = 0 and r became 0; m = P there, as for every shape at p = 0, and adding the boolean
    # keeps the discarded quotient finite (no NaN gradient either).
    den = r + p * (peak - r)
    zero = den == 0
    return ops.select(zero, lambda: peak, lambda: ops.divide(_scaled(peak, r), den + zero))


def _decay_exponential(
    p: Any, q: Any, r: float, peak: Any, log_ratio: Any, plan: Resolved, ops: Backend
) -> Any:
    # r + (P - r) (2 * 0.5**p - 1)
    return r + (peak - r) * ops.expm1(_LN2 * q)


def _decay_geometric(
    p: Any, q: Any, r: float, peak: Any, log_ratio: Any, plan: Resolved, ops: Backend
) -> Any:
    # P (r / P) ** p = P exp(p ln(r / P)), with ln(r / P) taken in float64 (``Resolved``): r itself may
    # be below what float32 can hold (1e-40 flushes to 0 under XLA), its logarithm never is. The
    # exponent is <= 0, so exp cannot overflow; the end of the decay (q = 0) is r exactly rather than
    # exp(ln r) rounded.
    return ops.select(q == 0, lambda: r, lambda: _scaled(peak, ops.exp(p * log_ratio)))


def _decay_polynomial(
    p: Any, q: Any, r: float, peak: Any, log_ratio: Any, plan: Resolved, ops: Backend
) -> Any:
    # r + (P - r) (1 - p) ** k (optax's polynomial_schedule, levanter's "polynomial"; k = 1 is linear)
    return r + (peak - r) * ops.power(q, plan.decay_power)


def _warmup_linear(p: Any, q: Any, ops: Backend) -> tuple[Any, Any]:
    return p, q


def _warmup_cosine(p: Any, q: Any, ops: Backend) -> tuple[Any, Any]:
    # (1 - cos(pi p)) / 2, and 1 - that = (1 - cos(pi q)) / 2
    s, c = ops.sin(_HALF_PI * p), ops.sin(_HALF_PI * q)
    return s * s, c * c


def _warmup_one_minus_sqrt(p: Any, q: Any, ops: Backend) -> tuple[Any, Any]:
    # 1 - sqrt(1 - p) == p / (1 + sqrt(q)) (transformers' warmup_type="1-sqrt"), and 1 - that = sqrt(q)
    root = ops.sqrt(q)
    return p / (1.0 + root), root


DECAY_SHAPES: dict[str, DecayShape] = {
    "linear": _decay_linear,
    "cosine": _decay_cosine,
    "1-sqrt": _decay_one_minus_sqrt,
    "inverse": _decay_inverse,
    "exponential": _decay_exponential,
    "geometric": _decay_geometric,
    "polynomial": _decay_polynomial,
}

WARMUP_SHAPES: dict[str, WarmupShape] = {
    "linear": _warmup_linear,
    "cosine": _warmup_cosine,
    "1-sqrt": _warmup_one_minus_sqrt,
}


class Period(NamedTuple):
    """What ``evaluate`` reads of the period a step falls in (local steps): its first step
    ``c_{i-1}``, its first decayed step ``b_i``, its end ``c_i``, its decay length ``d_i``, its peak
    ``P_i``, the value its rewarmup rises from (the previous period's last value) and to (the stable
    value where the rewarmup ends), the value its decay starts from (P_i, or where a power stable phase
    has come to at ``b_i``) and ln(r / that).
    Array backends hold a value that differs between periods as an array and one that does not as a
    Python number, so a single-peak spec traces the same program as before peaks existed."""

    start: Any
    decay_start: Any
    end: Any
    decay_length: Any
    peak: Any
    rise_from: Any
    rise_to: Any
    decay_from: Any
    log_ratio: Any


# Period values an array backend always looks up as integer tables (the phase tests compare them).
INTEGER_COLUMNS = ("decay_start", "end", "decay_length")


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
    peaks: tuple[float, ...] = ()  # P_i; empty: 1.0 in every period
    rewarmup_steps: int = 0  # N: the first N updates of every period after the first rise to its peak
    rewarmup_shape: str = "linear"
    stable_power: float = 0.0  # b: the stable phase is P_i ((u - W) / tau + 1) ** b (0: constant)
    stable_scale: int = 1  # tau
    decay_power: float = 1.0  # k of the "polynomial" decay shape
    # the batch rate rule: (local u from which, the factor (batch / first batch) ** e) at each ramp step
    rate_changes: tuple[tuple[int, float], ...] = ()

    def rate_factor(self, u: float) -> float:
        """The batch rule's factor at local step u (1 without one), in float64."""
        factor = 1.0
        for since, value in self.rate_changes:
            if u >= since:
                factor = value
        return factor

    def stable_factor(self, u: int) -> float:
        """s(u) = ((min(max(u, W), T) - W) / tau + 1) ** b, in float64: the stable phase's value at
        local step u relative to its peak (1 for a constant stable phase)."""
        if self.stable_power == 0.0:
            return 1.0
        x = (min(max(u, self.warmup_steps), self.ends[-1]) - self.warmup_steps) / self.stable_scale
        return math.exp(self.stable_power * math.log1p(x))

    @property
    def count_range(self) -> tuple[int, int]:
        """(s0, s0 + T): a count below s0 evaluates as s0 and one above s0 + T as s0 + T, so a backend
        may clamp an integer count into this range, exactly, before narrowing its type."""
        return self.start_step, self.start_step + self.ends[-1]

    @property
    def period_peaks(self) -> tuple[float, ...]:
        return self.peaks or (1.0,) * len(self.ends)

    @property
    def first_peak(self) -> float:
        """P_1, the value the warmup rises to."""
        return self.period_peaks[0]

    @property
    def floor(self) -> float:
        """The smallest value m can take: min(init_ratio, min_ratio) (init_ratio only with warmup), or
        lower where a power stable phase comes below them before a decay starts or the run ends."""
        low = min(self.init_ratio, self.min_ratio) if self.warmup_steps > 0 else self.min_ratio
        if self.stable_power != 0.0:
            last = self.period_peaks[-1] * self.stable_factor(self.ends[-1])
            low = min(low, last, *self.period_columns()["decay_from"])
        return low

    @property
    def ceiling(self) -> float:
        """The largest value m can take: the highest peak (or init_ratio, with a warmup, if higher)."""
        top = max(self.period_peaks)
        return max(top, self.init_ratio) if self.warmup_steps > 0 else top

    @property
    def rewarms(self) -> bool:
        """Whether any period rewarms (N > 0 and more than one period): static for the backends."""
        return self.rewarmup_steps > 0 and len(self.ends) > 1

    def period_columns(self) -> dict[str, tuple[Any, ...]]:
        """Every ``Period`` field as a tuple over the periods."""
        peaks, r, s = self.period_peaks, self.min_ratio, self.stable_factor
        starts = (0, *self.ends[:-1])
        # A decay starts from the stable value at its first step b_i (the peak, for a constant phase).
        decay_from = tuple(peak * s(b) for peak, b in zip(peaks, self.decay_starts, strict=True))
        # A rewarmup rises from where the previous period ended (the floor, or its stable value if it
        # did not decay) to the stable value where it ends. The first period has no rewarmup (its
        # warmup rises from init_ratio).
        ended = [
            r if d > 0 else peak * s(end)
            for d, peak, end in zip(self.decay_lengths[:-1], peaks[:-1], self.ends[:-1], strict=True)
        ]
        rise_to = tuple(peak * s(a + self.rewarmup_steps) for peak, a in zip(peaks, starts, strict=True))
        if self.decay_shape == "geometric":  # r > 0 there
            log_ratio = tuple(math.log(r) - math.log(top) for top in decay_from)
        else:
            log_ratio = (0.0,) * len(peaks)
        return {
            "start": starts,
            "decay_start": self.decay_starts,
            "end": self.ends,
            "decay_length": self.decay_lengths,
            "peak": peaks,
            "rise_from": (r, *ended),
            "rise_to": rise_to,
            "decay_from": decay_from,
            "log_ratio": log_ratio,
        }

    def varying_columns(self) -> tuple[dict[str, tuple[Any, ...]], dict[str, Any]]:
        """(tables, constants) for an array backend: the integer columns, the period starts where a
        rewarmup reads them, and every other value that differs between periods, are tables; the
        rest are Python constants (its value in the first period)."""
        tables, constants = {}, {}
        for name, column in self.period_columns().items():
            needed = name in INTEGER_COLUMNS or (name == "start" and self.rewarms)
            if needed or (name != "start" and len(set(column)) > 1):
                tables[name] = column
            else:
                constants[name] = column[0]
        return tables, constants


def decay_value(u: Any, period: Period, plan: Resolved, ops: Backend) -> Any:
    """g(p) at local step ``u`` of the decay of ``period``: p and q each from an integer difference,
    clipped to [0, 1]; from the period's peak to the floor."""
    b, c, d = period.decay_start, period.end, period.decay_length
    width = ops.to_float(ops.maximum(d, 1))
    p = ops.clip(ops.to_float(u - b) / width, 0.0, 1.0)
    q = ops.clip(ops.to_float(c - u) / width, 0.0, 1.0)
    return DECAY_SHAPES[plan.decay_shape](
        p, q, plan.min_ratio, period.decay_from, period.log_ratio, plan, ops
    )


def stable_value(u: Any, period: Period, plan: Resolved, ops: Backend) -> Any:
    """P_i s(u) at local step ``u`` of a stable phase: the peak, or P_i ((u - W) / tau + 1) ** b with
    u held in [W, T] (so that no branch ``where`` discards can overflow), as exp(b log1p(x)) with x
    formed from an integer difference; b <= 0, so the exponent is <= 0."""
    if plan.stable_power == 0.0:  # static: a constant stable phase is its peak, as before
        return period.peak
    held = ops.maximum(u, plan.warmup_steps)
    held = held - ops.maximum(held - plan.ends[-1], 0)  # min(held, T) with the ops every backend has
    x = ops.to_float(held - plan.warmup_steps) / float(plan.stable_scale)
    return _scaled(period.peak, ops.exp(plan.stable_power * ops.log1p(x)))


def _rise(start: Any, target: Any, j: Any, length: int, shape: str, ops: Backend) -> Any:
    """start + (target - start) w(j / length), with every term >= 0: written from the start when it
    rises and from the target (with the shape's own 1 - w(p)) when it falls, so that a value near a
    small target keeps its relative precision. p and 1 - p are each formed from an integer difference."""
    p = lambda: ops.clip(ops.to_float(j) / length, 0.0, 1.0)
    q = lambda: ops.clip(ops.to_float(length - j) / length, 0.0, 1.0)
    shape_of = WARMUP_SHAPES[shape]
    rise = lambda: start + (target - start) * shape_of(p(), q(), ops)[0]
    fall = lambda: target + (start - target) * shape_of(p(), q(), ops)[1]
    if start.__class__ is float and target.__class__ is float:  # static: one form
        return rise() if start <= target else fall()
    return ops.select(start <= target, rise, fall)


def warmup_value(u: Any, plan: Resolved, ops: Backend) -> Any:
    """a + (P_1 - a) w(u / W) at local step ``u`` of the warmup (W > 0)."""
    return _rise(plan.init_ratio, plan.first_peak, u, plan.warmup_steps, plan.warmup_shape, ops)


def rewarmup_value(u: Any, period: Period, plan: Resolved, ops: Backend) -> Any:
    """e + (P_i - e) w(j / N) at the j-th update of a later period (j = u - c_{i-1} < N), rising from
    the previous period's last value e (the floor, or its stable value if it did not decay) to the
    stable value where the rewarmup ends (P_i for a constant stable phase)."""
    j = u - period.start
    return _rise(period.rise_from, period.rise_to, j, plan.rewarmup_steps, plan.rewarmup_shape, ops)


def evaluate(step: Any, plan: Resolved, ops: Backend) -> Any:
    """The contract's m(step) on any backend; ``step`` is the optimizer's update count."""
    m = _by_phase(
        step,
        plan,
        ops,
        decay=lambda u, period: decay_value(u, period, plan, ops),
        rewarmup=lambda u, period: rewarmup_value(u, period, plan, ops),
        warmup=lambda u: warmup_value(u, plan, ops),
        stable=lambda u, period: stable_value(u, period, plan, ops),
    )
    m = ops.clip(m, plan.floor, plan.ceiling)
    if not plan.rate_changes:  # static: no batch rule, no factor
        return m
    u = ops.maximum(step, plan.start_step) - plan.start_step
    u = u - ops.maximum(u - plan.ends[-1], 0)  # held at T: past the end the rate is constant
    return m * batch_factor(u, plan, ops)


def batch_factor(u: Any, plan: Resolved, ops: Backend) -> Any:
    """The batch rule's factor at local step ``u``: ``(batch / first batch) ** e`` of the ramp step
    the units ``u`` fall in, chosen by integer comparisons among values taken in float64."""
    factor: Any = 1.0
    for since, value in plan.rate_changes:
        factor = ops.select(
            u >= since, functools.partial(_constant, value), functools.partial(_constant, factor)
        )
    return factor


def _constant(value: Any) -> Any:
    return value


def stable_fraction(step: Any, plan: Resolved, ops: Backend) -> Any:
    """h(step) of the contract's companion hyperparameters: 1 where the rate is at its peak or warming
    up to it (or in a power stable phase), 0 where a decay reaches the floor, and in between where the
    rate stands between the floor and the value the decay starts from or the rewarmup rises to,
    ``(m - r) / (top - r)`` (in a decay, the shape's own progress; in a rewarmup, the rise). A
    companion value is ``cooled + (stable - cooled) * h``. Where that top is the floor nothing moves:
    h = 1."""
    r = plan.min_ratio

    def between(value: Any, top: Any) -> Any:
        span = top - r
        if span.__class__ is float:  # static: one peak for every period
            return (value - r) / span if span > 0 else 1.0
        flat = span <= 0
        return ops.select(flat, lambda: 1.0, lambda: (value - r) / (span + flat))

    h = _by_phase(
        step,
        plan,
        ops,
        decay=lambda u, period: between(decay_value(u, period, plan, ops), period.decay_from),
        rewarmup=lambda u, period: between(rewarmup_value(u, period, plan, ops), period.rise_to),
        warmup=lambda u: 1.0,  # the warmup counts as the peak: nothing has cooled yet
        stable=lambda u, period: 1.0,
    )
    return ops.clip(h, 0.0, 1.0)


def _by_phase(
    step: Any,
    plan: Resolved,
    ops: Backend,
    *,
    decay: Callable[[Any, Period], Any],
    rewarmup: Callable[[Any, Period], Any],
    warmup: Callable[[Any], Any],
    stable: Callable[[Any, Period], Any],
) -> Any:
    """The contract's pieces at update count ``step``: ``warmup(u)`` where u < W, ``rewarmup(u, period)``
    in the first N updates of a later period, ``decay(u, period)`` in a period's decay and
    ``stable(period)`` elsewhere. A warmup or rewarmup wins where it overlaps a decay."""
    s0 = plan.start_step
    # u = max(s - s0, 0), written so that no intermediate can overflow a fixed-width integer.
    u = ops.maximum(step, s0) - s0
    period = ops.locate(u)
    decaying = (period.decay_length > 0) & (u >= period.decay_start)
    value = ops.select(decaying, lambda: decay(u, period), lambda: stable(u, period))
    if plan.rewarms:  # static: no rewarmup branch at all without one
        rising = (period.start > 0) & (u - period.start < plan.rewarmup_steps)
        settled = value
        value = ops.select(rising, lambda: rewarmup(u, period), lambda: settled)
    if plan.warmup_steps > 0:  # static: no warmup branch at all when W = 0
        stable_or_decay = value
        value = ops.select(u < plan.warmup_steps, lambda: warmup(u), lambda: stable_or_decay)
    return value


class ArrayBackend:
    """What the array backends share, given their array module ``xp`` (``jax.numpy``, ``torch`` or
    ``numpy``): the period lookup, both branches evaluated and chosen with ``where``, and a square
    root that is safe under autograd.

    Subclasses pass converters that build the period tables as their framework's arrays (integers
    for the phase tests, floats in the compute type for peaks), and add ``to_float`` and ``maximum``,
    which differ between the frameworks. The core imports neither framework: the module is passed in.
    """

    def __init__(
        self,
        xp: Any,
        plan: Resolved,
        int_table: Callable[[tuple[Any, ...]], Any],
        float_table: Callable[[tuple[Any, ...]], Any],
    ) -> None:
        self._xp = xp
        self._inner_ends = int_table(plan.ends[:-1])  # c_1 .. c_{K-1}
        tables, self._constants = plan.varying_columns()
        self._tables = {
            name: (int_table if name in INTEGER_COLUMNS or name == "start" else float_table)(column)
            for name, column in tables.items()
        }
        floats = tables.keys() - {*INTEGER_COLUMNS, "start"}
        self._periods = int_table(tuple(range(len(plan.ends)))) if floats else None

    def locate(self, u: Any) -> Period:
        """A period's integer values are its first period's value plus the steps
        ``[u >= c_j] * (t_{j+1} - t_j)`` at the inner ends: one broadcast comparison and a sum, with
        no gather (slow on CPU, longer compiles), no branch per period and no host synchronisation.
        Float values (peaks) are picked by a one-hot sum instead, which adds exact zeros and so
        returns each period's value unrounded."""
        values = dict(self._constants)
        if self._inner_ends.shape[0] == 0:  # one period: no lookup at all
            values.update((name, t[0]) for name, t in self._tables.items())
            return Period(**values)
        past = u[..., None] >= self._inner_ends  # (..., K - 1) booleans
        for name, t in self._tables.items():
            if name in INTEGER_COLUMNS or name == "start":
                values[name] = t[0] + self._xp.sum(past * (t[1:] - t[:-1]), axis=-1)
        if self._periods is not None:
            index = self._xp.sum(past, axis=-1)
            one_hot = index[..., None] == self._periods
            for name, t in self._tables.items():
                if name not in values:
                    values[name] = self._xp.sum(self._xp.where(one_hot, t, 0.0), axis=-1)
        return Period(**values)

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

    def log1p(self, x: Any) -> Any:
        return self._xp.log1p(x)

    def power(self, x: Any, exponent: float) -> Any:
        # where-guarded as sqrt is: the derivative of x ** k (k < 1) is inf at 0
        xp, positive = self._xp, x > 0
        return xp.where(positive, xp.where(positive, x, 1.0) ** exponent, 0.0)

    def divide(self, x: Any, y: Any) -> Any:
        return self._xp.divide(x, y)


class PythonBackend:
    """Plain Python numbers; evaluates only the selected branch (a few microseconds a call)."""

    def __init__(self, plan: Resolved) -> None:
        self._inner_ends = plan.ends[:-1]
        columns = plan.period_columns()
        self._periods = [Period(*values) for values in zip(*columns.values(), strict=True)]

    def locate(self, u: Any) -> Period:
        return self._periods[bisect.bisect_right(self._inner_ends, u)]

    def period(self, index: int) -> Period:
        return self._periods[index]

    # Builtins as class attributes (not methods: no binding, no Python frame): this backend runs once
    # per LambdaLR step, where each call's overhead shows.
    to_float = staticmethod(float)
    sqrt = staticmethod(math.sqrt)
    sin = staticmethod(math.sin)
    expm1 = staticmethod(math.expm1)
    exp = staticmethod(math.exp)
    log1p = staticmethod(math.log1p)
    divide = staticmethod(operator.truediv)

    @staticmethod
    def power(x: Any, exponent: float) -> Any:
        return x**exponent

    @staticmethod
    def select(cond: Any, if_true: Callable[[], Any], if_false: Callable[[], Any]) -> Any:
        return if_true() if cond else if_false()

    @staticmethod
    def maximum(x: Any, y: Any) -> Any:
        return x if x >= y else y

    @staticmethod
    def clip(x: Any, low: float, high: float) -> Any:
        return low if x < low else high if x > high else x
