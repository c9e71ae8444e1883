"""Every public function that takes a spec honours its clock: for a spec counted in tokens or samples,
each one's rate at update count s is ``WSDSpec.multiplier(s)`` (m at the units consumed before update
s), exactly as for the same schedule counted in steps. One test per function, over the same specs."""

from __future__ import annotations

import numpy as np
import pytest

from wsd_core import SavePlan, WSDSpec

RAMP = [(0, 256), (30, 512), (70, 1024)]  # a batch that grows 4x
# The same curve, counted three ways: in tokens under a ramp, in samples at a constant batch
SPECS = {
    "tokens": WSDSpec(150_000, warmup_steps=5_000, decay_ratio=0.3, checkpoints=[60_000, 150_000],
                      decay_shape="linear", min_ratio=0.1, units="tokens", tokens_per_step=RAMP),
    "samples": WSDSpec(3_000, warmup_steps=320, decay_steps=900, decay_shape="cosine", min_ratio=0.05,
                       units="samples", tokens_per_step=16),
}  # fmt: skip
STEPS = 240  # past the end of both
IDS = list(SPECS)


def _expected(spec: WSDSpec) -> list[float]:
    return [spec.multiplier(s) for s in range(STEPS)]


def test_the_specs_reach_every_phase_within_the_steps_checked():
    for spec in SPECS.values():
        names = {spec.phase(s).name for s in range(STEPS)}
        assert {"warmup", "stable", "decay", "done"} <= names, names


@pytest.mark.parametrize("spec", SPECS.values(), ids=IDS)
def test_multiplier_tensor(spec):
    # before: it ignored the clock and evaluated m at the update count itself (0.0001 for 0.1)
    torch = pytest.importorskip("torch")
    from wsd_torch import multiplier_tensor

    steps = torch.arange(STEPS)
    got = multiplier_tensor(spec, steps, dtype=torch.float64).tolist()
    assert got == pytest.approx(_expected(spec), rel=1e-12, abs=1e-15)
    floats = multiplier_tensor(spec, steps.to(torch.float64), dtype=torch.float64).tolist()
    assert floats == pytest.approx(_expected(spec), rel=1e-12, abs=1e-15)  # the real extension too
    for dtype in (torch.int32, torch.int16):
        small = multiplier_tensor(spec, steps.to(dtype), dtype=torch.float64).tolist()
        assert small == pytest.approx(_expected(spec), rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("spec", SPECS.values(), ids=IDS)
def test_torch_schedulers_and_the_container(spec):
    torch = pytest.importorskip("torch")
    from wsd_torch import WSDLR, WSDDeviceLR, WSDSchedulersContainer

    for make in (WSDLR, WSDDeviceLR):
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        scheduler = make(opt, spec=spec)
        rates = []
        for _ in range(STEPS):
            rates.append(float(opt.param_groups[0]["lr"]))
            opt.step()
            scheduler.step()
        assert rates == pytest.approx(_expected(spec), rel=1e-6, abs=1e-9), make.__name__
    opts = [torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=2.0) for _ in range(2)]
    container = WSDSchedulersContainer.for_optimizers(opts, spec=spec)
    rates = []
    for _ in range(STEPS):
        rates.append(float(opts[1].param_groups[0]["lr"]) / 2.0)
        for o in opts:
            o.step()
        container.step()
    assert rates == pytest.approx(_expected(spec), rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("spec", SPECS.values(), ids=IDS)
def test_companions_follow_the_stable_fraction(spec):
    torch = pytest.importorskip("torch")
    pytest.importorskip("jax")
    from wsd_jax import wsd_companion
    from wsd_torch import WSDCompanion

    expected = [0.9 + (0.95 - 0.9) * spec.stable_fraction(s) for s in range(STEPS)]
    jax_values = np.asarray(wsd_companion(spec=spec, stable_value=0.95, cooled_value=0.9)(np.arange(STEPS)))
    assert jax_values.tolist() == pytest.approx(expected, rel=1e-6)
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1e-3, betas=(0.9, 0.95))
    companion = WSDCompanion(opt, key="betas", index=1, stable_value=0.95, cooled_value=0.9, spec=spec)
    values = []
    for _ in range(STEPS):
        values.append(opt.param_groups[0]["betas"][1])
        companion.step()
    assert values == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("spec", SPECS.values(), ids=IDS)
def test_the_optax_schedule_and_the_rate_read_back(spec):
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp
    import optax

    from wsd_jax import learning_rate_from_state, wsd_schedule

    schedule = wsd_schedule(1.0, spec=spec)
    assert np.asarray(schedule(jnp.arange(STEPS))).tolist() == pytest.approx(_expected(spec), rel=1e-6)
    assert [float(schedule(s)) for s in (0, 37, 150)] == pytest.approx(
        [spec.multiplier(s) for s in (0, 37, 150)], rel=1e-6
    )
    state = optax.adamw(schedule).init({"w": jnp.zeros(2)})
    state = jax.tree.map(lambda x: jnp.asarray(101) if getattr(x, "dtype", None) == jnp.int32 else x, state)
    assert float(learning_rate_from_state(state, schedule=schedule)) == pytest.approx(
        spec.multiplier(100), rel=1e-6
    )


@pytest.mark.parametrize("spec", SPECS.values(), ids=IDS)
def test_the_planner_reads_the_rates_through_the_clock(spec):
    pytest.importorskip("scipy")
    from wsd_plan import LossLawFit, LossRun, learning_rates

    assert learning_rates(spec, STEPS, peak=1.0).tolist() == pytest.approx(_expected(spec), rel=1e-12)
    fit = LossLawFit(
        "multi-power", dict(L0=3.0, A=0.5, alpha=0.5, B=400.0, C=2.0, beta=0.6, gamma=0.6), {}, 0.0
    )
    steps = np.arange(40, 181, 10)  # (within both runs: a log past its schedule's end is refused)
    rates = 3e-4 * np.asarray(_expected(spec))
    warmup = spec.step_reaching(spec.warmup_steps)
    by_spec = fit.predict(spec, steps, peak=3e-4)
    by_rates = fit.predict(rates, steps, warmup_steps=warmup)
    assert by_spec.tolist() == pytest.approx(by_rates.tolist(), rel=1e-12)
    run = LossRun(spec, steps, by_rates, peak=3e-4)
    assert run.warmup_steps == warmup and run.lrs.tolist() == pytest.approx(rates[:181].tolist(), rel=1e-12)


@pytest.mark.parametrize("spec", SPECS.values(), ids=IDS)
def test_the_save_plan_marks_the_boundaries_in_updates(spec):
    plan = SavePlan.for_spec(spec)
    for step in plan.pre_decay:  # the state saved there applied only stable updates
        assert spec.phase(step - 1).name in ("stable", "warmup") and spec.phase(step).name == "decay"
    for step in plan.period_ends:  # and there, its period's whole decay
        assert spec.phase(step - 1).name == "decay"
