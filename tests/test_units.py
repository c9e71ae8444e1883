"""Specs counted in tokens or samples (``units=``), evaluated at the units consumed before each update
(the spec's clock, ``tokens_per_step=``: a constant or a batch-size ramp): against the reference at
C(s), against Megatron-LM's own scheduler under its own batch-size ramp, and the same LR-per-token
curve whatever the ramp."""

from __future__ import annotations

import dataclasses
import io
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import peers
from tests.backends import assert_close, enable_x64
from tests.reference import reference_multiplier
from tests.strategies import examples, spec_fields
from wsd_core import WSDSpec, presets
from wsd_core._clock import token_ramp

FIELDS: dict[str, Any] = {"total_steps": 200_000, "units": "tokens", "warmup_steps": 20_000,
                          "decay_steps": 50_000, "decay_shape": "1-sqrt", "min_ratio": 0.01,
                          "checkpoints": [100_000, 200_000], "rewarmup_steps": 5_000}  # fmt: skip
RAMP = [(0, 256), (40, 512), (80, 1024), (120, 2048)]  # a batch that grows to 8x
STEPS = 220  # past the end: 40*256 + 40*512 + 40*1024 + 100*2048 tokens > 200,000


def _expected(fields: dict[str, Any] = FIELDS, ramp: Any = RAMP, steps: int = STEPS) -> np.ndarray:
    r = token_ramp(ramp)
    return np.array([reference_multiplier(r.consumed(s), **fields) for s in range(steps)])


@st.composite
def ramps(draw: Any) -> list[tuple[int, int]]:
    starts = sorted(draw(st.sets(st.integers(1, 500), max_size=5)))
    return [(s, draw(st.integers(1, 5000))) for s in [0, *starts]]


@given(ramp=ramps(), steps=st.lists(st.integers(0, 800), min_size=1, max_size=20))
@settings(max_examples=100, deadline=None)
def test_units_consumed_are_the_sum_of_every_earlier_step(ramp, steps):
    r = token_ramp(ramp)
    per_step = [next(rate for start, rate in reversed(ramp) if start <= s) for s in range(801)]
    for s in steps:
        assert r.consumed(s) == sum(per_step[:s])
        first = r.first_step_reaching(r.consumed(s))
        assert r.consumed(first) >= r.consumed(s) and (first == 0 or r.consumed(first - 1) < r.consumed(s))


@pytest.mark.parametrize("x64", [False, True], ids=["int32", "int64"])
def test_the_optax_schedule_follows_the_reference_at_the_units_consumed(x64):
    import contextlib

    import jax
    import jax.numpy as jnp

    from wsd_jax import wsd_companion, wsd_schedule

    with enable_x64() if x64 else contextlib.nullcontext():
        spec = WSDSpec(**FIELDS, tokens_per_step=RAMP)
        schedule = jax.jit(wsd_schedule(1.0, spec=spec))
        got = np.asarray(schedule(jnp.arange(STEPS)), dtype=np.float64)
        np.testing.assert_allclose(got, _expected(), rtol=2e-6, atol=1e-30)
        b2 = wsd_companion(0.95, 0.999, spec=spec)
        assert float(b2(0)) == pytest.approx(0.95) and float(b2(STEPS)) == pytest.approx(0.999)
        assert float(schedule(jnp.asarray(2**31 - 1, dtype=jnp.int32))) == pytest.approx(0.01)


def test_a_real_count_evaluates_the_real_extension_through_the_ramp():
    from wsd_jax import wsd_schedule

    spec = WSDSpec(**FIELDS, tokens_per_step=RAMP)
    schedule = wsd_schedule(1.0, spec=spec)
    units = 40 * 256 + 10.5 * 512  # step 50.5
    assert float(schedule(50.5)) == pytest.approx(spec.multiplier(units, in_units=True), rel=1e-6)
    assert spec.multiplier(50.5) == spec.multiplier(units, in_units=True)


