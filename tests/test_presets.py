"""WSDSpec.from_<peer> against the peers' own scheduler code: every step, float64 up to rounding.

Peers that are not installed (transformers, pytorch_accelerated: the ``peers`` extra) or whose wheel
was not downloaded (torchtitan, Megatron-LM: see tests/peers.py) make their tests skip.
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from tests import peers
from wsd_core import WSDSpec, presets

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ULPS = 4 * 2.0**-52  # the peers' literal formulas round to a few ulps of 1 near a floor of 0


def assert_same_curve(ours, theirs, steps, scale=1.0, power=1.0):
    # a curve raised to a power below 1 near 0 raises the peers' rounding of its base with it: an ulp
    # of 1 under a square root is 1.5e-8 of the peak
    floor = ULPS ** min(power, 1.0) * scale
    for s in steps:
        a, b = scale * ours(s), theirs(s)
        assert abs(a - b) <= 1e-12 * abs(b) + floor, f"step {s}: ours {a!r}, peer {b!r}"


ratios = st.sampled_from([0.0, 0.1, 0.5, 1e-3, 1.0])


# --- transformers ---------------------------------------------------------------------------------

needs_transformers = pytest.mark.skipif(not peers.installed("transformers"), reason="transformers missing")


@needs_transformers
@given(
    total=st.integers(1, 1500), warmup=st.integers(0, 300), decay=st.integers(0, 800),
    warmup_type=st.sampled_from(["linear", "cosine", "1-sqrt"]),
    decay_type=st.sampled_from(["linear", "cosine", "1-sqrt"]), r=ratios,
    by_stable=st.booleans(),
)  # fmt: skip
@SETTINGS
def test_transformers_every_step(total, warmup, decay, warmup_type, decay_type, r, by_stable):
    import torch
    from transformers import get_wsd_schedule

    assume(warmup <= total and decay <= total)
    kwargs = dict(warmup_type=warmup_type, decay_type=decay_type, min_lr_ratio=r)
    if by_stable:
        kwargs["num_stable_steps"] = total - warmup - decay
    else:
        kwargs["num_training_steps"] = total
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    theirs = get_wsd_schedule(opt, warmup, decay, **kwargs).lr_lambdas[0]
    spec = presets.from_transformers(warmup, decay, **kwargs)
    # past the end they agree too, except with no decay (transformers drops to min_lr_ratio at T)
    end = total + 5 if decay > 0 else total
    assert_same_curve(spec.multiplier, theirs, range(end))


def test_transformers_refusals():
    with pytest.raises(ValueError, match="num_cycles"):
        presets.from_transformers(10, 10, num_training_steps=100, num_cycles=1.0)
    with pytest.raises(ValueError, match=r"warmup_type must be one of \['linear', 'cosine', '1-sqrt'\]"):
        presets.from_transformers(10, 10, num_training_steps=100, warmup_type="sqrt")
    with pytest.raises(ValueError, match="num_training_steps or num_stable_steps"):
        presets.from_transformers(10, 10)
    with pytest.raises(ValueError, match="num_warmup_steps"):
        presets.from_transformers(200, 10, num_training_steps=100)
    with pytest.raises(ValueError, match="before the first update"):
        presets.from_transformers(0, 101, num_training_steps=100)
    with pytest.warns(UserWarning, match="num_stable_steps will be used"):
        spec = presets.from_transformers(10, 20, num_training_steps=999, num_stable_steps=70)
    assert spec.total_steps == 100


# --- levanter (marin-levanter) ----------------------------------------------------------------------

LEVANTER = peers.levanter_optimizer_config()
needs_levanter = pytest.mark.skipif(
    LEVANTER is None, reason="marin-levanter wheel not downloaded (or no jax)"
)


def _levanter_rates(config: dict[str, Any], total: int, steps: range) -> list[float]:
    """levanter's own schedule (optax's schedules joined), in float64, at every step at once."""
    import numpy as np

    from tests.backends import enable_x64

    with enable_x64():
        schedule = LEVANTER.AdamConfig(**config).lr_scheduler(total)
        at = np.arange(steps.start, steps.stop, dtype=np.int64)
        # (a schedule of one constant piece is optax's constant_schedule: a scalar for any steps)
        return [float(x) for x in np.broadcast_to(np.asarray(schedule(at)), at.shape)]


@needs_levanter
@example(total=1, lr_schedule="constant", warmup=0.0, decay=None, min_lr_ratio=0.0, rewarmup=0.0, cycles=None,
         power=2.0)  # fmt: skip
@example(total=1315, lr_schedule="polynomial", warmup=0.0, decay=None, min_lr_ratio=0.0, rewarmup=0.0,
         cycles=None, power=0.5)  # fmt: skip  # levanter's last step: 3.2e-12 where ours is 0
@given(
    total=st.integers(1, 3000), lr_schedule=st.sampled_from(["linear", "cosine", "polynomial", "constant"]),
    warmup=st.one_of(st.sampled_from([0.0, 0.01, 0.1, 1.0]), st.integers(2, 300)),
    decay=st.one_of(st.none(), st.sampled_from([0.0, 0.2, 0.5, 1.0]), st.integers(2, 500)),
    min_lr_ratio=ratios, rewarmup=st.one_of(st.sampled_from([0.0, 0.05]), st.integers(2, 50)),
    cycles=st.one_of(st.none(), st.integers(1, 4), st.just("length")), power=st.sampled_from([2.0, 0.5, 3.0]),
)  # fmt: skip
@SETTINGS
def test_levanter_every_step(total, lr_schedule, warmup, decay, min_lr_ratio, rewarmup, cycles, power):
    lr = 3e-4
    config: dict[str, Any] = dict(learning_rate=lr, warmup=warmup, decay=decay, min_lr_ratio=min_lr_ratio,
                                  rewarmup=rewarmup)  # fmt: skip
    ours: dict[str, Any] = dict(warmup=warmup, decay=decay, min_lr_ratio=min_lr_ratio, rewarmup=rewarmup)
    if cycles == "length":
        config["cycle_length"] = ours["cycle_length"] = max(1, total // 3)
    elif cycles is not None:
        config["cycles"] = ours["cycles"] = cycles
    if lr_schedule == "polynomial":
        config["lr_schedule"] = LEVANTER.PolynomialLrSchedule(power=power)
        ours["power"] = power
    else:
        config["lr_schedule"] = lr_schedule
    try:
        spec = presets.from_levanter(total, lr_schedule=lr_schedule, **ours)
    except ValueError as e:
        assume("different rewarmups" not in str(e) and "at least one step" not in str(e))
        raise
    steps = range(total + 20)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Cycle length does not divide total number of steps"
        theirs = _levanter_rates(config, total, steps)
    assert_same_curve(spec.multiplier, lambda t: theirs[t], steps, scale=lr,
                      power=power if lr_schedule == "polynomial" else 1.0)  # fmt: skip


def test_levanter_refusals():
    for name in ("inv", "inv_sqrt", "inv_sqrt_decay", "power"):
        with pytest.raises(ValueError, match=f"lr_schedule='{name}' has no WSD spec"):
            presets.from_levanter(1000, lr_schedule=name)
    with pytest.raises(ValueError, match="power goes with lr_schedule='polynomial'"):
        presets.from_levanter(1000, lr_schedule="polynomial")
    with pytest.raises(ValueError, match="power goes with lr_schedule='polynomial'"):
        presets.from_levanter(1000, lr_schedule="linear", power=2.0)
    with pytest.raises(ValueError, match="at most one of cycle_length and cycles"):
        presets.from_levanter(1000, cycles=2, cycle_length=500)
    with pytest.raises(ValueError, match=r"different rewarmups \[10, 15\]"):  # cycles of 200 and 300 steps
        presets.from_levanter(600, cycles=[100, 300], rewarmup=0.05)
    with pytest.raises(ValueError, match=r"fraction in \[0, 1\] or a whole number of steps, got 2.5"):
        presets.from_levanter(1000, warmup=2.5)
    with pytest.raises(ValueError, match="lr_schedule must be one of"):
        presets.from_levanter(1000, lr_schedule="cos")


# --- torchtitan -----------------------------------------------------------------------------------

TORCHTITAN = peers.torchtitan_lr_scheduler()
needs_torchtitan = pytest.mark.skipif(TORCHTITAN is None, reason="torchtitan wheel not downloaded")


@needs_torchtitan
@given(
    total=st.integers(1, 1500), warmup=st.integers(0, 400),
    decay_ratio=st.one_of(st.none(), st.sampled_from([0.0, 0.1, 0.2, 0.5, 0.9, 1.0])),
    decay_type=st.sampled_from(["linear", "sqrt", "cosine"]), r=ratios,
)  # fmt: skip
@SETTINGS
def test_torchtitan_every_step(total, warmup, decay_ratio, decay_type, r):
    import torch

    config = TORCHTITAN.LRSchedulersContainer.Config(
        warmup_steps=warmup, decay_ratio=decay_ratio, decay_type=decay_type, min_lr_factor=r
    )
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    theirs = config.build(optimizers=[opt], training_steps=total).schedulers[0].lr_lambdas[0]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        spec = presets.from_torchtitan(total, warmup, decay_ratio, decay_type, r)
    clamped = warmup > total or (
        decay_ratio is not None and min(warmup, total) + round(total * decay_ratio) > total
    )
    assert bool(caught) == clamped  # the same clamping, announced the same way
    assert_same_curve(spec.multiplier, theirs, range(total + 1))


@needs_torchtitan
def test_torchtitan_goes_negative_past_the_end_and_we_do_not():
    import torch

    config = TORCHTITAN.LRSchedulersContainer.Config(warmup_steps=10, decay_ratio=0.2)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    theirs = config.build(optimizers=[opt], training_steps=100).schedulers[0].lr_lambdas[0]
    spec = presets.from_torchtitan(100, 10, 0.2)
    assert theirs(105) < 0 and spec.multiplier(105) == 0.0


def _torchtitan_legacy_factor(step, total, warmup, decay, shape, r):
    """The older torchtitan factor, restated from its description for this test: no released
    torchtitan wheel contains that file (0.1.0 and later have the current formula)."""
    step = min(step, total)
    if step < warmup:
        return (step + 1) / (warmup + 1)
    if step < total - decay or decay == 0:
        return 1.0
    progress = (step + 1 - (total - decay)) / (decay + 1)
    g = {"linear": 1 - progress, "sqrt": 1 - math.sqrt(progress),
         "cosine": 0.5 * (1 + math.cos(math.pi * progress))}[shape]  # fmt: skip
    return r + (1 - r) * g


@given(
    total=st.integers(2, 1000), warmup=st.integers(1, 200),
    decay_ratio=st.one_of(st.none(), st.sampled_from([0.0, 0.1, 0.3, 0.5])),
    shape=st.sampled_from(["linear", "sqrt", "cosine"]), r=ratios,
)  # fmt: skip
@SETTINGS
def test_torchtitan_legacy_every_step(total, warmup, decay_ratio, shape, r):
    assume(warmup < total)
    decay = round(total * decay_ratio) if decay_ratio is not None else total - warmup
    assume(decay + 1 <= total)
    spec = presets.from_torchtitan(total, warmup, decay_ratio, shape, r, legacy=True)
    assert_same_curve(
        spec.multiplier,
        lambda s: _torchtitan_legacy_factor(s, total, warmup, decay, shape, r),
        range(total + 5),
    )


def test_torchtitan_legacy_refuses_a_decay_before_the_first_update():
    with pytest.raises(ValueError, match="before the first update"):
        presets.from_torchtitan(100, warmup_steps=0, legacy=True)


# --- pytorch_accelerated --------------------------------------------------------------------------

needs_pa = pytest.mark.skipif(
    not peers.installed("pytorch_accelerated"), reason="pytorch_accelerated missing"
)


@needs_pa
@given(
    total=st.integers(8, 3000), warmup=st.integers(0, 100), ratio=st.sampled_from([0.0, 0.1, 0.2, 1 / 3]),
    lr_min=st.sampled_from([1e-6, 0.01, 0.1, 0.5]), start=st.sampled_from([0.0, 1e-6, 1e-4]),
    sqrt_decay=st.booleans(), k=st.integers(1, 5),
)  # fmt: skip
@SETTINGS
def test_pytorch_accelerated_every_step(total, warmup, ratio, lr_min, start, sqrt_decay, k):
    import torch
    from pytorch_accelerated.schedulers.wsd_scheduler import WSDLrScheduler, estimate_checkpoint_steps

    base = 1e-3
    ends = estimate_checkpoint_steps(total, k)
    assume(warmup <= ends[0])
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=base)
    theirs = WSDLrScheduler(
        opt, total_steps=total, num_warmup_steps=warmup, decay_phase_ratio=ratio, lr_min=lr_min,
        warmup_starting_lr=start, use_inverse_sqrt_decay=sqrt_decay, num_checkpoints=k,
    )  # fmt: skip
    spec = presets.from_pytorch_accelerated(
        total, num_warmup_steps=warmup, decay_phase_ratio=ratio, lr_min=lr_min,
        warmup_starting_lr=start, use_inverse_sqrt_decay=sqrt_decay, num_checkpoints=k, base_lr=base,
    )  # fmt: skip
    assert list(spec.period_ends) == ends
    # Past the end its period lookup finds no period and falls back to the first one: it reaches
    # lr_min only if that period decays (else it divides by zero), and the contract reaches it only
    # if the last period decays. Past the end is compared where both hold; the run always is.
    both_decay = spec.decay_lengths[0] > 0 and spec.decay_lengths[-1] > 0
    last = ends[-1] + 3 if both_decay else ends[-1]
    assert_same_curve(spec.multiplier, lambda n: theirs.get_updated_values(n)[0], range(last), scale=base)


def test_pytorch_accelerated_checkpoint_placement_differs_from_its_documentation():
    # its docs: 2 checkpoints for 100K steps -> [50K, 100K]; its code stops at 50K
    assert presets.from_pytorch_accelerated(100_000, num_checkpoints=2, base_lr=1.0).period_ends == (
        25_000,
        50_000,
    )
    assert WSDSpec(100_000, checkpoints=2).period_ends == (50_000, 100_000)  # the contract's own
    with pytest.raises(ValueError, match="first checkpoint"):
        presets.from_pytorch_accelerated(3, num_checkpoints=2, base_lr=1.0)
    with pytest.raises(ValueError, match="Only num_epochs"):
        presets.from_pytorch_accelerated(10, num_epochs=2, num_update_steps_per_epoch=5, base_lr=1.0)
    assert (
        presets.from_pytorch_accelerated(num_epochs=2, num_update_steps_per_epoch=50, base_lr=1.0).total_steps
        == 100
    )


# --- Megatron-LM -----------------------------------------------------------------------------------

MEGATRON = peers.megatron_param_scheduler()
needs_megatron = pytest.mark.skipif(MEGATRON is None, reason="megatron-core wheel not downloaded")


class _FakeOptimizer:
    """What OptimizerParamScheduler touches of a MegatronOptimizer: its param groups."""

    def __init__(self) -> None:
        self.param_groups: list[dict] = [{"params": []}]


@needs_megatron
@given(
    total=st.integers(2, 2000), warmup=st.integers(0, 300), decay=st.integers(0, 1000),
    style=st.sampled_from(["linear", "cosine", "exponential", "minus_sqrt"]),
    min_frac=ratios, init_frac=ratios,
)  # fmt: skip
@SETTINGS
def test_megatron_every_step(total, warmup, decay, style, min_frac, init_frac):
    assume(decay <= total and warmup <= total - decay and warmup < total)
    max_lr = 3e-4
    theirs = MEGATRON.OptimizerParamScheduler(
        _FakeOptimizer(), init_lr=init_frac * max_lr, max_lr=max_lr, min_lr=min_frac * max_lr,
        lr_warmup_steps=warmup, lr_decay_steps=total, lr_decay_style="WSD", start_wd=0.0, end_wd=0.0,
        wd_incr_steps=total, wd_incr_style="constant", wsd_decay_steps=decay,
        lr_wsd_decay_style=style,
    )  # fmt: skip
    spec = presets.from_megatron(
        max_lr, warmup, total, decay, style, min_lr=min_frac * max_lr, init_lr=init_frac * max_lr
    )

    def megatron_lr(n):
        theirs.num_steps = n
        return theirs.get_lr({})

    assume(decay > 0)  # with no anneal window Megatron divides by zero at its last step
    assert_same_curve(spec.multiplier, megatron_lr, range(total + 5), scale=max_lr)


def test_megatron_refusals():
    with pytest.raises(ValueError, match="lr_warmup_steps"):
        presets.from_megatron(1e-3, 900, 1000, 200)
    with pytest.raises(ValueError, match="lr_decay_style"):
        presets.from_megatron(1e-3, 10, 1000, 200, lr_decay_style="cosine")
    with pytest.raises(ValueError, match="min_lr"):
        presets.from_megatron(1e-3, 10, 1000, 200, min_lr=2e-3)
    with pytest.raises(ValueError, match="lr_wsd_decay_style"):
        presets.from_megatron(1e-3, 10, 1000, 200, "sqrt")


# --- OLMo-core: WSD and WSDS ------------------------------------------------------------------------

OLMO_CORE = peers.olmo_core_scheduler()
needs_olmo_core = pytest.mark.skipif(OLMO_CORE is None, reason="ai2-olmo-core wheel not downloaded")


@needs_olmo_core
@given(
    t_max=st.integers(2, 2000), warmup=st.integers(1, 400),
    warmup_fraction=st.sampled_from([None, 0.01, 0.05]),
    decay=st.integers(1, 800), decay_fraction=st.sampled_from([None, 0.1, 0.25, 0.333]),
    warmup_min=ratios, decay_min=ratios,
)  # fmt: skip
@SETTINGS
def test_olmo_core_wsd_every_step(
    t_max, warmup, warmup_fraction, decay, decay_fraction, warmup_min, decay_min
):
    lr = 3e-4
    fields = {"warmup_min_lr": warmup_min * lr * 0.99, "decay_min_lr": decay_min * lr * 0.99}
    fields |= {"warmup_fraction": warmup_fraction} if warmup_fraction else {"warmup": warmup}
    fields |= (
        {"decay_fraction": decay_fraction} if decay_fraction else {"decay": decay, "decay_fraction": None}
    )
    theirs = OLMO_CORE.WSD(**fields)
    w = round(t_max * warmup_fraction) if warmup_fraction else warmup
    d = round(t_max * decay_fraction) if decay_fraction else decay
    assume(0 < w <= t_max - d and d > 0)  # OLMo-core divides by zero with no warmup or no decay
    spec = presets.from_olmo_core("WSD", t_max=t_max, initial_lr=lr, **fields)
    assert_same_curve(spec.multiplier, lambda t: theirs.get_lr(lr, t, t_max), range(t_max + 1), scale=lr)


@needs_olmo_core
def test_olmo_core_wsd_keeps_falling_past_t_max_and_we_hold_the_floor():
    lr, t_max = 1e-3, 1000
    theirs = OLMO_CORE.WSD(warmup=10, decay_fraction=0.1, decay_min_lr=1e-4)
    spec = presets.from_olmo_core("WSD", t_max=t_max, initial_lr=lr, warmup=10, decay_min_lr=1e-4)
    assert theirs.get_lr(lr, t_max, t_max) == pytest.approx(lr * spec.multiplier(t_max)) == 1e-4
    assert (
        theirs.get_lr(lr, t_max + 200, t_max) < 0 < lr * spec.multiplier(t_max + 200) == pytest.approx(1e-4)
    )


@needs_olmo_core
@given(
    lengths=st.lists(st.integers(1, 400), min_size=1, max_size=5),
    multipliers=st.one_of(
        st.none(), st.lists(st.sampled_from([1.0, 0.5, 0.25, 1.5, 0.8]), min_size=5, max_size=5)
    ),
    warmup=st.integers(0, 100), warmup_fraction=st.sampled_from([None, 0.1, 0.3]),
    decay=st.integers(1, 200), decay_fraction=st.sampled_from([None, 0.1, 0.2, 0.5]),
    warmup_min=ratios, decay_min=st.sampled_from([0.0, 0.1, 1e-3]),
)  # fmt: skip
@SETTINGS
def test_olmo_core_wsds_every_step(lengths, multipliers, warmup, warmup_fraction, decay, decay_fraction,
                                   warmup_min, decay_min):  # fmt: skip
    lr = 3e-4
    fields: dict = {
        "period_lengths": lengths,
        "warmup_min_lr": warmup_min * lr * 0.2,
        "decay_min_lr": decay_min * lr,
    }
    if multipliers is not None:
        fields["period_lr_multipliers"] = multipliers[: len(lengths)]
    fields |= {"warmup_fraction": warmup_fraction} if warmup_fraction else {"warmup": warmup}
    fields |= {"decay_fraction": decay_fraction} if decay_fraction else {"decay": decay}
    decays = [round(decay_fraction * n) if decay_fraction else decay for n in lengths]
    w = round(warmup_fraction * lengths[0]) if warmup_fraction else warmup
    assume(all(0 < d <= n for d, n in zip(decays, lengths, strict=True)) and w + decays[0] <= lengths[0])
    theirs = OLMO_CORE.WSDS(**fields)
    spec = presets.from_olmo_core("WSDS", t_max=sum(lengths), initial_lr=lr, **fields)
    steps = range(sum(lengths) + 20)  # WSDS holds its floor past the last period, as we do
    assert_same_curve(spec.multiplier, lambda t: theirs.get_lr(lr, t, sum(lengths)), steps, scale=lr)


@needs_olmo_core
@given(
    t_max=st.integers(2, 3000), warmup=st.integers(1, 400),
    warmup_fraction=st.sampled_from([None, 0.01, 0.05]),
    decay=st.integers(0, 800), decay_fraction=st.sampled_from([None, 0.1, 0.25]),
    b=st.one_of(st.sampled_from([-0.51, -0.5, -1.0]), st.floats(-2.0, -0.01)),
    warmup_min=ratios, decay_min=st.sampled_from([0.0, 0.01, 1e-4]),
)  # fmt: skip
@SETTINGS
def test_olmo_core_power_lr_every_step(t_max, warmup, warmup_fraction, decay, decay_fraction, b, warmup_min,
                                       decay_min):  # fmt: skip
    lr = 3e-4
    fields: dict[str, Any] = {"b": b, "warmup_min_lr": warmup_min * lr * 0.99, "decay_min_lr": decay_min * lr}
    fields |= {"warmup_fraction": warmup_fraction} if warmup_fraction else {"warmup": warmup}
    fields |= (
        {"decay_fraction": decay_fraction} if decay_fraction else {"decay": decay, "decay_fraction": None}
    )
    w = round(t_max * warmup_fraction) if warmup_fraction else warmup
    d = round(t_max * decay_fraction) if decay_fraction else decay
    assume(0 < w <= t_max - d)  # OLMo-core divides by a warmup of 0
    tail_start = lr * ((t_max - d) / w) ** b
    assume(fields["decay_min_lr"] < tail_start)  # OLMo-core asserts its tail falls
    theirs = OLMO_CORE.PowerLR(**fields)
    spec = presets.from_olmo_core("PowerLR", t_max=t_max, initial_lr=lr, **fields)
    steps = range(t_max + 1 if d > 0 else t_max)  # a tail of 0 divides by zero at t_max
    assert_same_curve(spec.multiplier, lambda t: theirs.get_lr(lr, t, t_max), steps, scale=lr)


def _olmo_stage(duration: int, shape: str, start: float | None, end: float) -> Any:
    fields: dict[str, Any] = {"duration": duration, "shape": shape, "end_lr_fraction": end}
    if start is not None:
        fields["start_lr_fraction"] = start
    return OLMO_CORE.ComposableSchedulerStage(**fields)


@needs_olmo_core
@given(
    warmup=st.integers(0, 300), stable=st.lists(st.integers(1, 500), min_size=1, max_size=3),
    decay=st.integers(0, 500), init=ratios, floor=ratios,
    warmup_shape=st.sampled_from(["linear", "cosine"]), decay_shape=st.sampled_from(["linear", "cosine"]),
    override=st.one_of(st.none(), st.tuples(st.floats(0.0, 1.0), st.integers(1, 400), ratios,
                                            st.sampled_from(["linear", "cosine"]))),
    as_mappings=st.booleans(),
)  # fmt: skip
@SETTINGS
def test_olmo_core_composable_scheduler_every_step(warmup, stable, decay, init, floor, warmup_shape,
                                                   decay_shape, override, as_mappings):  # fmt: skip
    lr = 3e-4
    assume(init < 1.0 and floor < 1.0)
    stages = [_olmo_stage(warmup, warmup_shape, init, 1.0)] if warmup else []
    stages += [_olmo_stage(n, "linear", None, 1.0) for n in stable]
    stages += [_olmo_stage(decay, decay_shape, None, floor)] if decay else []
    main_end = warmup + sum(stable)
    kwargs: dict[str, Any] = {"stages": stages}
    if override is not None:
        at, duration, end, shape = override
        start = warmup + round(at * sum(stable))
        kwargs["override_decay"] = OLMO_CORE.OverrideDecay(
            start=start, duration=duration, shape=shape, end_lr_fraction=end
        )
    theirs = OLMO_CORE.ComposableScheduler(**kwargs)
    if as_mappings:  # a config read from YAML gives the stages' fields, not OLMo-core's objects
        kwargs = {k: [vars(x) for x in v] if k == "stages" else vars(v) for k, v in kwargs.items()}
    spec = presets.from_olmo_core("ComposableScheduler", t_max=1, initial_lr=lr, **kwargs)
    end = main_end + decay if override is None else start + duration
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "ComposableScheduler ignores t_max"
        assert_same_curve(spec.multiplier, lambda t: theirs.get_lr(lr, t, 1), range(end + 20), scale=lr)


def test_olmo_core_power_and_composable_refusals():
    with pytest.raises(ValueError, match="b must be negative"):
        presets.from_olmo_core("PowerLR", t_max=100, initial_lr=1e-3, warmup=5, b=0.5)
    with pytest.raises(ValueError, match="PowerLR needs warmup >= 1"):
        presets.from_olmo_core("PowerLR", t_max=100, initial_lr=1e-3, warmup=0)
    with pytest.raises(ValueError, match="decay would rise"):  # its tail starts at 1e-3 * 9 ** -1
        presets.from_olmo_core("PowerLR", t_max=100, initial_lr=1e-3, warmup=10, b=-1.0, decay_min_lr=5e-4)
    stage = lambda **f: {"duration": 10, **f}
    up, hold, down = (
        stage(start_lr=0.0, end_lr_fraction=1.0),
        stage(end_lr_fraction=1.0),
        stage(end_lr_fraction=0.1),
    )
    with pytest.raises(ValueError, match=r"stages\[1\] goes from 0.001 to 0.0005"):
        presets.from_olmo_core("ComposableScheduler", t_max=1, initial_lr=1e-3,
                               stages=[up, stage(end_lr_fraction=0.5), hold])  # fmt: skip
    with pytest.raises(ValueError, match=r"stages\[1\] goes from 0.001 to 0.0001"):  # a rise after it
        presets.from_olmo_core("ComposableScheduler", t_max=1, initial_lr=1e-3,
                               stages=[up, down, stage(end_lr_fraction=1.0)])  # fmt: skip
    with pytest.raises(ValueError, match=r"override_decay.start=5 is not at the peak"):
        presets.from_olmo_core("ComposableScheduler", t_max=1, initial_lr=1e-3, stages=[up, hold, down],
                               override_decay={"start": 5, "duration": 10, "end_lr": 0.0})  # fmt: skip
    with pytest.raises(ValueError, match="give end_lr or end_lr_fraction"):
        presets.from_olmo_core("ComposableScheduler", t_max=1, initial_lr=1e-3, stages=[{"duration": 5}])
    with pytest.raises(TypeError, match=r"ComposableScheduler has no fields \['warmup'\]"):
        presets.from_olmo_core("ComposableScheduler", t_max=1, initial_lr=1e-3, stages=[hold], warmup=3)


def test_olmo_core_refusals():
    with pytest.raises(ValueError, match="exactly one of warmup and warmup_fraction"):
        presets.from_olmo_core("WSD", t_max=100, initial_lr=1e-3)
    with pytest.raises(ValueError, match="at most one of decay and decay_fraction"):
        presets.from_olmo_core("WSD", t_max=100, initial_lr=1e-3, warmup=1, decay=5, decay_fraction=0.1)
    with pytest.raises(ValueError, match=r"warmup \(50\) must be <= t_max - decay \(40\)"):
        presets.from_olmo_core("WSD", t_max=100, initial_lr=1e-3, warmup=50, decay=60)
    with pytest.raises(ValueError, match="decay_min_lr must be < initial_lr"):
        presets.from_olmo_core("WSD", t_max=100, initial_lr=1e-3, warmup=5, decay_min_lr=1e-3)
    with pytest.raises(TypeError, match=r"OLMo-core's WSD has no fields \['period_lengths'\]"):
        presets.from_olmo_core("WSD", t_max=100, initial_lr=1e-3, warmup=5, period_lengths=[100])
    with pytest.raises(ValueError, match="name must be one of"):
        presets.from_olmo_core("wsd", t_max=100, initial_lr=1e-3)
    with pytest.raises(ValueError, match="exactly one of decay and decay_fraction"):
        presets.from_olmo_core("WSDS", t_max=100, initial_lr=1e-3, warmup=5, period_lengths=[100])
    with pytest.raises(ValueError, match="one entry per period"):
        presets.from_olmo_core("WSDS", t_max=100, initial_lr=1e-3, warmup=5, decay=5, period_lengths=[50, 50],
                               period_lr_multipliers=[1.0])  # fmt: skip
    with pytest.raises(ValueError, match="period 1 has no decay"):
        presets.from_olmo_core("WSDS", t_max=100, initial_lr=1e-3, warmup=5, decay_fraction=0.1,
                               period_lengths=[50, 5])  # fmt: skip
    with pytest.raises(ValueError, match=r"first period: warmup \(45\) \+ decay \(10\)"):
        presets.from_olmo_core(
            "WSDS", t_max=100, initial_lr=1e-3, warmup=45, decay=10, period_lengths=[50, 50]
        )


# --- MaxText: create_learning_rate_schedule with lr_schedule_type="wsd" ----------------------------


def _maxtext_wsd_like(steps: int, warmup_fraction: float, decay_fraction: float, style: str, final: float):
    """The optax pieces MaxText joins (maxtext/utils/maxtext_utils.py at e591f30): a linear warmup
    from 0, a constant, and a decay that reaches its floor at the schedule's last step: linear over
    D - 1 transitions, or a cosine of pct = step / (D - 1)."""
    optax = pytest.importorskip("optax")
    import jax.numpy as jnp

    lr = 1.0
    warmup, decay = int(steps * warmup_fraction), int(steps * decay_fraction)
    pieces, boundaries = [], []
    if warmup > 0:
        pieces.append(optax.linear_schedule(0.0, lr, warmup))
        boundaries.append(warmup)
    if steps - warmup - decay > 0:
        pieces.append(optax.constant_schedule(lr))
        boundaries.append(steps - decay)
    if decay > 0:
        if style == "linear":
            pieces.append(optax.linear_schedule(lr, lr * final, decay - 1))
        else:
            pct = lambda s: s / (decay - 1) if decay > 1 else 1.0
            pieces.append(lambda s: lr * final + (lr - lr * final) * 0.5 * (jnp.cos(jnp.pi * pct(s)) + 1))
        boundaries.append(steps)
    return optax.join_schedules(pieces, boundaries)


@given(
    steps=st.integers(1, 600), warmup_fraction=st.sampled_from([0.0, 0.01, 0.1, 0.3]),
    decay_fraction=st.sampled_from([0.0, 0.002, 0.1, 0.2, 0.5, 0.7]),
    style=st.sampled_from(["linear", "cosine"]), final=st.sampled_from([0.0, 0.1, 0.5]),
)  # fmt: skip
@settings(max_examples=25, deadline=None)
def test_maxtext_wsd_every_schedule_step(steps, warmup_fraction, decay_fraction, style, final):
    assume(warmup_fraction + decay_fraction <= 1.0)
    assume(not (style == "cosine" and int(steps * decay_fraction) == 1))  # refused, below
    theirs = _maxtext_wsd_like(steps, warmup_fraction, decay_fraction, style, final)
    spec = presets.from_maxtext(steps, warmup_steps_fraction=warmup_fraction,
                                wsd_decay_steps_fraction=decay_fraction, wsd_decay_style=style,
                                learning_rate_final_fraction=final)  # fmt: skip
    values = [float(theirs(s)) for s in range(steps)]
    for s, b in zip(range(steps), values, strict=True):
        assert spec.multiplier(s) == pytest.approx(b, rel=2e-6, abs=1e-7), s  # optax computes in float32


def test_maxtext_refuses_a_one_step_cosine_and_overlong_fractions():
    with pytest.raises(ValueError, match="a cosine decay of one step"):
        presets.from_maxtext(100, wsd_decay_steps_fraction=0.01, wsd_decay_style="cosine")
    with pytest.raises(ValueError, match=r"must not exceed 1\.0"):
        presets.from_maxtext(100, warmup_steps_fraction=0.6, wsd_decay_steps_fraction=0.5)


def _maxtext_source_function(path: str) -> Any:
    """``create_learning_rate_schedule`` from MaxText's own ``maxtext_utils.py`` (not on the package
    index: point ``MAXTEXT_UTILS`` at a checkout's file), executed alone with its two config enums."""
    import ast
    import enum

    import jax.numpy as jnp

    optax = pytest.importorskip("optax")
    tree = ast.parse(Path(path).read_text())
    function = next(
        node
        for node in tree.body
        if isinstance(node, ast.FunctionDef) and node.name == "create_learning_rate_schedule"
    )
    types = SimpleNamespace(
        LearningRateScheduleType=enum.Enum("LearningRateScheduleType", {"COSINE": "cosine", "WSD": "wsd"}),
        WsdDecayStyle=enum.Enum("WsdDecayStyle", {"LINEAR": "linear", "COSINE": "cosine"}),
    )
    namespace: dict[str, Any] = {"optax": optax, "jnp": jnp, "types": types}
    exec(compile(ast.Module(body=[function], type_ignores=[]), path, "exec"), namespace)
    return namespace["create_learning_rate_schedule"], types


