"""``wsd_schedule``: the contract's multiplier as a jittable ``optax`` schedule."""

from __future__ import annotations

import dataclasses
import numbers
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from wsd_core import WSDSpec
from wsd_core._formula import ArrayBackend, Resolved, evaluate
from wsd_core._spec import spec_from_args
from wsd_core._validation import check_real, is_bool

_INT32_MAX = int(np.iinfo(np.int32).max)


class _JaxBackend(ArrayBackend):
    """``wsd_core.Backend`` on ``jax.numpy`` (period lookup, branch selection and sqrt from
    ``ArrayBackend``); the period tables become constants of the traced program."""

    def __init__(self, plan: Resolved, table_dtype: Any, float_dtype: Any) -> None:
        as_table = lambda xs: jnp.asarray(np.asarray(xs), dtype=table_dtype)
        tables = (as_table(plan.decay_starts), as_table(plan.ends), as_table(plan.decay_lengths))
        super().__init__(jnp, as_table(plan.ends[:-1]), tables)
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
        plan = self.spec.resolved()
        lo, hi = plan.count_range
        if not isinstance(count, jax.Array):  # a Python or numpy count: clamp before jax narrows it
            host = np.asarray(count)
            if host.dtype.kind in "iu":
                host = np.clip(host, min(lo, np.iinfo(host.dtype).max), min(hi, np.iinfo(host.dtype).max))
            count = jnp.asarray(host)
        dtype = count.dtype
        if dtype == jnp.bool_ or not (
            jnp.issubdtype(dtype, jnp.integer) or jnp.issubdtype(dtype, jnp.floating)
        ):
            raise TypeError(f"count must be an integer or real step, got dtype {dtype}")
        # Computed in at least float32: float16 cannot hold step differences past 65504, and bfloat16
        # counts only 256 steps exactly. The result is cast to the requested dtype at the end.
        compute = jnp.promote_types(self.dtype, jnp.float32)
        x64 = bool(jax.config.read("jax_enable_x64"))
        if jnp.issubdtype(dtype, jnp.floating):
            count = count.astype(jnp.promote_types(dtype, compute))
            ops = _JaxBackend(plan, count.dtype, compute)
        else:
            # Every count outside [s0, s0 + T] evaluates like the nearer end, so clamping in the
            # count's own type is exact; the table type then holds every value (int32 is optax's
            # count; int64 where x64 is on and a bound or the count needs it).
            info = jnp.iinfo(dtype)
            count = jnp.clip(count, min(lo, info.max), min(hi, info.max))
            wide = x64 and (dtype.itemsize == 8 or hi > _INT32_MAX)
            table = jnp.int64 if wide else jnp.int32
            if hi > _INT32_MAX and not wide:
                raise ValueError(
                    f"this schedule ends at step {hi}, past int32; enable jax_enable_x64 to evaluate it"
                )
            count = count.astype(table)
            ops = _JaxBackend(plan, table, compute)
        m = evaluate(count, plan, ops)
        rate = jnp.asarray(self.peak_value, compute) * m
        if jnp.issubdtype(count.dtype, jnp.floating):
            rate = jnp.where(jnp.isnan(count), jnp.nan, rate)  # a NaN step is no step: NaN, not a rate
        return rate.astype(self.dtype)


def wsd_schedule(
    peak_value: float, *, spec: WSDSpec | None = None, dtype: Any = jnp.float32, **fields: Any
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
    spec = spec_from_args(spec, fields)
    peak = _check_peak(peak_value)
    dtype = _check_dtype(dtype)
    if not jax.config.read("jax_enable_x64") and spec.end_step > _INT32_MAX:
        raise ValueError(
            f"start_step + total_steps = {spec.end_step} must fit optax's int32 count "
            f"(<= {_INT32_MAX}); enable jax_enable_x64 and count in int64 for longer runs"
        )
    return WSDSchedule(spec=spec, peak_value=peak, dtype=dtype)


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
