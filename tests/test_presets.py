"""WSDSpec.from_<peer> against the peers' own scheduler code: every step, float64 up to rounding.

Peers that are not installed (transformers, pytorch_accelerated: the ``peers`` extra) or whose wheel
was not downloaded (torchtitan, Megatron-LM: see tests/peers.py) make their tests skip.
"""

from __future__ import annotations

import math
import warnings

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tests import peers
from wsd_core import WSDSpec

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ULPS = 4 * 2.0**-52  # the peers' literal formulas round to a few ulps of 1 near a floor of 0


def assert_same_curve(ours, theirs, steps, scale=1.0):
    for s in steps:
        a, b = scale * ours(s), theirs(s)
        assert abs(a - b) <= 1e-12 * abs(b) + ULPS * scale, f"step {s}: ours {a!r}, peer {b!r}"


ratios = st.sampled_from([0.0, 0.1, 0.5, 1e-3, 1.0])


# --- transformers ---------------------------------------------------------------------------------

needs_transformers = pytest.mark.skipif(not peers.installed("transformers"), reason="transformers missing")


@needs_transformers
@given(
    total=st.integers(1, 1500), warmup=st.integers(0, 300), decay=st.integers(0, 800),
    warmup_type=st.sampled_from(["linear", "cosine"]),
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
    spec = WSDSpec.from_transformers(warmup, decay, **kwargs)
    # past the end they agree too, except with no decay (transformers drops to min_lr_ratio at T)
    end = total + 5 if decay > 0 else total
    assert_same_curve(spec.multiplier, theirs, range(end))


def test_transformers_refusals():
    with pytest.raises(ValueError, match="num_cycles"):
        WSDSpec.from_transformers(10, 10, num_training_steps=100, num_cycles=1.0)
    with pytest.raises(ValueError, match="1-sqrt"):
        WSDSpec.from_transformers(10, 10, num_training_steps=100, warmup_type="1-sqrt")
    with pytest.raises(ValueError, match="num_training_steps or num_stable_steps"):
        WSDSpec.from_transformers(10, 10)
    with pytest.raises(ValueError, match="num_warmup_steps"):
        WSDSpec.from_transformers(200, 10, num_training_steps=100)
    with pytest.raises(ValueError, match="before the first update"):
        WSDSpec.from_transformers(0, 101, num_training_steps=100)
    with pytest.warns(UserWarning, match="num_stable_steps will be used"):
        spec = WSDSpec.from_transformers(10, 20, num_training_steps=999, num_stable_steps=70)
    assert spec.total_steps == 100


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
        spec = WSDSpec.from_torchtitan(total, warmup, decay_ratio, decay_type, r)
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
    spec = WSDSpec.from_torchtitan(100, 10, 0.2)
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
    spec = WSDSpec.from_torchtitan(total, warmup, decay_ratio, shape, r, legacy=True)
    assert_same_curve(
        spec.multiplier,
        lambda s: _torchtitan_legacy_factor(s, total, warmup, decay, shape, r),
        range(total + 5),
    )


def test_torchtitan_legacy_refuses_a_decay_before_the_first_update():
    with pytest.raises(ValueError, match="before the first update"):
        WSDSpec.from_torchtitan(100, warmup_steps=0, legacy=True)


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
    spec = WSDSpec.from_pytorch_accelerated(
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
    assert WSDSpec.from_pytorch_accelerated(100_000, num_checkpoints=2, base_lr=1.0).period_ends == (
        25_000,
        50_000,
    )
    assert WSDSpec(100_000, checkpoints=2).period_ends == (50_000, 100_000)  # the contract's own
    with pytest.raises(ValueError, match="first checkpoint"):
        WSDSpec.from_pytorch_accelerated(3, num_checkpoints=2, base_lr=1.0)
    with pytest.raises(ValueError, match="Only num_epochs"):
        WSDSpec.from_pytorch_accelerated(10, num_epochs=2, num_update_steps_per_epoch=5, base_lr=1.0)
    assert (
        WSDSpec.from_pytorch_accelerated(num_epochs=2, num_update_steps_per_epoch=50, base_lr=1.0).total_steps
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
    spec = WSDSpec.from_megatron(
        max_lr, warmup, total, decay, style, min_lr=min_frac * max_lr, init_lr=init_frac * max_lr
    )

    def megatron_lr(n):
        theirs.num_steps = n
        return theirs.get_lr({})

    assume(decay > 0)  # with no anneal window Megatron divides by zero at its last step
    assert_same_curve(spec.multiplier, megatron_lr, range(total + 5), scale=max_lr)


def test_megatron_refusals():
    with pytest.raises(ValueError, match="lr_warmup_steps"):
        WSDSpec.from_megatron(1e-3, 900, 1000, 200)
    with pytest.raises(ValueError, match="lr_decay_style"):
        WSDSpec.from_megatron(1e-3, 10, 1000, 200, lr_decay_style="cosine")
    with pytest.raises(ValueError, match="min_lr"):
        WSDSpec.from_megatron(1e-3, 10, 1000, 200, min_lr=2e-3)
    with pytest.raises(ValueError, match="lr_wsd_decay_style"):
        WSDSpec.from_megatron(1e-3, 10, 1000, 200, "sqrt")