@pytest.mark.skipif(
    not os.environ.get("MAXTEXT_UTILS"), reason="MAXTEXT_UTILS (MaxText's maxtext_utils.py) not set"
)
@pytest.mark.parametrize(
    ("steps", "warmup", "decay", "style"),
    [
        (1000, 0.1, 0.2, "linear"),
        (333, 0.05, 0.3, "cosine"),
        (50, 0.0, 1.0, "linear"),
        (120, 0.1, 0.0, "cosine"),
    ],
)
def test_maxtext_wsd_from_its_own_source(steps, warmup, decay, style):
    create, types = _maxtext_source_function(os.environ["MAXTEXT_UTILS"])
    config = SimpleNamespace(
        learning_rate=1.0, learning_rate_final_fraction=0.1, learning_rate_schedule_steps=steps, steps=steps,
        warmup_steps_fraction=warmup, wsd_decay_steps_fraction=decay,
        lr_schedule_type=types.LearningRateScheduleType.WSD, wsd_decay_style=types.WsdDecayStyle(style),
    )  # fmt: skip
    theirs = create(config)
    spec = presets.from_maxtext(steps, warmup_steps_fraction=warmup, wsd_decay_steps_fraction=decay,
                                wsd_decay_style=style, learning_rate_final_fraction=0.1)  # fmt: skip
    for s in range(steps):
        assert spec.multiplier(s) == pytest.approx(float(theirs(s)), rel=2e-6, abs=1e-7), s


