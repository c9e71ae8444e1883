"""``wsd_schedule``: the contract's multiplier as a jittable ``optax`` schedule."""

from __future__ import annotations

import dataclasses
import numbers
from typing import Any, Unpack

import jax
import jax.numpy as jnp
import numpy as np

from wsd_core import WSDFields, WSDSpec
from wsd_core.backend import (
    ArrayBackend,
    ArrayClock,
    Resolved,
    array_clock,
    check_real,
    evaluate,
    is_bool,
    resolve,
    spec_from_absolute,
    spec_from_args,
    stable_fraction,
    units_at,
)

_INT32_MAX = int(np.iinfo(np.int32).max)


class _JaxBackend(ArrayBackend):
    """``wsd_core.Backend`` on ``jax.numpy`` (period lookup, branch selection and sqrt from
    ``ArrayBackend``); the period tables become constants of the traced program."""

    def __init__(self, plan: Resolved, table_dtype: Any, float_dtype: Any) -> None:
        int_table = lambda xs: jnp.asarray(np.asarray(xs), dtype=table_dtype)
        # float64 values rounded once to the compute type (peaks are ratios, not counts)
        float_table = lambda xs: jnp.asarray(np.asarray(xs, dtype=np.float64), dtype=float_dtype)
        super().__init__(jnp, plan, int_table, float_table)
        self._float = float_dtype

    def to_float(self, x: Any) -> Any:
        return jnp.asarray(x).astype(self._float)

    def maximum(self, x: Any, y: Any) -> Any:
        return jnp.maximum(x, y)


@dataclasses.dataclass(frozen=True)
class WSDSchedule:
    """An ``optax.Schedule``: ``peak_value * m(count)`` for a ``WSDSpec``. Build it with ``wsd_schedule``.

    Callable on a scalar or an array of counts, traced or concrete. Integer counts use exact integer
    phase boundaries; a float count evaluates the same piecewise function on real numbers (this is what
    ``jax.grad`` with respect to the step sees).
    """

    spec: WSDSpec
    peak_value: Any  # a float, or a tracer when differentiating with respect to the peak
    dtype: Any = jnp.float32

    def __call__(self, count: Any) -> jax.Array:
        m, compute = _on_counts(self.spec, count, self.dtype, evaluate)
        return (jnp.asarray(self.peak_value, compute) * m).astype(self.dtype)


@dataclasses.dataclass(frozen=True)
class WSDCompanion:
    """An ``optax.Schedule`` for a hyperparameter that moves with the rate's cooldown (``beta2``,
    ``weight_decay``): ``cooled + (stable - cooled) * h(count)``. Build it with ``wsd_companion``."""

    spec: WSDSpec
    stable_value: float
    cooled_value: float
    dtype: Any = jnp.float32

    def __call__(self, count: Any) -> jax.Array:
        h, compute = _on_counts(self.spec, count, self.dtype, stable_fraction)
        stable, cooled = jnp.asarray(self.stable_value, compute), jnp.asarray(self.cooled_value, compute)
        return (cooled + (stable - cooled) * h).astype(self.dtype)


