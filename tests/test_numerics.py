"""Numerics and odd inputs: one behaviour on every backend, exact or refused (integer steps of every
dtype, float steps, tiny floors, huge counts)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.backends import enable_x64
from tests.reference import reference_multiplier
from wsd_core import WSDSpec, presets

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")
torch = pytest.importorskip("torch")

from wsd_jax import wsd_schedule  # noqa: E402
from wsd_torch import WSDLR, WSDDeviceLR, multiplier_tensor  # noqa: E402

LONG = WSDSpec(100_000, warmup_steps=1000, decay_steps=70_000, decay_shape="linear")
STEPS = [*range(0, 100_001, 2500), 100_500]


def _want(spec, steps):
    return np.array([reference_multiplier(s, **spec.to_dict()) for s in steps])


# --- 7. half precision computes in float32 and casts ---------------------------------------------


@pytest.mark.parametrize("name", ["float16", "bfloat16"])
def test_half_precision_rates_are_the_float32_rates_rounded(name):
    want = _want(LONG, STEPS)
    half = np.dtype(getattr(jnp, name))
    rounded = want.astype(np.float32).astype(half).astype(np.float64)
    got_jax = np.asarray(wsd_schedule(1.0, spec=LONG, dtype=half)(jnp.asarray(STEPS)), np.float64)
    got_torch = multiplier_tensor(LONG, torch.tensor(STEPS), getattr(torch, name)).double().numpy()
    np.testing.assert_array_equal(got_jax, rounded)
    np.testing.assert_array_equal(got_torch, rounded)
    # float counts in a half dtype's schedule are not rounded to that dtype either
    got = np.asarray(wsd_schedule(1.0, spec=LONG, dtype=half)(jnp.asarray(STEPS, jnp.float32)), np.float64)
    np.testing.assert_array_equal(got, rounded)


def test_device_lr_in_float16_follows_the_schedule_past_65504_steps():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = WSDDeviceLR(opt, spec=LONG, dtype=torch.float16)
    state = sched.state_dict()
    state["last_epoch"] = 80_000
    sched.load_state_dict(state)
    want = np.float16(np.float32(reference_multiplier(80_000, **LONG.to_dict())))
    assert float(opt.param_groups[0]["lr"]) == float(want) and not math.isnan(want)


# --- 8. inverse with a tiny floor: no NaN, also under jax_debug_nans --------------------------------


def _check_tiny_floor(shape, r, rtol, atol):
    """Every backend, also under jax_debug_nans and jax.grad: finite, in [0, 1], 1 at p = 0, and the
    contract's values to ``rtol`` / ``atol``."""
    spec = WSDSpec(100, decay_steps=10, decay_shape=shape, min_ratio=r)
    steps = list(range(85, 102))
    want = _want(spec, steps)
    jax.config.update("jax_debug_nans", True)
    try:
        got_jax = np.asarray(jax.jit(wsd_schedule(1.0, spec=spec))(jnp.asarray(steps)), np.float64)
        grad = jax.grad(wsd_schedule(1.0, spec=spec))(92.0)
    finally:
        jax.config.update("jax_debug_nans", False)
    got_torch = multiplier_tensor(spec, torch.tensor(steps)).double().numpy()
    for got in (got_jax, got_torch, np.array([spec.multiplier(s) for s in steps])):
        assert np.isfinite(got).all() and (got >= 0).all() and (got <= 1).all()
        assert got[steps.index(90)] == 1.0  # p = 0: the decay starts at the peak
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)
    assert np.isfinite(float(grad))


@pytest.mark.parametrize("r", [1e-40, 1e-46, 5e-324])
def test_inverse_with_a_tiny_min_ratio_has_no_nan(r):
    # a float32 r this small is flushed or rounded away: the error is at most r * d
    _check_tiny_floor("inverse", r, rtol=1e-6, atol=max(r * 10, float(np.finfo(np.float32).tiny)))


# --- 9. integer counts: exact for every dtype ------------------------------------------------------


SHORT = WSDSpec(100, decay_steps=10, decay_shape="linear", min_ratio=0.25)


@pytest.mark.parametrize(
    "count",
    [
        jnp.asarray(2**31 + 5, jnp.uint32),
        jnp.asarray(2**32 - 1, jnp.uint32),
        np.int64(2**31 + 5),
        np.uint64(2**63 + 3),
        2**40,
        jnp.asarray(-5, jnp.int32),
        np.int8(-100),
        jnp.asarray(95, jnp.uint8),
    ],
    ids=["u32>2^31", "u32max", "np.i64>2^31", "np.u64>2^63", "py2^40", "i32neg", "i8neg", "u8"],
)
def test_every_integer_count_dtype_evaluates_exactly(count):
    step = int(np.asarray(count))
    want = reference_multiplier(step, **SHORT.to_dict())
    assert float(wsd_schedule(1.0, spec=SHORT)(count)) == pytest.approx(want, rel=1e-6)


def test_x64_long_runs_with_an_int32_count():
    with enable_x64():
        spec = WSDSpec(2**33, decay_steps=2**32, decay_shape="linear")
        sched = wsd_schedule(1.0, spec=spec)
        for count in (jnp.asarray(2**31 - 1, jnp.int32), jnp.asarray(2**33, jnp.int64), np.uint64(2**63 + 1)):
            step = int(np.asarray(count))
            assert float(sched(count)) == pytest.approx(
                reference_multiplier(step, **spec.to_dict()), rel=1e-6
            )


