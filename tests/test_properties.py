"""Properties of the contract that hold for every valid spec, on every backend."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings

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
@example(fields={"total_steps": 8, "checkpoints": [1, 8], "decay_steps": 0, "warmup_steps": 0,
                 "decay_shape": "polynomial", "warmup_shape": "linear", "init_ratio": 1.0,
                 "min_ratio": 0.1111111111111111, "decay_power": 2.0, "start_step": 0,
                 "stable_power": -1.0})  # fmt: skip
@SETTINGS
def test_shape_properties(evaluate, rtol, fields):
    spec = WSDSpec(**fields)
    s0, total, w = fields["start_step"], fields["total_steps"], fields["warmup_steps"]
    steps = [*range(s0 - 2, s0 + total + 3), s0 + 50 * total, 2**31 - 1]
    m = dict(zip(steps, evaluate(spec, steps), strict=True))
    values = np.array(list(m.values()))
    slack = _slack(rtol)

    ends = period_ends(total, fields["checkpoints"])
    lengths = decay_lengths(ends, fields.get("decay_steps"), fields.get("decay_ratio"))
    peaks = fields.get("period_peaks") or [1.0] * len(ends)
    a, r, n = fields["init_ratio"], fields["min_ratio"], fields.get("rewarmup_steps", 0)
    b, tau = fields.get("stable_power", 0.0), fields.get("stable_scale") or max(w, 1)
    # the stable value of period i at local step u: its peak, or the peak times the power's factor
    stable = lambda i, u: peaks[i] * ((min(max(u, w), total) - w) / tau + 1) ** b

    # finite, and inside [min(init_ratio, min_ratio, where a power stable phase comes to), the highest
    # peak (or init_ratio if higher)]
    assert np.isfinite(values).all()
    # (where a power phase comes to is computed here by Python's pow, by the backends through log1p
    # and exp: the two may differ in the last few bits, e.g. 9 ** -1 and the backends' 1/9 - 1 ulp)
    low = min(a, r, *(stable(i, c) * (1 - 4 * np.finfo(np.float64).eps) for i, c in enumerate(ends)))
    bound = low
    if rtol > 1e-9:  # float32: the bound as the dtype rounds it; XLA on CPU flushes subnormals to 0
        bound = float(np.float32(low))
        bound = 0.0 if bound < np.finfo(np.float32).tiny else bound
    top = max(*peaks, a if w > 0 else 0.0)
    assert values.min() >= bound and values.max() <= top * (1 + slack)

    # monotone during warmup, towards the first peak
    warm = [m[s0 + u] for u in range(w)]
    sign = 1 if a <= peaks[0] else -1
    assert all(sign * (b - a_) >= -slack for a_, b in itertools.pairwise(warm))

    for i, (c, d) in enumerate(zip(ends, lengths, strict=True)):
        first = 0 if i == 0 else ends[i - 1]
        rising = w if i == 0 else n  # a warmup or rewarmup wins over the decay
        start = max(c - d, first + rising)
        last = total + 2 if i == len(ends) - 1 else c - 1  # the last decay holds its floor after T
        seg = [m[s0 + u] for u in range(start, last + 1)]
        # non-increasing inside each decay
        assert all(b <= a_ + slack for a_, b in itertools.pairwise(seg)), (i, seg)
        if i > 0:
            # each later period starts at its peak, or where the last ended if it rewarms
            came_from = r if lengths[i - 1] > 0 else stable(i - 1, first)
            expected = came_from if n > 0 else stable(i, first)
            assert m[s0 + first] == pytest.approx(expected, rel=max(rtol, slack), abs=1e-38)
            rise = [m[s0 + u] for u in range(first, first + n)]
            sign = 1 if came_from <= stable(i, first + n) else -1
            assert all(sign * (y - x) >= -slack * peaks[i] for x, y in itertools.pairwise(rise))
            if n < c - first - d:  # a stable phase follows the rewarmup: at the period's stable value
                assert m[s0 + first + n] == pytest.approx(stable(i, first + n), rel=max(rtol, slack))
    # at and past the end: the floor r (the last stable value when the last period has no decay)
    floor_value = stable(len(ends) - 1, total) if lengths[-1] == 0 else r
    for s in (s0 + total, s0 + 50 * total, 2**31 - 1):
        if total > w or lengths[-1] == 0:
            assert m[s] == pytest.approx(floor_value, rel=rtol, abs=1e-38)