@pytest.mark.parametrize("path", ["WSDLR", "WSDDeviceLR", "WSDDeviceLR-formula"])
def test_the_torch_schedulers_follow_the_reference_at_the_units_consumed(path, monkeypatch):
    torch = pytest.importorskip("torch")
    import wsd_torch._device_lr as device_lr
    from wsd_torch import WSDLR, WSDDeviceLR

    if path.endswith("formula"):
        monkeypatch.setattr(device_lr, "MAX_TABLE_STEPS", 0)
    cls = WSDLR if path == "WSDLR" else WSDDeviceLR
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))], lr=1.0, foreach=False)
    scheduler = cls(optimizer, spec=WSDSpec(**FIELDS, tokens_per_step=RAMP))
    rates = []
    for _ in range(STEPS):
        rates.append(float(scheduler.get_last_lr()[0]))
        optimizer.step()
        scheduler.step()
    np.testing.assert_allclose(rates, _expected(), rtol=1e-12 if cls is WSDLR else 2e-6, atol=1e-30)
    assert scheduler.phase().name == "done"


def test_a_ramped_batch_follows_the_same_lr_per_token_as_a_constant_one():
    # the batch grows from 1/4 to the full size; at equal tokens consumed the rates are equal
    from wsd_jax import wsd_schedule

    spec = WSDSpec(**FIELDS)
    full = 2048
    ramped = token_ramp([(0, full // 4), (40, full // 2), (80, full)])
    constant = wsd_schedule(1.0, spec=dataclasses.replace(spec, tokens_per_step=full))
    growing = wsd_schedule(1.0, spec=dataclasses.replace(spec, tokens_per_step=ramped.to_list()))
    matched = 0
    for s in range(150):
        tokens = ramped.consumed(s)
        if tokens % full == 0:  # a step of the constant run consumed exactly as many tokens
            assert float(growing(s)) == float(constant(tokens // full)), s
            matched += 1
    assert matched > 50


MEGATRON = peers.megatron_param_scheduler()
MICROBATCHES = peers.megatron_microbatches()


class _FakeOptimizer:
    def __init__(self) -> None:
        self.param_groups: list[dict] = [{"params": []}]


@pytest.mark.skipif(MEGATRON is None or MICROBATCHES is None, reason="megatron-core wheel not downloaded")
@pytest.mark.parametrize("style", ["linear", "cosine", "exponential", "minus_sqrt"])
def test_megatron_sample_counted_wsd_with_rampup_batch_size_step_by_step(style):
    # Megatron counts a sample-based run's schedule in samples (lr_*_samples become its "steps"), and
    # steps its scheduler by the global batch of each update, which --rampup-batch-size grows.
    max_lr, min_lr, total, warmup, decay = 3e-4, 3e-5, 40_000, 2_000, 8_000
    theirs = MEGATRON.OptimizerParamScheduler(
        _FakeOptimizer(), init_lr=0.0, max_lr=max_lr, min_lr=min_lr, lr_warmup_steps=warmup,
        lr_decay_steps=total, lr_decay_style="WSD", start_wd=0.0, end_wd=0.0, wd_incr_steps=total,
        wd_incr_style="constant", wsd_decay_steps=decay, lr_wsd_decay_style=style,
    )  # fmt: skip
    batches = MICROBATCHES.RampupBatchsizeNumMicroBatchesCalculator(
        global_batch_size=128, micro_batch_size=4, data_parallel_size=2, decrease_batch_size_if_needed=False,
        rank=0, start_global_batch_size=32, batch_size_increment=32, ramup_samples=6_000,
    )  # fmt: skip
    consumed, sizes, rates = 0, [], []
    while consumed < total + 500:
        batches.update(consumed, consistency_check=True)
        size = batches.get_current_global_batch_size()
        rates.append(theirs.get_lr(theirs.optimizer.param_groups[0]))
        sizes.append(size)
        theirs.step(increment=size)
        consumed += size
    ramp = [(s, b) for s, b in enumerate(sizes) if s == 0 or b != sizes[s - 1]]
    assert [b for _, b in ramp] == [32, 64, 96, 128]
    spec = presets.from_megatron(max_lr, warmup, total, decay, style, min_lr=min_lr)
    spec = WSDSpec(**{**spec.to_dict(), "units": "samples", "tokens_per_step": ramp})
    from wsd_torch import WSDLR

    torch = pytest.importorskip("torch")
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=max_lr)
    ours = WSDLR(optimizer, spec=spec)
    for step, want in enumerate(rates):
        assert ours.get_last_lr()[0] == pytest.approx(want, rel=1e-12, abs=1e-18), step
        optimizer.step()
        ours.step()


def test_a_spec_in_tokens_needs_tokens_per_step_and_one_in_steps_refuses_it():
    from wsd_jax import wsd_schedule

    with pytest.raises(ValueError, match=r"\(units='tokens'\) but has no clock; give it tokens_"):
        wsd_schedule(1.0, spec=WSDSpec(**FIELDS))
    with pytest.raises(ValueError, match="tokens_per_step is for a spec counted in tokens or samples"):
        wsd_schedule(1.0, total_steps=100, tokens_per_step=4)
    with pytest.raises(ValueError, match="has no clock to turn update 3 into tokens"):
        WSDSpec(**FIELDS).multiplier(3)


@pytest.mark.parametrize(
    ("value", "error", "match"),
    [
        (0, ValueError, "tokens_per_step must be an int >= 1"),
        ("4", TypeError, "tokens_per_step must be an int >= 1 or a sequence"),
        ([(1, 4)], ValueError, "first pair must start at step 0"),
        ([(0, 4), (0, 8)], ValueError, r"from_steps must be strictly increasing, got \[0, 0\]"),
        ([(0, 4), (5, 0)], ValueError, r"tokens_per_step\[1\]\[1\] \(tokens_per_step\) must be an int >= 1"),
        ([(0, 4, 1)], TypeError, r"tokens_per_step\[0\] must be a \(from_step, tokens_per_step\) pair"),
        ([], ValueError, "must not be empty"),
        (True, TypeError, "tokens_per_step must be an int >= 1 or a sequence"),
    ],
)
def test_bad_ramps_name_the_pair_and_the_value(value, error, match):
    with pytest.raises(error, match=match):
        token_ramp(value)
    with pytest.raises(error, match=match):
        WSDSpec(**FIELDS, tokens_per_step=value)


def test_jax_asks_for_x64_where_the_tokens_pass_int32_and_counts_them_exactly_with_it():
    import jax.numpy as jnp

    from wsd_jax import wsd_schedule

    big = WSDSpec(10**12, units="tokens", warmup_steps=10**10, decay_ratio=0.2)
    big = dataclasses.replace(big, tokens_per_step=4 * 2**20)
    with pytest.raises(ValueError, match="enable jax_enable_x64 to count its tokens exactly"):
        wsd_schedule(1.0, spec=big)
    with enable_x64():
        schedule = wsd_schedule(1.0, spec=big, dtype=jnp.float64)
        decay_start = -(-8 * 10**11 // (4 * 2**20))  # the first step that has consumed 0.8e12 tokens
        assert float(schedule(decay_start - 1)) == 1.0
        assert float(schedule(decay_start)) < 1.0


def test_the_ramp_is_saved_and_a_different_one_is_a_spec_change():
    torch = pytest.importorskip("torch")
    from wsd_torch import WSDLR, WSDCompanion

    def scheduler(ramp: Any, **kwargs: Any) -> Any:
        optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))], lr=1.0)
        return WSDLR(optimizer, spec=WSDSpec(**FIELDS, tokens_per_step=ramp), **kwargs)

    first = scheduler(RAMP)
    for _ in range(50):
        first.optimizer.step()
        first.step()
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    assert state["spec"]["tokens_per_step"] == [list(pair) for pair in RAMP]
    again = scheduler(RAMP)
    again.load_state_dict(state)
    assert again.get_last_lr() == first.get_last_lr()
    with pytest.raises(ValueError, match="the saved state was made with a different spec"):
        scheduler(2048).load_state_dict(state)
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))], lr=1.0, betas=(0.9, 0.95))
    beta2 = WSDCompanion(optimizer, key="betas", index=1, stable_value=0.95, cooled_value=0.999,
                         spec=WSDSpec(**FIELDS, tokens_per_step=RAMP))  # fmt: skip
    assert beta2.state_dict()["spec"]["tokens_per_step"] == [list(pair) for pair in RAMP]