def test_torch_counts_exact_or_refused():
    for dtype in (torch.uint32, torch.int8, torch.uint8, torch.int16, torch.int32):
        steps = torch.tensor([0, 95, 100], dtype=dtype)
        got = multiplier_tensor(SHORT, steps).double().numpy()
        np.testing.assert_allclose(got, _want(SHORT, [0, 95, 100]), rtol=1e-6)
    big = torch.tensor([2**32 - 1], dtype=torch.uint32)
    assert float(multiplier_tensor(SHORT, big)) == 0.25
    with pytest.raises(TypeError, match="uint64"):
        multiplier_tensor(SHORT, torch.tensor([1], dtype=torch.uint64))


def test_bool_counts_are_refused():
    with pytest.raises(TypeError, match="count"):
        wsd_schedule(1.0, spec=SHORT)(jnp.asarray(True))
    with pytest.raises(TypeError, match="steps"):
        multiplier_tensor(SHORT, torch.tensor([True]))


# --- 10. quick errors naming the parameter -------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: WSDSpec(1000, checkpoints=10**6), ValueError, "K <= 10"),
        (lambda: WSDSpec(1000, checkpoints=10**8), ValueError, "K <= 10"),
        (lambda: WSDSpec(1000, checkpoints=2**63), ValueError, "K <= 10"),
        (lambda: presets.from_pytorch_accelerated(3, num_checkpoints=10**8, base_lr=1.0), ValueError, ">= 1"),
        (lambda: WSDSpec(10**400), ValueError, "total_steps"),
        (lambda: WSDSpec(10, warmup_steps=10**400), ValueError, "warmup_steps"),
        (lambda: WSDSpec(10, decay_steps=10**400), ValueError, "decay_steps"),
        (lambda: WSDSpec(10, start_step=10**400), ValueError, "start_step"),
        (lambda: WSDSpec(10, start_step=2**63 - 5), ValueError, "start_step \\+ total_steps"),
        (lambda: WSDSpec(10, min_ratio=10**400), ValueError, "min_ratio"),
        (lambda: WSDSpec(10, decay_ratio=10**400), ValueError, "decay_ratio"),
        (lambda: WSDSpec(10, init_ratio=-(10**400)), ValueError, "init_ratio"),
        (lambda: WSDSpec(10, checkpoints=[5, 10**400]), ValueError, "checkpoints"),
        (lambda: WSDDeviceLR(_opt(), total_steps=10, dtype="float32"), TypeError, "dtype"),  # type: ignore[arg-type]
        (lambda: multiplier_tensor(SHORT, torch.arange(3), dtype=np.float32), TypeError, "dtype"),  # type: ignore[arg-type]
        (lambda: WSDLR(None, total_steps=10), TypeError, "Optimizer"),  # type: ignore[arg-type]
        (lambda: WSDDeviceLR(None, total_steps=10), TypeError, "Optimizer"),  # type: ignore[arg-type]
    ],
)
def test_bad_sizes_and_types_fail_fast_naming_the_parameter(make, error, match):
    import time

    start = time.perf_counter()
    with pytest.raises(error, match=match):
        make()
    assert time.perf_counter() - start < 1.0


def _opt():
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)


# --- 11. NaN and bool steps: one behaviour everywhere ---------------------------------------------


def test_nan_step_is_nan_on_arrays_and_refused_on_python():
    spec = WSDSpec(100, decay_steps=10, min_ratio=0.3)
    with pytest.raises(ValueError, match="NaN"):
        spec.multiplier(float("nan"))
    assert math.isnan(float(wsd_schedule(1.0, spec=spec)(jnp.nan)))
    assert math.isnan(float(multiplier_tensor(spec, torch.tensor([float("nan")]))[0]))
    # +-inf are the schedule's limits everywhere
    for step, want in ((math.inf, 0.3), (-math.inf, 1.0)):
        assert spec.multiplier(step) == want
        assert float(wsd_schedule(1.0, spec=spec)(step)) == pytest.approx(want)
        assert float(multiplier_tensor(spec, torch.tensor([step]))[0]) == pytest.approx(want)


@pytest.mark.parametrize("value", [True, np.bool_(True), np.asarray(True)])
def test_bools_are_not_steps_or_peaks(value):
    spec = WSDSpec(100)
    with pytest.raises(TypeError):
        spec.multiplier(value)
    with pytest.raises(TypeError):
        spec.phase(value)
    with pytest.raises(TypeError, match="peak_value"):
        wsd_schedule(value, spec=spec)


# --- 9. shapes with a floor near 1 or far below float32: monotone, no NaN ---------------------------


@pytest.mark.parametrize("shape", ["inverse", "geometric"])
def test_decay_near_a_floor_of_one_never_rises(shape):
    # r = 1 - 2**-53: the decay moves m by less than an ulp of 1, so rounding decides every step.
    # inverse was once r / (p + r q), with p and q rounded apart, and rose by an ulp (hypothesis found it).
    spec = WSDSpec(50, decay_steps=45, decay_shape=shape, min_ratio=0.9999999999999999)
    steps = list(range(0, 52))
    for got in (
        np.array([spec.multiplier(s) for s in steps]),
        multiplier_tensor(spec, torch.tensor(steps), torch.float64).numpy(),
    ):
        assert (np.diff(got) <= 0).all(), got
        assert got[0] == 1.0 and got[-1] == 0.9999999999999999


@pytest.mark.parametrize("r", [1e-40, 1e-100, 5e-324])
def test_geometric_with_a_tiny_min_ratio_has_no_nan(r):
    # float32 flushes what it cannot hold: the error is then at most the smallest normal float32
    _check_tiny_floor("geometric", r, rtol=1e-5, atol=float(np.finfo(np.float32).tiny))