def _on_counts(spec: WSDSpec, count: Any, dtype: Any, formula: Any) -> tuple[jax.Array, Any]:
    """``formula(count, plan, ops)`` (the contract's m, or a companion's h) on jax counts: integer
    counts clamped exactly into the run and evaluated on integer boundaries, real counts on the real
    extension, a NaN count giving NaN. For a spec with a clock the formula reads the units consumed
    before the update, C(count), formed in the table's integer type after the clamp. Returns the
    value and the compute dtype."""
    plan = resolve(spec)
    clock = array_clock(spec, where="the schedule")
    lo, hi, ramp = clock.lo, clock.hi, clock.ramp
    if not isinstance(count, jax.Array):  # a Python or numpy count: clamp before jax narrows it
        host = np.asarray(count)
        if host.dtype.kind in "iu":
            host = np.clip(host, min(lo, np.iinfo(host.dtype).max), min(hi, np.iinfo(host.dtype).max))
        count = jnp.asarray(host)
    kind = count.dtype
    if kind == jnp.bool_ or not (jnp.issubdtype(kind, jnp.integer) or jnp.issubdtype(kind, jnp.floating)):
        raise TypeError(f"count must be an integer or real step, got dtype {kind}")
    # Computed in at least float32: float16 cannot hold step differences past 65504, and bfloat16
    # counts only 256 steps exactly. The result is cast to the requested dtype by the caller.
    compute = jnp.promote_types(dtype, jnp.float32)
    x64 = bool(jax.config.read("jax_enable_x64"))
    if jnp.issubdtype(kind, jnp.floating):
        count = count.astype(jnp.promote_types(kind, compute))
        ops = _JaxBackend(plan, count.dtype, compute)
        units = units_at(count if ramp is None else jnp.maximum(count, 0), ramp, ops)
    else:
        # Every count outside [s0, s0 + T] evaluates like the nearer end, so clamping in the
        # count's own type is exact; the table type then holds every value (int32 is optax's
        # count; int64 where x64 is on and a bound or the count needs it).
        info = jnp.iinfo(kind)
        count = jnp.clip(count, min(lo, info.max), min(hi, info.max))
        wide = x64 and (kind.itemsize == 8 or clock.largest > _INT32_MAX)
        table = jnp.int64 if wide else jnp.int32
        if clock.largest > _INT32_MAX and not wide:
            _refuse_int32(spec, clock)
        count = count.astype(table)
        ops = _JaxBackend(plan, table, compute)
        units = units_at(count, ramp, ops)
    value = jnp.asarray(formula(units, plan, ops), compute)
    if jnp.issubdtype(count.dtype, jnp.floating):
        value = jnp.where(jnp.isnan(count), jnp.nan, value)  # a NaN step is no step: NaN, not a value
    return value, compute


def wsd_schedule(
    peak_value: float,
    *,
    spec: WSDSpec | None = None,
    dtype: Any = jnp.float32,
    init_value: float | None = None,
    end_value: float | None = None,
    **fields: Unpack[WSDFields],
) -> WSDSchedule:
    """The WSD schedule of ``docs/contract.md`` as an ``optax.Schedule``.

    Args:
      peak_value: the learning rate of the stable phase (finite, >= 0). A traced value is accepted
        (e.g. ``jax.grad`` with respect to the peak) and checked only when it is concrete.
      spec: a ``WSDSpec``; or give its fields as keyword arguments instead (not both).
      dtype: the float type of the returned rate, ``float32`` by default whatever the parameters'
        dtype. The rate is a strongly typed array, so ``optax.inject_hyperparams`` keeps it in this
        dtype even for bf16 parameters; it does cast its *plain-float* hyperparameters (``b1``,
        ``b2``, ``weight_decay``, ...) to the parameters' dtype unless given
        ``hyperparam_dtype=jnp.float32``, which is what to pass when training in bf16.
      init_value: the rate the warmup starts from, as an absolute rate (optax's convention, as in
        ``optax.warmup_cosine_decay_schedule``): ``init_ratio = init_value / peak_value``.
      end_value: the floor the decays reach, as an absolute rate: ``min_ratio = end_value /
        peak_value``. Each is given instead of its ratio (both raise; with ``spec=``, the spec's
        ratio must be 0 or the same), and needs a concrete ``peak_value``.
      **fields: ``WSDSpec`` fields (``total_steps``, ``warmup_steps``, ``decay_steps``, ...).

    Returns:
      A ``WSDSchedule``, callable as ``schedule(count) -> peak_value * m(count)``: jittable,
      vmappable, shape-polymorphic (arrays of steps evaluate element-wise), never retraced per step.

    Examples:
      >>> import optax
      >>> schedule = wsd_schedule(3e-4, total_steps=10_000, warmup_steps=500, decay_ratio=0.2)
      >>> optimizer = optax.adamw(learning_rate=schedule, weight_decay=0.1)
      >>> float(schedule(5_000))
      0.0003000000142492354
    """
    peak = _check_peak(peak_value)
    absolute = {"init_value": init_value, "end_value": end_value}
    if any(value is not None for value in absolute.values()):
        if not isinstance(peak, float):
            given = ", ".join(name for name, value in absolute.items() if value is not None)
            raise TypeError(f"{given} need a concrete peak_value to become ratios of it, got a traced one")
        spec = spec_from_absolute(peak, absolute, spec=spec, fields=fields)
    else:
        spec = spec_from_args(spec, fields)
    dtype = _check_dtype(dtype)
    _check_fits_count(spec, where="wsd_schedule")
    return WSDSchedule(spec=spec, peak_value=peak, dtype=dtype)