@pytest.mark.cuda
@pytest.mark.parametrize("path", ["table", "formula"])
def test_cuda_a_ramped_token_schedule_steps_with_no_host_sync(path, monkeypatch):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    import wsd_torch._device_lr as device_lr
    from wsd_torch import WSDDeviceLR

    if path == "formula":
        monkeypatch.setattr(device_lr, "MAX_TABLE_STEPS", 0)
    param = torch.nn.Parameter(torch.zeros(4, device="cuda"))
    param.grad = torch.ones_like(param)
    optimizer = torch.optim.AdamW([param], lr=1.0, capturable=True)
    scheduler = WSDDeviceLR(optimizer, spec=WSDSpec(**FIELDS, tokens_per_step=RAMP))
    rates = []
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(STEPS):
            rates.append(optimizer.param_groups[0]["lr"].clone())
            optimizer.step()
            scheduler.step()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    np.testing.assert_allclose([float(r) for r in rates], _expected(), rtol=2e-6, atol=1e-30)


def test_the_save_plan_counts_updates_for_a_spec_in_tokens():
    from wsd_core import SavePlan

    ramp = token_ramp(RAMP)
    plan = SavePlan.for_spec(WSDSpec(**FIELDS, tokens_per_step=RAMP))
    spec = WSDSpec(**FIELDS)
    for step, boundary in zip(plan.pre_decay, spec.decay_starts, strict=True):
        # the state saved there applied only updates before the boundary: the last one was stable
        assert ramp.consumed(step - 1) < boundary <= ramp.consumed(step)
        assert spec.phase(ramp.consumed(step - 1), in_units=True).name in ("stable", "warmup", "rewarmup")
    assert plan.period_ends == tuple(ramp.first_step_reaching(c) for c in spec.period_ends)
    with pytest.raises(ValueError, match="give it tokens_per_step="):
        SavePlan.for_spec(spec)


