"""Every backend against the independent high-precision evaluation of the contract."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from tests.backends import BACKENDS, assert_close, contract_rtol
from tests.reference import reference_curve
from tests.strategies import DECAY_SHAPES, WARMUP_SHAPES, examples, probe_steps, spec_fields
from wsd_core import WSDSpec

EDGE_SPECS: dict[str, dict[str, Any]] = {
    "no-warmup": dict(total_steps=100, decay_steps=20),
    "warmup-only-start": dict(total_steps=100, warmup_steps=1, init_ratio=0.5),
    "decay-zero": dict(total_steps=50, warmup_steps=10, decay_steps=0),
    "decay-whole-run": dict(total_steps=40, decay_steps=40),
    "warmup-overlaps-decay": dict(total_steps=60, warmup_steps=50, decay_steps=30, init_ratio=0.2),
    "warmup-whole-period": dict(total_steps=30, warmup_steps=30, decay_ratio=1.0),
    "one-step": dict(total_steps=1),
    "one-step-decay": dict(total_steps=1, decay_steps=1),
    "default-ratio": dict(total_steps=1234, warmup_steps=17),
    "ratio-one-periods": dict(total_steps=90, checkpoints=[10, 30, 90], decay_ratio=1.0),
    "explicit-checkpoints": dict(
        total_steps=300, checkpoints=[50, 120, 300], warmup_steps=20, decay_steps=15, start_step=0
    ),
    "geometric-checkpoints": dict(total_steps=512, checkpoints=4, decay_ratio=0.25, warmup_steps=8),
    "mixed-zero-decay-periods": dict(total_steps=105, checkpoints=[3, 5, 105], decay_ratio=0.3),
    "start-step": dict(total_steps=80, warmup_steps=10, decay_steps=20, start_step=1000),
    "long-decay": dict(total_steps=100_000, decay_steps=90_000, warmup_steps=1000),
}


def _shapes(fields: dict) -> list[dict]:
    out = []
    for decay, warm in itertools.product(DECAY_SHAPES, WARMUP_SHAPES):
        for r in (0.0, 0.1):
            if decay in ("inverse", "geometric") and r == 0.0:
                continue
            out.append({**fields, "decay_shape": decay, "warmup_shape": warm, "min_ratio": r})
    return out


@pytest.mark.parametrize(("evaluate", "rtol"), BACKENDS)
@pytest.mark.parametrize("name", sorted(EDGE_SPECS))
def test_edges_every_shape_against_contract(evaluate, rtol, name):
    for fields in _shapes(EDGE_SPECS[name]):
        steps = probe_steps({"start_step": 0, **fields})
        if fields["total_steps"] > 5000:  # the long decay: its edges and a sample of the inside
            s0, t, d = 0, fields["total_steps"], fields["decay_steps"]
            steps = [
                0,
                1,
                999,
                1000,
                t - d - 1,
                t - d,
                t - d + 1,
                t - 2,
                t - 1,
                t,
                t + 1,
                *range(t - d, t, 997),
                2**31 - 1,
            ]
            del s0
        actual = evaluate(WSDSpec(**fields), steps)
        assert_close(actual, reference_curve(fields, steps), contract_rtol(rtol, fields), steps)


@pytest.mark.parametrize(("evaluate", "rtol"), BACKENDS)
@given(fields=spec_fields())
@settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_random_specs_against_contract(evaluate, rtol, fields):
    steps = probe_steps(fields)
    expected = reference_curve(fields, steps)
    assert_close(evaluate(WSDSpec(**fields), steps), expected, contract_rtol(rtol, fields), steps)


@pytest.mark.parametrize(("evaluate", "rtol"), BACKENDS)
def test_boundaries_exact_near_int32_max(evaluate, rtol):
    top = 2**31 - 1
    fields: dict[str, Any] = dict(
        total_steps=top,
        checkpoints=[top - 1000, top],
        decay_steps=100,
        decay_shape="linear",
        min_ratio=0.0,
    )
    spec = WSDSpec(**fields)
    b1, c1 = top - 1100, top - 1000
    b2 = top - 100
    steps = [b1 - 1, b1, b1 + 1, c1 - 1, c1, c1 + 1, b2 - 1, b2, b2 + 50, top - 1, top]
    actual = evaluate(spec, steps)
    expected = reference_curve(fields, steps)
    assert_close(actual, expected, rtol, steps)
    assert list(actual[:2]) == [1.0, 1.0] and actual[2] < 1.0
    assert actual[4] == 1.0 and actual[7] == 1.0  # each period restarts and each decay starts at 1


@pytest.mark.parametrize(("evaluate", "rtol"), BACKENDS)
@pytest.mark.parametrize("shape", DECAY_SHAPES)
def test_every_decay_starts_exactly_at_the_peak_in_a_batch(evaluate, rtol, shape):
    # Found by hypothesis: torch computes `number / tensor` as `tensor.reciprocal() * number`, so the
    # inverse shape's r / r at a decay's first step was 1 - 2**-53 in a batch (exact when alone).
    spec = WSDSpec(
        45, checkpoints=[2, 43, 45], decay_steps=2, decay_shape=shape, min_ratio=0.04133727275582344
    )
    steps = list(range(-2, 50))
    m = dict(zip(steps, evaluate(spec, steps).tolist(), strict=True))
    assert spec.decay_starts == (0, 41, 43)
    assert [m[b] for b in spec.decay_starts] == [1.0, 1.0, 1.0]