def _refuse_int32(spec: WSDSpec, clock: ArrayClock) -> None:
    if clock.ramp is None:
        raise ValueError(
            f"start_step + total_steps = {spec.end_step} must fit optax's int32 count "
            f"(<= {_INT32_MAX}); enable jax_enable_x64 and count in int64 for longer runs"
        )
    raise ValueError(
        f"this run of {spec.end_step} {spec.units} (start_step + total_steps) is counted past int32 "
        f"(its clock, tokens_per_step={spec.tokens_per_step!r}, forms {clock.largest} > {_INT32_MAX} "
        f"by update {clock.hi}); enable jax_enable_x64 to count its {spec.units} exactly in int64"
    )


def _check_fits_count(spec: WSDSpec, *, where: str) -> None:
    """Refuses, at construction, a spec whose counts an int32 evaluation could not form exactly."""
    clock = array_clock(spec, where=where)
    if not jax.config.read("jax_enable_x64") and clock.largest > _INT32_MAX:
        _refuse_int32(spec, clock)


def wsd_companion(
    stable_value: float,
    cooled_value: float,
    *,
    spec: WSDSpec | None = None,
    dtype: Any = jnp.float32,
    **fields: Unpack[WSDFields],
) -> WSDCompanion:
    """An ``optax.Schedule`` for another hyperparameter that moves with the rate's cooldown.

    It is ``stable_value`` while the rate is at its peak (the warmup included), ``cooled_value`` where
    the rate reaches its floor, and in between follows the rate's own decay:
    ``cooled + (stable - cooled) * (m - r) / (1 - r)`` (``m`` the multiplier, ``r = min_ratio``).
    A higher ``b2`` during the cooldown helps consistently (Dremov et al., "Training Dynamics of the
    Cooldown Stage in Warmup-Stable-Decay Learning Rate Scheduler", TMLR 2025); Megatron-LM ramps
    weight decay. With ``min_ratio = 1`` nothing decays and the value stays ``stable_value``.

    Args:
      stable_value: the hyperparameter while the rate is at its peak (finite).
      cooled_value: the hyperparameter where the rate reaches its floor (finite).
      spec: the rate's ``WSDSpec`` (or its fields as keyword arguments).
      dtype: the float type of the returned value.

    Examples:
      >>> import optax
      >>> spec = WSDSpec(10_000, warmup_steps=500, decay_steps=2000, decay_shape="linear", min_ratio=0.0)
      >>> b2 = wsd_companion(0.95, 0.999, spec=spec)
      >>> lr = wsd_schedule(3e-4, spec=spec)
      >>> optimizer = optax.inject_hyperparams(optax.adamw)(learning_rate=lr, b2=b2)
      >>> [round(float(b2(t)), 4) for t in (0, 5000, 9000, 10_000)]
      [0.95, 0.95, 0.9745, 0.999]
    """
    spec = spec_from_args(spec, fields)
    stable = check_real("stable_value", stable_value)
    cooled = check_real("cooled_value", cooled_value)
    _check_fits_count(spec, where="wsd_companion")
    return WSDCompanion(spec=spec, stable_value=stable, cooled_value=cooled, dtype=_check_dtype(dtype))


def _check_peak(value: Any) -> Any:
    if is_bool(value):
        raise TypeError(f"peak_value must be a real number, got {value!r} (type {type(value).__name__})")
    if not isinstance(value, numbers.Real) and getattr(value, "shape", None) == ():
        try:
            value = float(value)  # a concrete 0-d array is checked like a number
        except jax.errors.ConcretizationTypeError:
            # A traced peak (jax.grad or vmap over the peak): its value is not known here.
            return value
    return check_real("peak_value", value, minimum=0.0)


def _check_dtype(dtype: Any) -> Any:
    try:
        dt = jnp.dtype(dtype)
    except TypeError as e:
        raise TypeError(f"dtype must be a floating dtype, got {dtype!r}") from e
    if not jnp.issubdtype(dt, jnp.floating):
        raise TypeError(f"dtype must be a floating dtype, got {dt}")
    if dt.itemsize == 8 and not jax.config.read("jax_enable_x64"):
        raise ValueError("dtype=float64 needs jax_enable_x64; without it jax computes in float32")
    return dt
