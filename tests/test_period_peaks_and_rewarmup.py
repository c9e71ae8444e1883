"""A peak per WSD-S period (``period_peaks``) and a rewarmup between periods (``rewarmup_steps``):
against the contract's reference, against the curve Levanter builds with optax for its ``rewarmup``,
and through validation, branching, companions and the ``wsd`` command."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tests.backends import BACKENDS, assert_close
from tests.reference import reference_curve, reference_stable_fraction
from wsd_core import WSDSpec
from wsd_core.cli import main as wsd_main

FAMILY = [
    # OLMo-core-style decreasing peaks, a rewarmup, and every decay shape
    *(
        {"total_steps": 600, "warmup_steps": 30, "decay_steps": 40, "checkpoints": [200, 400, 600],
         "period_peaks": [1.0, 0.5, 0.25], "rewarmup_steps": 25, "decay_shape": shape, "min_ratio": 0.05}
        for shape in ("linear", "cosine", "1-sqrt", "inverse", "exponential", "geometric")
    ),
    # peaks above 1, a cosine rewarmup, a period without decay (its rewarmup falls from its peak)
    {"total_steps": 300, "decay_ratio": 0.2, "checkpoints": [50, 100, 300], "period_peaks": [2.0, 0.5, 1.5],
     "rewarmup_steps": 10, "rewarmup_shape": "cosine", "min_ratio": 0.1},
    {"total_steps": 90, "decay_steps": 0, "checkpoints": [30, 60, 90], "period_peaks": [1.0, 0.2, 0.6],
     "rewarmup_steps": 7, "min_ratio": 0.0},
    # a warmup down to a small first peak, and a tiny floor under the geometric shape
    {"total_steps": 100, "warmup_steps": 20, "init_ratio": 1.0, "decay_steps": 10, "checkpoints": [50, 100],
     "period_peaks": [1e-3, 1e-2], "rewarmup_steps": 5, "decay_shape": "geometric", "min_ratio": 1e-4},
]  # fmt: skip


@pytest.mark.parametrize(("evaluate", "rtol"), BACKENDS)
@pytest.mark.parametrize("fields", FAMILY, ids=range(len(FAMILY)))
def test_every_backend_follows_the_contract(evaluate, rtol, fields):
    spec = WSDSpec(**fields)
    s0, total = spec.start_step, spec.total_steps
    steps = [-1, *range(s0, s0 + total + 2), 10 * total]
    assert_close(evaluate(spec, steps), reference_curve(fields, steps), rtol, steps)


@pytest.mark.parametrize(("evaluate", "rtol"), BACKENDS)
def test_peaks_of_one_and_no_rewarmup_give_todays_curve_bit_for_bit(evaluate, rtol):
    base: dict[str, Any] = {
        "total_steps": 500,
        "warmup_steps": 20,
        "decay_ratio": 0.2,
        "checkpoints": 3,
        "min_ratio": 0.01,
    }
    steps = list(range(-2, 520))
    today = evaluate(WSDSpec(**base), steps)
    same = WSDSpec(**base, period_peaks=(1.0, 1.0, 1.0), rewarmup_steps=0)
    np.testing.assert_array_equal(evaluate(same, steps), today)


def test_a_rewarmup_is_the_curve_levanter_builds_with_optax():
    # Levanter's OptimizerConfig.lr_scheduler (levanter/optim/config.py) with cycles, rewarmup and a
    # linear decay joins, per cycle: optax.linear_schedule(previous_end, lr, rewarmup), a constant
    # stable phase and optax.linear_schedule(lr, min_lr, decay); the first cycle warms up from 0.
    optax = pytest.importorskip("optax")
    lr, ratio, ends, warmup, rewarmup, decay = 1e-2, 0.2, [400, 1000, 1500], 40, 30, 100
    pieces, boundaries, start, previous_end = [], [], 0, 0.0
    for cycle, end in enumerate(ends):
        rise = warmup if cycle == 0 else rewarmup
        pieces.append(optax.linear_schedule(previous_end, lr, rise))
        boundaries.append(start + rise)
        pieces.append(optax.constant_schedule(lr))
        boundaries.append(end - decay)
        pieces.append(optax.linear_schedule(lr, lr * ratio, decay))
        boundaries.append(end)
        start, previous_end = end, lr * ratio
    levanter = optax.join_schedules(pieces, boundaries[:-1])
    spec = WSDSpec(1500, warmup_steps=warmup, decay_steps=decay, decay_shape="linear", min_ratio=ratio,
                   checkpoints=ends, rewarmup_steps=rewarmup)  # fmt: skip
    steps = np.arange(0, 1500)
    theirs = np.asarray([float(levanter(int(s))) for s in steps])
    ours = np.asarray([lr * spec.multiplier(int(s)) for s in steps])
    np.testing.assert_allclose(ours, theirs, rtol=1e-5)  # optax computes in float32
    assert spec.multiplier(400) == ratio and spec.multiplier(430) == 1.0  # the first and last values


def test_each_period_decays_from_its_own_peak_to_the_common_floor():
    spec = WSDSpec(300, decay_steps=50, decay_shape="linear", checkpoints=[100, 200, 300],
                   period_peaks=[1.0, 0.6, 0.3], min_ratio=0.1)  # fmt: skip
    assert [spec.multiplier(t) for t in (0, 50, 100, 150, 200, 250)] == [1.0, 1.0, 0.6, 0.6, 0.3, 0.3]
    assert spec.multiplier(175) == pytest.approx(0.35)  # halfway from 0.6 to 0.1
    assert spec.multiplier(300) == 0.1
    assert spec.phase(150).multiplier == 0.6


def test_phases_name_the_rewarmup():
    spec = WSDSpec(300, decay_steps=50, checkpoints=[100, 300], rewarmup_steps=20)
    assert spec.phase(100).name == "rewarmup" and spec.phase(100).progress == 0.0
    assert spec.phase(110).progress == 0.5
    assert spec.phase(120).name == "stable"
    assert "rewarmup  1       100         119" in spec.phase_table()


def test_a_companion_cools_with_the_decay_and_recovers_with_the_rewarmup():
    fields: dict[str, Any] = {"total_steps": 200, "decay_steps": 20, "decay_shape": "linear",
                              "checkpoints": [100, 200], "period_peaks": [1.0, 0.5], "rewarmup_steps": 10,
                              "min_ratio": 0.1}  # fmt: skip
    spec = WSDSpec(**fields)
    h = [spec.stable_fraction(t) for t in range(200)]
    assert h[79] == 1.0 and h[90] == pytest.approx(0.5) and h[100] == 0.0
    assert h[105] == pytest.approx(0.5) and h[110] == 1.0 and h[190] == pytest.approx(0.5)
    expected = [reference_stable_fraction(t, **fields) for t in range(200)]
    np.testing.assert_allclose(h, expected, rtol=0, atol=1e-15)


@pytest.mark.parametrize(
    ("fields", "error", "match"),
    [
        ({"checkpoints": [50, 100], "period_peaks": [1.0]}, ValueError, "one peak per period: 2 periods"),
        ({"period_peaks": [0.0]}, ValueError, r"period_peaks\[0\] must be > 0"),
        ({"period_peaks": [0.05], "min_ratio": 0.1}, ValueError, r"period_peaks\[0\] must be >= min_ratio"),
        ({"period_peaks": [float("nan")]}, ValueError, r"period_peaks\[0\] must be finite"),
        ({"period_peaks": 0.5}, TypeError, "period_peaks must be None or a sequence"),
        ({"period_peaks": []}, ValueError, "must not be empty"),
        ({"period_peaks": [True]}, TypeError, r"period_peaks\[0\] must be a real number"),
        (
            {"checkpoints": [80, 100], "rewarmup_steps": 21},
            ValueError,
            "rewarmup_steps must be <= the length",
        ),
        ({"rewarmup_steps": -1}, ValueError, "rewarmup_steps must be an int >= 0"),
        ({"rewarmup_shape": "sqrt"}, ValueError, "rewarmup_shape must be one of"),
    ],
)
def test_bad_values_name_the_field(fields, error, match):
    with pytest.raises(error, match=match):
        WSDSpec(100, **fields)


def test_a_rewarmup_that_leaves_no_stable_phase_warns(caplog):
    WSDSpec(100, decay_steps=10, checkpoints=[50, 100], rewarmup_steps=45)
    assert "rewarmup_steps=45 leaves a period with no stable phase" in caplog.text


def test_branches_and_continuations_keep_the_period_peak():
    spec = WSDSpec(300, decay_steps=50, checkpoints=[100, 300], period_peaks=[1.0, 0.4], min_ratio=0.1)
    branch = spec.branch_cooldown(200, 40)
    assert branch.multiplier(200) == 0.4 and branch.multiplier(240) == 0.1
    continued = spec.continue_from(300, total_steps=100, decay_steps=10)
    assert continued.period_peaks == (0.4,) and continued.multiplier(300) == 0.4
    chosen = spec.continue_from(300, total_steps=100, period_peaks=[0.2])
    assert chosen.multiplier(300) == 0.2
    assert spec.extend(500, at_step=150).period_peaks == (1.0, 0.4)


def test_the_fields_round_trip_through_to_dict():
    spec = WSDSpec(
        100, checkpoints=[50, 100], period_peaks=(1.0, 0.5), rewarmup_steps=5, rewarmup_shape="cosine"
    )
    data = spec.to_dict()
    assert data["period_peaks"] == [1.0, 0.5]
    assert WSDSpec.from_dict(data) == spec


def test_the_wsd_command_takes_the_new_flags(capsys):
    argv = ["table", "--total-steps", "1000", "--checkpoints", "400", "1000", "--decay-steps", "100",
            "--period-peaks", "1", "0.5", "--rewarmup-steps", "20", "--min-ratio", "0.1"]  # fmt: skip
    assert wsd_main(argv) == 0
    assert "rewarmup  1       400         419        20     0.1 -> 0.48" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        wsd_main([*argv[:-1], "0.9"])
    assert exit_info.value.code == 2
    assert "argument --period-peaks: period_peaks[1] must be >= min_ratio" in capsys.readouterr().err
    assert wsd_main(["table", "--total-steps", "1000000", "--units", "tokens"]) == 0
    out = capsys.readouterr().out
    assert "first token  last token  tokens" in out and "900000       999999" in out
