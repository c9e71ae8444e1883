"""wsd_jax.wsd_schedule as an optax schedule: jit, vmap, grad, optimizers, dtypes and errors."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from tests.backends import enable_x64, jax_gpu_available
from tests.reference import reference_multiplier
from wsd_jax import WSDSchedule, WSDSpec, learning_rate_from_state, wsd_schedule

FIELDS: dict[str, Any] = dict(
    total_steps=1000,
    warmup_steps=100,
    decay_steps=150,
    checkpoints=[400, 1000],
    decay_shape="1-sqrt",
    init_ratio=0.05,
    min_ratio=0.01,
)
PEAK = 3e-4


@pytest.fixture
def schedule() -> WSDSchedule:
    return wsd_schedule(PEAK, **FIELDS)


def test_returns_peak_times_multiplier(schedule):
    steps = [0, 50, 100, 249, 250, 300, 399, 400, 849, 850, 999, 1000, 10**6]
    got = np.asarray(schedule(jnp.asarray(steps)))
    want = np.array([PEAK * reference_multiplier(s, **FIELDS) for s in steps])
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_jit_matches_eager_and_arrays_match_scalars(schedule):
    steps = jnp.arange(-5, 1100, dtype=jnp.int32)
    eager = schedule(steps)
    jitted = jax.jit(schedule)(steps)
    vmapped = jax.vmap(schedule)(steps)
    scalars = jnp.stack([jax.jit(schedule)(s) for s in steps[::37]])
    # XLA may fuse a + (1 - a) * p into one rounding under jit: agreement is to 2 float32 ulps.
    ulp2 = 2.4e-7
    np.testing.assert_allclose(np.asarray(eager), np.asarray(jitted), rtol=ulp2)
    np.testing.assert_allclose(np.asarray(eager), np.asarray(vmapped), rtol=ulp2)
    np.testing.assert_allclose(np.asarray(jitted[::37]), np.asarray(scalars), rtol=ulp2)
    assert schedule(steps.reshape(5, 221)).shape == (5, 221)


def test_python_ints_and_all_int_dtypes_agree(schedule):
    ref = np.asarray(schedule(jnp.asarray([0, 300, 900], jnp.int32)))
    for dtype in (jnp.int8, jnp.int16, jnp.uint16, jnp.uint32):
        got = np.asarray(schedule(jnp.asarray([0, 300, 900]).astype(dtype)[:1]))
        assert got[0] == ref[0]
    assert float(schedule(300)) == ref[1]
    assert float(schedule(np.int64(900))) == ref[2]


def test_traced_once_for_a_whole_run(schedule):
    traces = []

    @jax.jit
    def f(count):
        traces.append(1)
        return schedule(count)

    for step in range(0, 1100, 7):
        f(jnp.asarray(step, jnp.int32))
    assert len(traces) == 1


def test_float_steps_give_the_real_extension(schedule):
    assert float(schedule(50.0)) == pytest.approx(float(schedule(50)), rel=1e-6)
    assert float(schedule(125.5)) == pytest.approx(PEAK, rel=1e-6)


def test_grad_has_no_nan_anywhere():
    steps = jnp.concatenate([jnp.arange(-3.0, 1010.0), jnp.array([1e9, -1e9, 0.5, 249.5])])
    for shape in ("linear", "cosine", "1-sqrt", "inverse", "exponential", "geometric"):
        for warm in ("linear", "cosine"):
            sched = wsd_schedule(PEAK, **{**FIELDS, "decay_shape": shape, "warmup_shape": warm})
            spec = sched.spec
            with jax.debug_nans(True):
                d_step = jax.vmap(jax.grad(sched))(steps)
                d_peak = jax.vmap(
                    jax.grad(lambda p, s, spec=spec: wsd_schedule(p, spec=spec)(s)), in_axes=(None, 0)
                )(1.0, steps)
            assert np.isfinite(np.asarray(d_step)).all(), shape
            np.testing.assert_allclose(np.asarray(d_peak), np.asarray(sched(steps)) / PEAK, rtol=1e-6)


def _loss(params, x):
    return jnp.mean((x @ params["w"] + params["b"]) ** 2)


def test_adamw_step_under_jit_uses_the_scheduled_rate(schedule):
    tx = optax.adamw(learning_rate=schedule, weight_decay=0.0)
    params = {"w": jnp.ones((4, 2)), "b": jnp.zeros(2)}
    state = tx.init(params)
    x = jnp.arange(12.0).reshape(3, 4)

    @jax.jit
    def step(params, state):
        grads = jax.grad(_loss)(params, x)
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    for _ in range(3):
        params, state = step(params, state)
    # adam's first update has magnitude ~lr per coordinate: check it scaled with the schedule.
    params0 = {"w": jnp.ones((4, 2)), "b": jnp.zeros(2)}
    p1, _ = step(params0, tx.init(params0))
    first_update = float(jnp.abs(p1["b"] - params0["b"]).max())
    assert first_update == pytest.approx(float(schedule(0)), rel=1e-3)


def test_inject_hyperparams_with_bf16_params_keeps_a_float32_rate(schedule):
    params = {"w": jnp.ones((4, 2), jnp.bfloat16), "b": jnp.zeros(2, jnp.bfloat16)}
    tx = optax.inject_hyperparams(optax.adamw, hyperparam_dtype=jnp.float32)(learning_rate=schedule)
    state = tx.init(params)
    assert learning_rate_from_state(state).dtype == jnp.float32
    assert float(learning_rate_from_state(state)) == float(schedule(0))  # init: the first rate
    x = jnp.ones((3, 4), jnp.bfloat16)
    update = jax.jit(lambda g, s, p: tx.update(g, s, p))
    for n in range(1, 260):
        grads = jax.grad(_loss)(params, x)
        _, state = update(grads, state, params)
        # after n updates the state holds the rate of update n, i.e. schedule(n - 1)
        assert float(learning_rate_from_state(state)) == pytest.approx(float(schedule(n - 1)), rel=2.4e-7)
    assert int(state.count) == 259

    # Without hyperparam_dtype the rate still stays float32 (the schedule returns a strongly typed
    # array, which inject_hyperparams passes through); plain-float hyperparameters become bf16.
    state_default = optax.inject_hyperparams(optax.adamw)(learning_rate=schedule).init(params)
    assert learning_rate_from_state(state_default).dtype == jnp.float32
    assert state_default.hyperparams["b1"].dtype == jnp.bfloat16


@pytest.mark.cuda
@pytest.mark.skipif(not jax_gpu_available(), reason="no jax GPU")
def test_whole_run_on_the_gpu_under_scan_follows_the_contract(schedule):
    # A whole WSD-S run as one jitted lax.scan on the GPU: the rate each update used (the injected
    # hyperparameter) against the 340-digit reference, float32 at the peak's scale.
    gpu = jax.devices("gpu")[0]
    tx = optax.inject_hyperparams(optax.adamw, hyperparam_dtype=jnp.float32)(learning_rate=schedule)
    params = jax.device_put({"w": jnp.ones((4, 2)), "b": jnp.zeros(2)}, gpu)
    x = jax.device_put(jnp.arange(12.0).reshape(3, 4), gpu)

    @jax.jit
    def run(params, state):
        def update(carry, _):
            params, state = carry
            grads = jax.grad(_loss)(params, x)
            updates, state = tx.update(grads, state, params)
            return (optax.apply_updates(params, updates), state), learning_rate_from_state(state)

        return jax.lax.scan(update, (params, state), length=FIELDS["total_steps"])

    (params, state), rates = run(params, tx.init(params))
    assert rates.devices() == {gpu} and params["w"].devices() == {gpu}
    want = [PEAK * reference_multiplier(s, **FIELDS) for s in range(FIELDS["total_steps"])]
    np.testing.assert_allclose(np.asarray(rates, np.float64), want, rtol=1e-6, atol=1e-37)
    assert int(state.count) == FIELDS["total_steps"]


def test_learning_rate_from_nested_states(schedule):
    tx = optax.chain(
        optax.clip_by_global_norm(1.0),
        optax.inject_hyperparams(optax.adamw)(learning_rate=schedule),
    )
    state = tx.init({"w": jnp.zeros(3)})
    assert float(learning_rate_from_state(state)) == float(schedule(0))
    with pytest.raises(ValueError, match="inject_hyperparams"):
        learning_rate_from_state(optax.adamw(schedule).init({"w": jnp.zeros(3)}))


@pytest.mark.parametrize(
    ("kwargs", "error", "text"),
    [
        ({"peak_value": -1.0, "total_steps": 10}, ValueError, "peak_value"),
        ({"peak_value": float("nan"), "total_steps": 10}, ValueError, "peak_value"),
        ({"peak_value": "1e-3", "total_steps": 10}, TypeError, "peak_value"),
        ({"peak_value": 1.0, "total_steps": 10, "dtype": jnp.int32}, TypeError, "dtype"),
        ({"peak_value": 1.0, "total_steps": 10, "dtype": jnp.float64}, ValueError, "x64"),
        ({"peak_value": 1.0, "total_steps": 2**31}, ValueError, "int32"),
        ({"peak_value": 1.0, "total_steps": 10, "warmup_steps": 11}, ValueError, "warmup_steps"),
        ({"peak_value": 1.0, "spec": WSDSpec(10), "total_steps": 10}, TypeError, "not both"),
        ({"peak_value": 1.0, "spec": {"total_steps": 10}}, TypeError, "WSDSpec"),
    ],
)
def test_bad_arguments(kwargs, error, text):
    peak = kwargs.pop("peak_value")
    with pytest.raises(error, match=text):
        wsd_schedule(peak, **kwargs)


def test_concrete_array_peak_is_accepted():
    schedule = wsd_schedule(jnp.asarray(2e-3), total_steps=10)  # type: ignore[arg-type]
    assert schedule.peak_value == pytest.approx(2e-3)


def test_int64_counts_beyond_int32_with_x64():
    with enable_x64():
        big = 2**40
        sched = wsd_schedule(1.0, total_steps=big, decay_steps=10, decay_shape="linear", dtype=jnp.float64)
        got = sched(jnp.asarray([big - 11, big - 10, big - 5, big], jnp.int64))
        np.testing.assert_allclose(np.asarray(got), [1.0, 1.0, 0.5, 0.0])


def test_importing_wsd_jax_needs_no_torch():
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'torch' or name.startswith('torch.'):\n"
        "            raise ImportError('torch is blocked for this test')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import wsd_jax, wsd_core\n"
        "print(float(wsd_jax.wsd_schedule(1.0, total_steps=10)(9)))\n"
        "assert 'torch' not in sys.modules\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert float(out.stdout) == pytest.approx(reference_multiplier(9, total_steps=10), rel=1e-6)


def test_core_imports_no_framework():
    code = "import sys, wsd_core; assert not {'jax', 'torch', 'numpy'} & set(sys.modules), sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_absolute_init_and_end_values_follow_optax_warmup_cosine_decay():
    # optax's own schedule, with its absolute init_value and end_value: the same curve, step by step
    theirs = optax.warmup_cosine_decay_schedule(
        init_value=2e-5, peak_value=1e-3, warmup_steps=100, decay_steps=1000, end_value=5e-5
    )
    ours = wsd_schedule(1e-3, init_value=2e-5, end_value=5e-5, total_steps=1000, warmup_steps=100,
                        decay_steps=900, decay_shape="cosine")  # fmt: skip
    steps = jnp.arange(0, 1200)
    np.testing.assert_allclose(
        np.asarray(ours(steps)), np.asarray(jax.vmap(theirs)(steps)), rtol=2e-6, atol=1e-12
    )
    assert ours.spec.init_ratio == 2e-5 / 1e-3 and ours.spec.min_ratio == 5e-5 / 1e-3
    assert float(ours(1000)) == pytest.approx(5e-5, rel=1e-6) and float(ours(0)) == pytest.approx(
        2e-5, rel=1e-6
    )


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(end_value=5e-5, min_ratio=0.1), TypeError, r"give end_value \(an absolute rate\) or min_ratio"),
        (dict(init_value=2e-3), ValueError, r"init_value must be <= peak_value \(0.001\), got 0.002"),
        (dict(end_value=-1e-5), ValueError, "end_value must be >= 0"),
        (dict(end_value=float("nan")), ValueError, "end_value must be finite"),
        (dict(end_value=0.0, decay_shape="geometric"), ValueError,
         r"must be > 0 for decay_shape='geometric'.*\(min_ratio = end_value / peak_value = 0\)"),
    ],
)  # fmt: skip
def test_absolute_values_are_checked_and_errors_name_them(kwargs, error, match):
    with pytest.raises(error, match=match):
        wsd_schedule(1e-3, total_steps=100, **kwargs)


def test_absolute_values_need_a_ratio_given_once_and_a_concrete_peak():
    spec = WSDSpec(100, decay_ratio=0.2)
    # one conversion for every adapter: with spec=, the spec's own ratio must be 0 or the same
    assert wsd_schedule(1e-3, spec=spec, end_value=1e-4).spec.min_ratio == pytest.approx(0.1)
    with pytest.raises(TypeError, match=r"give end_value \(an absolute rate\) or min_ratio .* min_ratio=0.5"):
        wsd_schedule(1e-3, spec=dataclasses.replace(spec, min_ratio=0.5), end_value=1e-4)
    with pytest.raises(TypeError, match="need a concrete peak_value"):
        jax.grad(lambda p: wsd_schedule(p, total_steps=100, end_value=1e-4)(50))(1e-3)
    assert float(wsd_schedule(0.0, total_steps=10, end_value=0.0)(10)) == 0.0  # a zero peak, a zero floor
    with pytest.raises(ValueError, match="end_value must be <= peak_value"):
        wsd_schedule(0.0, total_steps=10, end_value=1e-4)