def test_a_preset_error_names_the_presets_own_field():
    # before: "init_ratio must satisfy 0 <= value <= 1 ... 0.015 for 1.5%", a field the user never gave
    expected = (
        r"^from_olmo_core: warmup_min_lr / initial_lr gives the spec's init_ratio = 1.5, which .*got 1.5$"
    )
    with pytest.raises(ValueError, match=expected):
        presets.from_olmo_core("WSDS", t_max=3000, initial_lr=1e-3, warmup=100, decay=200,
                               warmup_min_lr=1.5e-3, period_lengths=[1000, 2000],
                               period_lr_multipliers=[2.0, 1.0])  # fmt: skip
    with pytest.raises(
        ValueError, match=r"^from_transformers: min_lr_ratio gives the spec's init_ratio = 1.5"
    ):
        presets.from_transformers(10, 20, num_training_steps=100, min_lr_ratio=1.5)


@pytest.mark.parametrize("name", presets.__all__)
def test_the_presets_of_0_1_still_work_as_classmethods_with_a_warning(name):
    calls: dict[str, tuple[tuple[Any, ...], dict[str, Any]]] = {
        "from_transformers": ((10, 20), {"num_training_steps": 100}),
        "from_torchtitan": ((100,), {"warmup_steps": 10, "decay_ratio": 0.2}),
        "from_pytorch_accelerated": ((100,), {"num_checkpoints": 2, "base_lr": 1e-3}),
        "from_megatron": ((1e-3, 10, 100, 20, "linear"), {"min_lr": 1e-5}),
        "from_olmo_core": (("WSD",), {"t_max": 300, "initial_lr": 1e-3, "warmup": 10, "decay": 20}),
        "from_maxtext": ((1000,), {"wsd_decay_steps_fraction": 0.2}),
        "from_levanter": ((1000,), {"lr_schedule": "linear", "decay": 0.2}),
    }
    args, kwargs = calls[name]
    with pytest.warns(
        DeprecationWarning, match=rf"WSDSpec.{name}\(...\) is deprecated .* use wsd_core.presets.{name}"
    ):
        old = getattr(WSDSpec, name)(*args, **kwargs)
    assert old == getattr(presets, name)(*args, **kwargs)
