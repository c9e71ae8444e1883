"""Properties of the contract that hold for every valid spec, on every backend."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from tests.backends import BACKENDS
from tests.reference import decay_lengths, period_ends
from tests.strategies import examples, spec_fields
from wsd_core import WSDSpec

SETTINGS = settings(max_examples=examples(80), deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _slack(rtol: float) -> float:
    # float32 backends may differ from exact monotonicity by rounding; float64 ones must not.
    return 4e-7 if rtol > 1e-9 else 0.0


@pytest.mark.parametrize(("evaluate", "rtol"), BACKENDS)
@given(fields=spec_fields())
@SETTINGS
def test_shape_properties(evaluate, rtol, fields):
    spec = WSDSpec(**fields)
    s0, total, w = fields["start_step"], fields["total_steps"], fields["warmup_steps"]
    steps = [*range(s0 - 2, s0 + total + 3), s0 + 50 * total, 2**31 - 1]
    m = dict(zip(steps, evaluate(spec, steps), strict=True))
    values = np.array(list(m.values()))
    slack = _slack(rtol)

    # finite, and inside [min(init_ratio, min_ratio), 1]
    assert np.isfinite(values).all()
    low = min(fields["init_ratio"], fields["min_ratio"])
    bound = low
    if rtol > 1e-9:  # float32: the bound as the dtype rounds it; XLA on CPU flushes subnormals to 0
        bound = float(np.float32(low))
        bound = 0.0 if bound < np.finfo(np.float32).tiny else bound
    assert values.min() >= bound and values.max() <= 1.0

    # non-decreasing during warmup
    warm = [m[s0 + u] for u in range(w)]
    assert all(b >= a - slack for a, b in itertools.pairwise(warm))

    ends = period_ends(total, fields["checkpoints"])
    lengths = decay_lengths(ends, fields.get("decay_steps"), fields.get("decay_ratio"))
    for i, (c, d) in enumerate(zip(ends, lengths, strict=True)):
        start = max(c - d, w)
        last = total + 2 if i == len(ends) - 1 else c - 1  # the last decay holds its floor after T
        seg = [m[s0 + u] for u in range(start, last + 1)]
        # non-increasing inside each decay
        assert all(b <= a + slack for a, b in itertools.pairwise(seg)), (i, seg)
        # back to the peak at each period start (after the first period)
        if i > 0:
            assert m[s0 + ends[i - 1]] == 1.0
    # at and past the end: the floor r (1 when the last period has no decay)
    floor_value = 1.0 if lengths[-1] == 0 else fields["min_ratio"]
    for s in (s0 + total, s0 + 50 * total, 2**31 - 1):
        if total > w or lengths[-1] == 0:
            assert m[s] == pytest.approx(floor_value, rel=rtol, abs=1e-38)