def test_the_planner_reads_a_spec_in_tokens_through_its_clock_and_refuses_one_without():
    # before: every spec in tokens was refused ("the planner reads one rate per update"), so a
    # Forecast of a trunk counted in tokens failed at its first observation
    pytest.importorskip("scipy")
    from wsd_plan import learning_rates

    spec = WSDSpec(**FIELDS, tokens_per_step=RAMP)
    rates = learning_rates(spec, STEPS, peak=1e-3)
    assert rates.tolist() == [1e-3 * spec.multiplier(s) for s in range(STEPS)]
    with pytest.raises(ValueError, match=r"counts tokens .* has no clock; give it tokens_per_step="):
        learning_rates(WSDSpec(**FIELDS), 100, peak=1e-3)


def test_a_container_passes_the_ramp_and_the_floor_to_every_scheduler():
    torch = pytest.importorskip("torch")
    from wsd_torch import WSDSchedulersContainer

    optimizers = [torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))], lr=lr) for lr in (1e-3, 1e-2)]
    container = WSDSchedulersContainer.for_optimizers(
        optimizers, spec=WSDSpec(**{**FIELDS, "min_ratio": 0.0}, tokens_per_step=RAMP), min_lr=1e-5
    )
    for _ in range(STEPS):
        for o in optimizers:
            o.step()
        container.step()
    assert [o.param_groups[0]["lr"] for o in optimizers] == pytest.approx([1e-5, 1e-5])
    ramp = [list(p) for p in RAMP]
    assert all(s.state_dict()["spec"]["tokens_per_step"] == ramp for s in container.schedulers)
    # one spec for both optimizers: the compact state keeps the ramp, and a different one is refused
    same = WSDSchedulersContainer.for_optimizers(optimizers, spec=WSDSpec(**FIELDS, tokens_per_step=RAMP))
    state = same.state_dict()
    assert set(state) == {"last_epoch", "spec"} and state["spec"]["tokens_per_step"] == ramp
    other = WSDSchedulersContainer.for_optimizers(optimizers, spec=WSDSpec(**FIELDS, tokens_per_step=1024))
    with pytest.raises(ValueError, match="scheduler 0: the saved state was made with a different spec"):
        other.load_state_dict(state)


@given(fields=spec_fields(max_total=2000), ramp=ramps(), exponent=st.sampled_from([0.0, 0.0, 0.5, 1.0]))
@settings(max_examples=examples(20), deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_spec_under_any_ramp_follows_the_reference_at_the_units_consumed(fields, ramp, exponent):
    import jax.numpy as jnp

    from wsd_jax import wsd_schedule

    if exponent and len(ramp) > 1:  # the batch rule: the rate times (batch / first batch) ** e
        fields = {**fields, "rate_batch_exponent": exponent, "tokens_per_step": ramp}
    spec = WSDSpec(**{**fields, "units": "tokens", "tokens_per_step": ramp})
    r = token_ramp(ramp)
    hi = r.first_step_reaching(spec.end_step) + 2
    boundaries = [spec.start_step, spec.start_step + spec.warmup_steps, *spec.decay_starts, *spec.period_ends]
    near = [r.first_step_reaching(x) + k for x in boundaries for k in (-1, 0, 1)]  # each phase's edges
    near += [start + k for start, _ in ramp for k in (-1, 0, 1)]  # and each ramp step's
    steps = sorted({s for s in [*range(0, hi, max(1, hi // 200)), *near] if s >= 0})
    want = [reference_multiplier(r.consumed(s), **fields) for s in steps]
    jax_values = np.asarray(wsd_schedule(1.0, spec=spec)(jnp.asarray(steps)), np.float64)
    assert_close(jax_values, want, 1e-6, steps)
    assert_close(np.array([spec.multiplier(r.consumed(s), in_units=True) for s in steps]), want, 1e-12, steps)
    assert_close(np.array([spec.multiplier(s) for s in steps]), want, 1e-12, steps)


def test_a_jitted_ramped_schedule_traces_once_for_every_count():
    import jax
    import jax.numpy as jnp

    from wsd_jax import wsd_schedule

    traces = []
    schedule = wsd_schedule(1.0, spec=WSDSpec(**FIELDS, tokens_per_step=RAMP))

    @jax.jit
    def rate(count):
        traces.append(count)  # runs only while tracing
        return schedule(count)

    values = [float(rate(jnp.asarray(s, dtype=jnp.int32))) for s in (0, 39, 40, 119, 150, 219)]
    assert len(traces) == 1
    np.testing.assert_allclose(values, _expected()[[0, 39, 40, 119, 150, 219]], rtol=2e-6, atol=1e-30)


# --- the clock is a field of the spec: validated once, over the whole run ---------------------------


def test_the_clock_round_trips_and_one_constant_rate_is_one_int():
    import json

    spec = WSDSpec(**FIELDS, tokens_per_step=RAMP)
    assert spec.tokens_per_step == tuple(RAMP)
    assert WSDSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    assert WSDSpec(**FIELDS, tokens_per_step=[(0, 2048)]) == WSDSpec(**FIELDS, tokens_per_step=2048)
    assert WSDSpec(**FIELDS, tokens_per_step=2048).to_dict()["tokens_per_step"] == 2048
    assert WSDSpec(**FIELDS, tokens_per_step=RAMP) != WSDSpec(**FIELDS, tokens_per_step=2048)
    # update counts in, units inside: the spec's boundaries in updates come from its clock
    assert spec.units_at(50) == 40 * 256 + 10 * 512
    boundary = spec.decay_starts[0]
    assert spec.step_reaching(boundary) == token_ramp(RAMP).first_step_reaching(boundary)


def test_a_from_step_past_int32_is_exact_in_the_int32_path():
    # before, the from_step was formed in int32 and wrapped: the run reached its floor about 450
    # updates early; a segment the run never reaches is now left out of the traced program
    from wsd_jax import wsd_schedule

    fields: dict[str, Any] = {"total_steps": 4000, "units": "tokens", "warmup_steps": 400,
                              "decay_steps": 1600, "decay_shape": "linear"}  # fmt: skip
    ramp = [(0, 4), (2**31 + 100, 8)]
    schedule = wsd_schedule(1.0, spec=WSDSpec(**fields, tokens_per_step=ramp))
    steps = np.arange(0, 1100)
    want = [reference_multiplier(token_ramp(ramp).consumed(int(s)), **fields) for s in steps]
    assert_close(np.asarray(schedule(steps), np.float64), want, 1e-6, list(steps))


def test_a_never_reached_ramp_value_past_int32_needs_no_x64():
    # before: jax's OverflowError, raised only when the schedule was called
    from wsd_jax import wsd_schedule

    spec = WSDSpec(1000, units="tokens", decay_steps=500, decay_shape="linear",
                   tokens_per_step=[(0, 4), (10**6, 10**12)])  # fmt: skip
    schedule = wsd_schedule(1.0, spec=spec)
    assert [float(schedule(s)) for s in (0, 125, 200, 250, 10**7)] == pytest.approx([1, 1, 0.4, 0, 0])


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"total_steps": 2**63 - 2, "tokens_per_step": 2**62}, r"consumes 9223372036854775808 tokens by upd"),
        ({"total_steps": 1000, "tokens_per_step": 2**64}, r"tokens_per_step must be an int >= 1 and <="),
        ({"total_steps": 1000, "tokens_per_step": [(0, 1), (5, 2**63)]}, r"tokens_per_step\[1\]\[1\]"),
    ],
)
def test_counts_past_int64_are_refused_at_construction_naming_the_clock(fields, match):
    # before: WSDDeviceLR and jax with x64 wrapped past 2**63 and gave the peak where the contract gives
    # the floor, and WSDDeviceLR said "int too big to convert" where WSDLR accepted the value
    with pytest.raises(ValueError, match=match):
        WSDSpec(units="tokens", **fields)


def test_the_last_units_of_a_run_near_int64_give_the_floor_on_every_backend():
    # the largest run whose units still fit: every count past its end is clamped before C is formed
    import jax.numpy as jnp

    from wsd_jax import wsd_schedule

    torch = pytest.importorskip("torch")
    from wsd_torch import WSDLR, WSDDeviceLR

    spec = WSDSpec(2**63 - 2**40, units="tokens", decay_ratio=0.5, decay_shape="linear",
                   tokens_per_step=2**40)  # fmt: skip
    late = 2**40  # updates: far past the run's end, whose units overflow int64 if formed unclamped
    with enable_x64():
        assert float(wsd_schedule(1.0, spec=spec, dtype=jnp.float64)(jnp.asarray(late, jnp.int64))) == 0.0
    assert spec.multiplier(late) == 0.0
    for cls in (WSDLR, WSDDeviceLR):
        optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        scheduler = cls(optimizer, spec=spec)
        state = scheduler.state_dict()
        scheduler.load_state_dict({**state, "last_epoch": late})
        assert float(scheduler.get_last_lr()[0]) == 0.0, cls.__name__


def test_branching_a_spec_in_tokens_takes_update_counts():
    spec = WSDSpec(**FIELDS, tokens_per_step=RAMP)
    at = spec.step_reaching(30_000)  # an update in the first period's stable phase
    branch = spec.branch_cooldown(at, 10_000)
    assert branch.start_step == spec.units_at(at) and branch.tokens_per_step == spec.tokens_per_step
    assert branch.multiplier(at) == 1.0 and branch.multiplier(10**6) == spec.min_ratio
    extended = spec.extend(300_000, at_step=spec.step_reaching(150_000))
    assert [extended.multiplier(s) for s in range(60)] == [spec.multiplier(s) for s in range(60)]
    with pytest.raises(ValueError, match="at_step must be >= 5000"):
        WSDSpec(**{**FIELDS, "start_step": 5000}, tokens_per_step=RAMP).branch_cooldown(1, 100)


@pytest.mark.parametrize("path", ["WSDLR", "WSDDeviceLR", "planner"])
def test_the_batch_rule_scales_the_rate_with_the_batch_on_every_backend(path):
    fields = {**FIELDS, "tokens_per_step": RAMP, "rate_batch_exponent": 0.5}
    spec = WSDSpec(**fields)
    want = np.array([reference_multiplier(token_ramp(RAMP).consumed(s), **fields) for s in range(STEPS)])
    # the rate of a batch 8x the first is sqrt(8)x the rate without the rule, from its ramp step on
    plain = _expected()
    np.testing.assert_allclose(want[120:130] / plain[120:130], math.sqrt(8), rtol=1e-14)
    np.testing.assert_allclose(want[:40], plain[:40], rtol=0, atol=0)
    if path == "planner":
        pytest.importorskip("jax")
        from wsd_plan import learning_rates

        np.testing.assert_allclose(learning_rates(spec, STEPS, peak=1.0), want, rtol=1e-12)
        return
    import torch

    from wsd_torch import WSDLR, WSDDeviceLR

    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = (WSDLR if path == "WSDLR" else WSDDeviceLR)(optimizer, spec=spec)
    rates = []
    for _ in range(STEPS):
        rates.append(float(scheduler.get_last_lr()[0]))
        optimizer.step()
        scheduler.step()
    np.testing.assert_allclose(rates, want, rtol=1e-12 if path == "WSDLR" else 1e-6)


def test_the_batch_rule_needs_a_ramp_and_round_trips():
    with pytest.raises(ValueError, match=r"rate_batch_exponent=0\.5 scales the rate with a batch ramp"):
        WSDSpec(1000, units="tokens", tokens_per_step=256, rate_batch_exponent=0.5)
    with pytest.raises(ValueError, match=r"rate_batch_exponent=0\.5 scales the rate with a batch ramp"):
        WSDSpec(1000, rate_batch_exponent=0.5)
    with pytest.raises(ValueError, match="rate_batch_exponent must be >= 0"):
        WSDSpec(**{**FIELDS, "tokens_per_step": RAMP, "rate_batch_exponent": -1.0})
    spec = WSDSpec(**{**FIELDS, "tokens_per_step": RAMP, "rate_batch_exponent": 0.5})
    assert WSDSpec.from_dict(spec.to_dict()) == spec
    assert "rate_batch_exponent" not in WSDSpec(**{**FIELDS, "tokens_per_step": RAMP}).to_dict()
    # a cooldown branched off it keeps the rule: the same rate at its first update as the trunk's
    at = 70  # 25,600 tokens in: stable, at a batch twice the first
    branch = spec.branch_cooldown(at, 20_000)
    assert branch.multiplier(at) == pytest.approx(spec.multiplier(at), rel=1e-15)
