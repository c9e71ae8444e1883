"""The cooldown planner: the laws against a direct evaluation of the papers' formulas, the fit on
synthetic curves it must recover, and the published protocol's targets on the shipped real curves."""

from __future__ import annotations

import dataclasses
import re
import warnings
from typing import Any

import numpy as np
import pytest

from tests.backends import enable_x64
from wsd_core import WSDSpec

jax = pytest.importorskip("jax")

from wsd_plan import (  # noqa: E402
    LossLawFit,
    LossRun,
    curve_metrics,
    fit_loss_law,
    learning_rates,
    plan_cooldown,
)
from wsd_plan import published as lc  # noqa: E402
from wsd_plan._uncertainty import LAW_ERROR_BASE  # noqa: E402

# --- an independent evaluation of the two laws: the papers' sums written as plain loops -----------


def direct_multi_power(params, lrs, steps, warmup):
    """The Multi-Power Law exactly as printed: LD(t) = B sum_k (eta_{k-1} - eta_k) G(eta_k^-gamma S_k(t))."""
    L0, A, alpha, B, C, beta, gamma = (params[k] for k in ("L0", "A", "alpha", "B", "C", "beta", "gamma"))
    out = []
    for t in steps:
        area = lrs[: t + 1].sum() - lrs[warmup]  # S_W + sum_{tau=1..t}, tau counted after the warmup
        ld = 0.0
        for k in range(warmup + 1, t + 1):
            drop = lrs[k - 1] - lrs[k]
            if drop != 0.0:
                s_k = lrs[k : t + 1].sum()
                ld += drop * (1.0 - (C * lrs[k] ** (-gamma) * s_k + 1.0) ** (-beta))
        out.append(L0 + A * area ** (-alpha) - B * ld)
    return np.array(out)


def direct_annealing(params, lrs, steps, warmup, decay=0.999):
    m, s2, out = 0.0, 0.0, []
    s2_at = {}
    for i in range(lrs.size):
        if i > warmup:
            m = decay * m + (lrs[i - 1] - lrs[i])
        s2 += m
        s2_at[i] = s2
    for t in steps:
        area = lrs[: t + 1].sum() - lrs[warmup]
        out.append(params["L0"] + params["A"] * area ** (-params["alpha"]) - params["C"] * s2_at[t])
    return np.array(out)


MPL_PARAMS: dict[str, Any] = dict(L0=3.0, A=0.5, alpha=0.5, B=400.0, C=2.0, beta=0.6, gamma=0.6)


@pytest.mark.parametrize("name", ["cosine_24000", "wsd_20000_24000", "wsdcon_3", "constant_24000"])
def test_multi_power_matches_the_direct_sum(name):
    # The fast evaluation groups distant drops into blocks (see _features.py); against the exact sum
    # the relative difference must stay below 1e-6 of the loss.
    lrs = lc.published_rates(name)
    steps = np.array([2200, 2500, 4000, 9000, 16000, 20100, 21000, 23900])
    steps = steps[steps < lrs.size]
    fit = LossLawFit("multi-power", MPL_PARAMS, {}, 0.0)
    got = fit.predict(lrs, steps, warmup_steps=lc.WARMUP)
    want = direct_multi_power(MPL_PARAMS, lrs, steps, lc.WARMUP)
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_annealing_matches_the_direct_recurrence():
    params = dict(L0=3.0, A=0.5, alpha=0.5, C=0.4)
    lrs = lc.published_rates("wsdld_20000_24000")
    steps = np.array([2200, 10000, 20000, 20001, 22000, 23999])
    fit = LossLawFit("annealing", params, {}, 0.0)
    got = fit.predict(lrs, steps, warmup_steps=lc.WARMUP)
    np.testing.assert_allclose(got, direct_annealing(params, lrs, steps, lc.WARMUP), rtol=1e-10)


def test_the_law_is_differentiable_and_finite():
    from wsd_plan.laws import features, multi_power, on_device

    lrs = lc.published_rates("cosine_24000")
    with enable_x64():
        f = on_device(features(lrs, np.arange(2200, 24000, 500), lc.WARMUP))
        theta = jax.numpy.log(jax.numpy.asarray(list(MPL_PARAMS.values())))
        grad = jax.grad(lambda t: multi_power(t, f).sum())(theta)
    assert np.isfinite(np.asarray(grad)).all() and (np.abs(np.asarray(grad)) > 0).all()


# --- the fit recovers a law it is given -------------------------------------------------------------


def _synthetic(name, params=MPL_PARAMS):
    lrs = lc.published_rates(name)
    steps = np.arange(2176, lrs.size, 256)
    return LossRun(lrs, steps, direct_multi_power(params, lrs, steps, lc.WARMUP), lc.WARMUP, name)


@pytest.mark.slow
def test_fit_recovers_a_synthetic_multi_power_law():
    runs = [_synthetic(n) for n in ("constant_24000", "cosine_24000", "wsdcon_9")]
    fit = fit_loss_law(runs, "multi-power")
    assert fit.fit_error["WorstE"] < 2e-4
    held_out = _synthetic("wsd_20000_24000")
    assert curve_metrics(fit.predict_run(held_out), held_out.losses)["WorstE"] < 5e-4
    again = fit_loss_law(runs, "multi-power")
    assert again.params == fit.params  # deterministic


# --- the shipped data ----------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["lm-25M", "lm-100M"])
@pytest.mark.parametrize("name", lc.PAPER_FIT + lc.PAPER_PREDICT)
def test_shipped_rates_match_the_logged_ones(model, name):
    steps, logged, _ = lc.read_published(model, name)
    np.testing.assert_allclose(lc.published_rates(name)[steps], logged, rtol=2e-3)


@pytest.mark.parametrize(
    ("name", "spec"),
    [
        (
            "cosine_24000",
            WSDSpec(24000, warmup_steps=2160, decay_steps=21840, decay_shape="cosine", min_ratio=0.1),
        ),
        (
            "wsd_20000_24000",
            WSDSpec(24000, warmup_steps=2160, decay_steps=4000, decay_shape="geometric", min_ratio=0.1),
        ),
        (
            "wsdld_20000_24000",
            WSDSpec(24000, warmup_steps=2160, decay_steps=4000, decay_shape="linear", min_ratio=0.1),
        ),
    ],
)
def test_the_data_schedules_are_wsd_specs(name, spec):
    # After the warmup (the data's is linspace(0, peak, W), ours reaches the peak one step later).
    np.testing.assert_allclose(
        learning_rates(spec, 24000, peak=lc.PEAK)[lc.WARMUP :],
        lc.published_rates(name)[lc.WARMUP :],
        rtol=1e-12,
    )


RUNS = {model: lc.published_runs(model) for model in lc.MODELS}
_FITS: dict = {}


def _fit(model, law, names):
    key = (model, law, names)
    if key not in _FITS:
        _FITS[key] = fit_loss_law([RUNS[model][n] for n in names], law)
    return _FITS[key]


def protocol(model, law):
    """Mean PredE and WorstE over the six predicted runs (the data README's metrics)."""
    metrics = _fit(model, law, lc.PAPER_FIT).evaluate([RUNS[model][n] for n in lc.PAPER_PREDICT])
    return (
        float(np.mean([m["PredE"] for m in metrics.values()])),
        float(np.mean([m["WorstE"] for m in metrics.values()])),
    )


# The published figures (Luo et al., Table in the data README): PredE, WorstE.
PAPER = {"lm-25M": (0.00110, 0.00409), "lm-100M": (0.00142, 0.00583)}


# The paper's published parameters at full precision: `PARAMS` in `src/config.py` of its repository
# (thu-yao-01-luo/MultiPowerLaw at 8da9f19). Fit in its code's convention, which counts the warmup's
# rises as negative drops in LD: warmup_steps=0 here.
PUBLISHED = {
    "lm-25M": dict(L0=3.04045406, A=0.52468604, alpha=0.50786857, B=363.78751622, C=2.06560812,
                   beta=0.58279013, gamma=0.64142257),
    "lm-100M": dict(L0=2.6514477, A=0.60115152, alpha=0.45295811, B=437.9464276, C=2.13245612,
                    beta=0.59785199, gamma=0.65523644),
}  # fmt: skip


def published_scores(model, params):
    runs = [dataclasses.replace(RUNS[model][n], warmup_steps=0) for n in lc.PAPER_PREDICT]
    metrics = LossLawFit("multi-power", params, {}, 0.0).evaluate(runs)
    return np.mean([m["PredE"] for m in metrics.values()]), np.mean([m["WorstE"] for m in metrics.values()])


@pytest.mark.parametrize("model", ["lm-25M", "lm-100M"])
def test_the_published_parameters_reproduce_the_published_table(model):
    # An independent check of the law, the data's schedules and the metrics together: the paper's own
    # parameters give the paper's own figures here, to the table's last printed digit.
    pred, worst = published_scores(model, PUBLISHED[model])
    assert pred == pytest.approx(PAPER[model][0], abs=5e-6)
    assert worst == pytest.approx(PAPER[model][1], abs=5e-6)


@pytest.mark.parametrize("model", ["lm-25M", "lm-100M"])
def test_the_published_mean_error_hangs_on_the_fourth_digit_of_L0(model):
    # How fine the target is: the parameters as the paper's README prints them (three decimals) score
    # 5-9% worse; L0 alone, moved by 1.5e-4 of itself (25M) or 1.7e-4 (100M), does 6-8%.
    rounded = {k: round(v, 3) for k, v in PUBLISHED[model].items()}
    only_l0 = {**PUBLISHED[model], "L0": rounded["L0"]}
    pred = published_scores(model, PUBLISHED[model])[0]
    assert 1.04 * pred < published_scores(model, rounded)[0] < 1.10 * pred
    assert 1.05 * pred < published_scores(model, only_l0)[0] < 1.10 * pred


@pytest.mark.slow
@pytest.mark.parametrize("model", ["lm-25M", "lm-100M"])
def test_paper_protocol_worst_error_meets_the_paper(model):
    _, worst = protocol(model, "multi-power")
    assert worst <= PAPER[model][1]


@pytest.mark.slow
@pytest.mark.parametrize("model", ["lm-25M", "lm-100M"])
@pytest.mark.xfail(
    strict=True,
    reason="target missed: the exact minimum of the published objective predicts cosine_72000 worse "
    "than the paper's early-stopped fit (see benchmarks/ANALYSIS.md, section 7)",
)
def test_paper_protocol_mean_error_meets_the_paper(model):
    pred, _ = protocol(model, "multi-power")
    assert pred <= PAPER[model][0]


@pytest.mark.slow
@pytest.mark.parametrize(("model", "bound"), [("lm-25M", 0.0015), ("lm-100M", 0.0019)])
def test_paper_protocol_mean_error_does_not_regress(model, bound):
    # What the fit reaches today (0.00136 and 0.00174), with a little room: it must not get worse.
    pred, _ = protocol(model, "multi-power")
    assert pred <= bound


@pytest.mark.slow
@pytest.mark.parametrize("model", ["lm-25M", "lm-100M"])
@pytest.mark.parametrize("law", ["multi-power", "annealing"])
def test_wsd_protocol_meets_its_targets(model, law):
    # Fit a trunk and one cooldown; predict another cooldown shape's final loss within 0.2%, and the
    # other runs with a mean PredE <= 0.0025.
    fit = _fit(model, law, ("constant_24000", "wsd_20000_24000"))
    linear = RUNS[model]["wsdld_20000_24000"]
    assert abs(fit.predict_run(linear)[-1] / linear.losses[-1] - 1) <= 0.002
    others = [n for n in lc.PAPER_FIT + lc.PAPER_PREDICT if n not in ("constant_24000", "wsd_20000_24000")]
    metrics = fit.evaluate([RUNS[model][n] for n in others])
    assert np.mean([m["PredE"] for m in metrics.values()]) <= 0.0025


# --- plan_cooldown ------------------------------------------------------------------------------


@pytest.mark.slow
def test_plan_ranks_cooldowns_off_a_trunk_and_predicts_the_measured_ones():
    fit = _fit("lm-25M", "multi-power", ("constant_24000", "wsd_20000_24000"))
    trunk = WSDSpec(72000, warmup_steps=2160, decay_steps=0)
    plan = plan_cooldown(
        fit,
        trunk,
        peak=lc.PEAK,
        at_steps=[16000, 20000],
        lengths=[2000, 4000],
        shapes=["linear", "geometric", "1-sqrt"],
        min_ratios=[0.1],
    )
    assert len(plan.candidates) == 12 and plan.level == 0.9
    assert plan.end_steps == (18000, 20000, 22000, 24000)
    for end in plan.end_steps:  # ranked within each end step, never across
        ranked = plan.ranking(end)
        assert {c.end_step for c in ranked} == {end}
        assert [c.final_loss for c in ranked] == sorted(c.final_loss for c in ranked)
    frontier = [c.final_loss for c in plan.frontier()]
    assert frontier == sorted(frontier, reverse=True)  # each extra step of compute buys a lower loss
    best = plan.best
    assert best is plan.best_for(24000)
    assert best.spec == trunk.branch_cooldown(
        best.at_step, best.length, decay_shape=best.shape, min_ratio=0.1
    )
    assert best.end_step == 24000  # longer runs end lower
    for shape, name in (("geometric", "wsd_20000_24000"), ("linear", "wsdld_20000_24000")):
        (c,) = [c for c in plan.candidates if (c.at_step, c.length, c.shape) == (20000, 4000, shape)]
        # The candidate is the measured run's schedule (up to the warmup's last step): same final loss.
        same_run = fit.predict(lc.published_rates(name), [23999], warmup_steps=lc.WARMUP)[0]
        assert c.final_loss == pytest.approx(same_run, rel=1e-5)
        # the candidate's curve is the law's prediction of that schedule
        rates = (
            learning_rates(trunk, 20000, peak=lc.PEAK).tolist()
            + learning_rates(c.spec, 24000, peak=lc.PEAK)[20000:].tolist()
        )
        np.testing.assert_allclose(
            c.predicted, fit.predict(np.array(rates), c.steps, warmup_steps=2160), rtol=1e-9
        )
    table = plan.table()
    assert "-- runs of 24000 updates (3)" in table and "-- the frontier" in table


def test_a_budget_plan_ranks_only_runs_of_the_same_length():
    fit = LossLawFit("multi-power", MPL_PARAMS, {"r": {"FinalE": 0.001}}, 0.0)
    trunk = WSDSpec(40_000, warmup_steps=2000, decay_steps=0)
    plan = plan_cooldown(fit, trunk, peak=3e-4, budgets=[6000, 24_000], lengths=[2000, 5000],
                         shapes=["linear", "1-sqrt"], min_ratios=[0.1])  # fmt: skip
    assert plan.end_steps == (6000, 24000)
    # budget 6000: a 5000-step cooldown would branch at 1000, inside the warmup: not a candidate
    assert {(c.at_step, c.length) for c in plan.ranking(6000)} == {(4000, 2000)}
    # nor one branching exactly where the warmup ends (its last trunk update is below the peak)
    at_end = plan_cooldown(fit, trunk, peak=3e-4, budgets=[7000], lengths=[5000, 2000])
    assert {(c.at_step, c.length) for c in at_end.candidates} == {(5000, 2000)}
    assert {(c.at_step, c.length) for c in plan.ranking(24000)} == {(22000, 2000), (19000, 5000)}
    best = plan.best_for(24000)
    assert best is plan.ranking(24000)[0] and best is plan.best
    assert best.final_loss == min(c.final_loss for c in plan.candidates if c.end_step == 24000)
    assert [c.end_step for c in plan.frontier()] == [6000, 24000]
    with pytest.raises(ValueError, match=r"no candidate ends at step 7000; they end at \[6000, 24000\]"):
        plan.best_for(7000)
    with pytest.raises(ValueError, match=r"budget\(s\) \[3000\] leave no cooldown"):
        plan_cooldown(fit, trunk, peak=3e-4, budgets=[3000], lengths=[2000])
    both_or_neither: list[dict[str, Any]] = [{"budgets": [6000], "at_steps": [4000]}, {}]
    for kwargs in both_or_neither:
        with pytest.raises(TypeError, match=r"give budgets= .* or at_steps="):
            plan_cooldown(fit, trunk, peak=3e-4, lengths=[2000], **kwargs)


def test_plan_refuses_a_branch_off_a_decaying_step():
    fit = LossLawFit("multi-power", MPL_PARAMS, {"r": {"FinalE": 0.001}}, 0.0)
    trunk = WSDSpec(1000, warmup_steps=10, decay_steps=500)
    with pytest.raises(ValueError, match="cannot branch a cooldown from step 800"):
        plan_cooldown(fit, trunk, peak=1e-3, at_steps=[800], lengths=[100])
    with pytest.raises(ValueError, match="peak is required"):
        plan_cooldown(fit, trunk, at_steps=[400], lengths=[100])


# --- input checks ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(lrs=[1e-3] * 10, steps=[2, 1], losses=[3.0, 2.0]), "strictly increasing"),
        (dict(lrs=[1e-3] * 10, steps=[2.0, 3.0], losses=[3.0, 2.0]), "array of ints"),
        (dict(lrs=[1e-3] * 3, steps=[2, 5], losses=[3.0, 2.0]), "up to the last logged step 5"),
        (dict(lrs=[1e-3] * 10, steps=[2, 5], losses=[3.0, -2.0]), "the loss at step 5 is -2.0"),
        (dict(lrs=[1e-3] * 10, steps=[2, 5], losses=[3.0]), "one value per step"),
        (dict(lrs=[1e-3, float("nan")] + [1e-3] * 8, steps=[2, 5], losses=[3.0, 2.0]), r"lrs\[1\] = nan"),
        (dict(lrs=WSDSpec(10), steps=[2, 5], losses=[3.0, 2.0]), "peak is required"),
        (dict(lrs=[1e-3] * 10, steps=[2, 5], losses=[3.0, 2.0], warmup_steps=-1), "warmup_steps"),
    ],
)
def test_loss_run_refuses_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LossRun(**kwargs)


def test_fit_refuses_bad_input():
    run = LossRun([1e-3] * 10, [2, 5], [3.0, 2.0])
    with pytest.raises(ValueError, match="law must be one of"):
        fit_loss_law([run], "power")
    with pytest.raises(TypeError, match="LossRun"):
        fit_loss_law([])
    with pytest.raises(ValueError, match="7 parameters but the runs hold 2 logged point"):
        fit_loss_law([run])
    # only two points at the peak: the power-law start takes the least decayed points instead (as
    # for a trunk whose stable phase falls as a power of the step), and the fit is made
    lrs = np.r_[np.full(10, 1e-3), np.linspace(1e-3, 1e-4, 40)]
    steps = np.r_[[3, 6], np.arange(15, 50, 5)]
    at_peak_twice = LossRun(lrs, steps, np.linspace(3.0, 2.0, steps.size))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the notes of what 9 points cannot determine
        assert np.isfinite(fit_loss_law([at_peak_twice]).objective)


# --- wsd plan ---------------------------------------------------------------------------------------


def _spec_files(tmp_path):
    import json

    specs = {
        "constant": WSDSpec(24000, warmup_steps=2160, decay_steps=0),
        "wsd": WSDSpec(24000, warmup_steps=2160, decay_steps=4000, decay_shape="geometric", min_ratio=0.1),
        "trunk": WSDSpec(72000, warmup_steps=2160, decay_steps=0),
    }
    for name, spec in specs.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(spec.to_dict()))
    return {name: str(tmp_path / f"{name}.json") for name in specs}


@pytest.mark.slow
def test_wsd_plan_ranks_and_plots(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    from wsd_core.cli import main

    files, data = _spec_files(tmp_path), lc.DATA / "lm-25M"
    np.savetxt(tmp_path / "rates.txt", lc.published_rates("wsdld_20000_24000"))  # rates, not a spec
    out = tmp_path / "plan.png"
    # fmt: off
    main([
        "plan", "--run", str(data / "constant_24000.csv"), files["constant"],
        "--run", str(data / "wsd_20000_24000.csv"), files["wsd"],
        "--held-out", str(data / "wsdld_20000_24000.csv"), str(tmp_path / "rates.txt"),
        "--peak", "3e-4", "--warmup-steps", "2160", "--trunk", files["trunk"], "--budgets", "22000", "24000",
        "--lengths", "2000", "4000", "--shapes", "linear", "geometric", "--min-ratios", "0.1",
        "--out", str(out), "--optimize", "--second-opinion",
    ])
    # fmt: on
    captured = capsys.readouterr()
    text = captured.out
    # progress goes to stderr, a line per stage with its time (a stage of several steps: a line naming
    # it, then one per step with its time); the report to stdout
    assert (
        "fitting the multi-power law to 2 run(s)" in captured.err and "predicting and ranking" in captured.err
    )
    assert "fitting the" not in text
    assert all(
        line.endswith((" s", ":")) or line.startswith("  warning: ") for line in captured.err.splitlines()
    )
    assert "refit 1 of 2, without " in captured.err
    assert "held out wsdld_20000_24000" in text and "rank  branch at" in text
    assert "inside its 90% interval" in text
    assert "law-optimal end of a 24000-update run" in text and "law-optimal end of a 22000-update run" in text
    assert text.count("second opinion (annealing law): ") == 2
    ranked = [line.split() for line in text.splitlines() if line.strip()[:2] in ("1 ", "2 ", "3 ", "4 ")]
    assert [r[0] for r in ranked] == ["1", "2", "3", "4"] * 2  # two budgets, each ranked on its own
    assert {r[5] for r in ranked[:4]} == {"22000"} and {r[5] for r in ranked[4:]} == {"24000"}
    assert "-- runs of 24000 updates (4)" in text and "-- the frontier" in text
    assert out.stat().st_size > 10_000


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("no-loss-column", "which column holds the losses? none of ['loss', "),
        ("no-peak", "is a WSDSpec: give --peak"),
        ("missing-schedule", "no such file"),
    ],
)
def test_wsd_plan_reports_bad_input(tmp_path, capsys, change, message):
    from wsd_core.cli import main

    files = _spec_files(tmp_path)
    log = tmp_path / "log.csv"
    log.write_text("step,loss\n2200,4.0\n3000,3.9\n" if change != "no-loss-column" else "step,lr\n2200,1\n")
    schedule = files["constant"] if change != "missing-schedule" else str(tmp_path / "nope.json")
    argv = ["plan", "--run", str(log), schedule, "--trunk", files["trunk"], "--at", "100", "--lengths", "10"]
    if change != "no-peak":
        argv += ["--peak", "3e-4"]
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_plan_from_a_trunk_of_rates_matches_the_plan_from_its_spec():
    fit = LossLawFit("multi-power", MPL_PARAMS, {"r": {"FinalE": 0.002}}, 0.0)
    grid: dict[str, Any] = dict(
        at_steps=[16000, 20000], lengths=[4000], shapes=["linear", "geometric"], min_ratios=[0.1]
    )
    from_spec = plan_cooldown(fit, WSDSpec(72000, warmup_steps=2160, decay_steps=0), peak=lc.PEAK, **grid)
    from_rates = plan_cooldown(fit, lc.published_rates("constant_72000"), warmup_steps=lc.WARMUP, **grid)
    # a fit built by hand has no covariance, residuals or fitted runs: only the law's base error
    assert from_spec.level == 0.9 and from_spec.law_error_scale == 1.0
    for a, b in zip(from_spec.candidates, from_rates.candidates, strict=True):
        assert (a.at_step, a.length, a.shape) == (b.at_step, b.length, b.shape)
        # the two trunks differ only in the warmup's last step (linspace reaches the peak one step early)
        assert a.final_loss == pytest.approx(b.final_loss, rel=1e-5)
        assert a.uncertainty == pytest.approx(a.final_loss * np.sinh(1.6448536 * LAW_ERROR_BASE))
    with pytest.raises(ValueError, match="the trunk's rate there is"):
        plan_cooldown(fit, lc.published_rates("wsdld_20000_24000"), at_steps=[22000], lengths=[100])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(at_steps=[], lengths=[10]), "at_steps must hold at least one value"),
        (dict(at_steps=[100.5], lengths=[10]), "at_steps"),
        (dict(at_steps=[100], lengths=[0]), "lengths"),
        (dict(at_steps=[100], lengths=[10], shapes=["sqrt"]), "shapes must be one of"),
        (dict(at_steps=[100], lengths=[10], min_ratios=[1.5]), "min_ratios"),
        (dict(at_steps=[100], lengths=[10], shapes=["geometric"]), "must be > 0 for decay_shape='geometric'"),
    ],
)
def test_plan_refuses_bad_grids(kwargs, match):
    fit = LossLawFit("multi-power", MPL_PARAMS, {"r": {"FinalE": 0.002}}, 0.0)
    with pytest.raises((ValueError, TypeError), match=match):
        plan_cooldown(fit, WSDSpec(1000, decay_steps=0), peak=1e-3, **kwargs)


def test_losses_logged_in_the_warmup_are_left_out():
    run = LossRun([0.5e-3, 1e-3, 1e-3, 1e-3, 1e-3], [0, 1, 2, 4], [9.0, 5.0, 4.0, 3.5])
    assert run.warmup_steps == 1
    assert run.after_warmup().steps.tolist() == [1, 2, 4]
    assert LossRun([1e-3] * 5, [0, 4], [4.0, 3.0], 0).after_warmup().steps.tolist() == [0, 4]
    with pytest.raises(ValueError, match="logged no loss after its warmup"):
        LossRun([1e-3] * 5, [0, 1], [4.0, 3.0], 3).after_warmup()


def test_learning_rates_of_a_spec_and_of_an_array():
    spec = WSDSpec(10, warmup_steps=2, decay_steps=4, decay_shape="geometric", min_ratio=0.01)
    rates = learning_rates(spec, 12, peak=2.0)
    np.testing.assert_allclose(rates, [2.0 * spec.multiplier(s) for s in range(12)], rtol=1e-15)
    assert learning_rates(rates, 5).tolist() == rates[:5].tolist()
    with pytest.raises(ValueError, match="at least 20 values"):
        learning_rates(rates, 20)
    with pytest.raises(ValueError, match="peak is only for a WSDSpec"):
        learning_rates(rates, 5, peak=1.0)


# --- refuse or warn, never a confident wrong answer ------------------------------------------------


def test_unsigned_steps_that_wrap_are_refused():
    # np.diff of uint8 [100, 44] is 200: the wrap looked like an increase
    with pytest.raises(ValueError, match="strictly increasing"):
        LossRun(np.full(400, 1e-3), np.array([100, 44], np.uint8), [3.0, 2.9], warmup_steps=0)


def test_fractional_steps_are_refused_by_every_prediction():
    # before: predict and predict_interval truncated 2500.5 to 2500 (LossRun refused it)
    fit = LossLawFit("annealing", {"L0": 3.0, "A": 0.5, "alpha": 0.5, "C": 1.0}, {}, 0.0)
    lrs = np.full(4000, 1e-3)
    for predict in (
        lambda: fit.predict(lrs, [2500.5], warmup_steps=0),
        lambda: fit.predict_interval(lrs, [100, 2500.5], warmup_steps=0),
        lambda: fit.predict_batch([lrs], [[2500.5]], warmup_steps=0),
        lambda: LossRun(lrs, [100, 2500.5], [3.0, 2.9], warmup_steps=0),
    ):
        with pytest.raises(ValueError, match=r"array of ints, got float64 .*a fractional step, 2500.5"):
            predict()
    with pytest.raises(TypeError, match="step must be an int"):
        fit.predict_difference(lrs, lrs, 2500.5, warmup_steps=0)  # type: ignore[arg-type]
    assert fit.predict(lrs, np.array([2500], np.uint16), warmup_steps=0).shape == (1,)


def test_runs_of_one_name_are_refused_and_the_command_names_logs_by_their_paths(tmp_path, capsys):
    # before: two runs named alike collapsed into one line of the report, one run's metrics lost
    import shutil

    from wsd_core.cli import main

    runs = lc.published_runs("lm-25M")
    one, two = runs["constant_24000"], runs["wsd_20000_24000"]
    twin = dataclasses.replace(two, name=one.name)
    with pytest.raises(ValueError, match=r"runs 0 and 1 are both named 'constant_24000'.*name=\.\.\."):
        fit_loss_law([one, twin], "multi-power")
    fit = fit_loss_law([one, two], "multi-power")
    with pytest.raises(ValueError, match="runs 0 and 1 are both named 'x'"):
        fit.evaluate([dataclasses.replace(one, name="x"), dataclasses.replace(two, name="x")])
    files, data = _spec_files(tmp_path), lc.DATA / "lm-25M"
    for folder, name in (("a", "constant_24000"), ("b", "wsd_20000_24000")):
        (tmp_path / folder).mkdir()
        shutil.copy(data / f"{name}.csv", tmp_path / folder / "export.csv")
    common = ["--peak", "3e-4", "--warmup-steps", "2160", "--trunk", files["trunk"], "--budgets", "24000",
              "--lengths", "4000"]  # fmt: skip
    a, b = str(tmp_path / "a" / "export.csv"), str(tmp_path / "b" / "export.csv")
    main(["plan", "--run", a, files["constant"], "--run", b, files["wsd"], *common])
    text = capsys.readouterr().out
    assert (
        f"fit      {tmp_path / 'a' / 'export'}:" in text and f"fit      {tmp_path / 'b' / 'export'}:" in text
    )
    with pytest.raises(SystemExit) as exit_:
        main(["plan", "--run", b, files["wsd"], "--run", b, files["wsd"], *common])  # one log twice
    assert exit_.value.code == 2 and "are both named" in capsys.readouterr().err


def test_a_multi_power_fit_without_any_lr_drop_is_refused():
    runs = lc.published_runs("lm-25M")
    with pytest.raises(ValueError, match="needs a run whose rate drops"):
        fit_loss_law([runs["constant_24000"]], "multi-power")


def test_points_logged_before_any_rate_are_left_out_with_a_warning():
    # a log that starts at step 0 has zero LR area there (it ended in LAPACK's "SVD did not converge")
    lrs = np.full(3000, 1e-3)
    steps = np.arange(0, 3000, 100)
    losses = 3.0 + 2.0 * np.maximum(np.cumsum(lrs)[np.maximum(steps - 1, 0)], 1e-3) ** -0.5
    run = LossRun(lrs=lrs, steps=steps, losses=losses, warmup_steps=0, name="from0")
    with pytest.warns(UserWarning, match=r"'from0': left out the point\(s\) at step\(s\) \[0\]"):
        fit = fit_loss_law([run], "annealing")
    assert np.isfinite(fit.objective)


def test_a_branch_inside_a_rate_trunks_warmup_is_refused():
    fit = LossLawFit("multi-power", MPL_PARAMS, {"r": {"FinalE": 0.002}}, 0.0)
    trunk = lc.published_rates("constant_72000")  # warms up over lc.WARMUP steps
    with pytest.raises(ValueError, match="inside the trunk's warmup"):
        plan_cooldown(fit, trunk, at_steps=[0], lengths=[100], shapes=["linear"], min_ratios=[0.1])


def test_a_peak_far_from_the_fit_warns_and_a_non_positive_prediction_is_refused():
    fit = LossLawFit(
        "multi-power", MPL_PARAMS, {"r": {"FinalE": 0.002}}, 0.0, fitted_peaks=(lc.PEAK, lc.PEAK)
    )
    trunk = WSDSpec(24000, warmup_steps=2160, decay_steps=0)
    grid: dict[str, Any] = dict(at_steps=[16000], lengths=[4000], shapes=["linear"], min_ratios=[0.1])
    with pytest.warns(UserWarning, match=r"peak rate 0.0006 is 2.0x above|peak rate 0.003 is 10.0x above"):
        plan_cooldown(fit, trunk, peak=10 * lc.PEAK, **grid)
    with (
        pytest.warns(UserWarning, match="extrapolate"),
        pytest.raises(ValueError, match="predicts a loss of"),
    ):
        plan_cooldown(
            fit, trunk, peak=10.0, **grid
        )  # the case: a final loss of -151 was ranked first


# --- reading real logs ----------------------------------------------------------------------------


def _write(path, text, encoding="utf-8"):
    path.write_text(text, encoding=encoding)
    return path


def test_a_wandb_export_is_read_with_its_blank_cells_and_min_max_columns(tmp_path):
    from wsd_plan._logs import read_log

    text = (
        "Step,run-7 - train/loss,run-7 - train/loss__MIN,run-7 - train/loss__MAX,run-7 - lr\n"
        "100,3.5,3.4,3.6,1e-3\n150,,,,1e-3\n200,3.2,3.1,3.3,9e-4\n"
    )
    log = read_log(_write(tmp_path / "wandb.csv", text))
    assert log.steps.tolist() == [100, 200] and log.losses.tolist() == [3.5, 3.2]
    # the rate is kept where it was logged, also on a row with no loss
    assert log.lr_steps is not None and log.lr_steps.tolist() == [100, 150, 200]
    assert log.lrs is not None and log.lrs.tolist() == [1e-3, 1e-3, 9e-4]


def test_columns_can_be_named_and_a_bom_is_accepted(tmp_path):
    from wsd_plan._logs import read_log

    path = _write(tmp_path / "log.csv", "iter,val_ppl,objective\n10,30.0,3.4\n20,25.0,3.2\n", "utf-8-sig")
    log = read_log(path, step_column="iter", loss_column="objective")
    assert log.steps.tolist() == [10, 20] and log.losses.tolist() == [3.4, 3.2] and log.lrs is None
    assert read_log(_write(tmp_path / "bom.csv", "step,loss\n5,2.0\n", "utf-8-sig")).steps.tolist() == [5]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("step,loss\n2176,4,101\n", r"log.csv:2: 3 fields, but the header has 2 \(a decimal comma\?\)"),
        ("step,loss\ninf,3.0\n", r"log.csv:2: the step 'inf' is not an integer"),
        ("step,loss\n1e30,3.0\n", r"log.csv:2: the step '1e30' is not an integer"),
        ("step,loss\n1,3.0\n2.5,2.9\n", r"log.csv:3: the step '2.5' is not an integer"),
        ("step,loss\n1,3.0\n2,nan\n", r"log.csv:3: the loss 'nan' must be finite and > 0"),
        ("step,loss\n1,3.0\n2,abc\n", r"log.csv:3: the loss 'abc' is not a number"),
        ("step,loss\n5,3.0\n4,2.9\n", r"steps must increase, but step 4 follows 5"),
        ("step,loss\n", r"no data rows"),
        ("a,b\n1,2\n", r"which column holds the steps\?"),
        ("step,loss,train/loss\n1,2,3\n", None),  # 'loss' wins over the others: no ambiguity
        ("step,loss\n9007199254740993,2\n", None),  # an int step past 2**53 is read exactly
    ],
)
def test_bad_logs_are_refused_naming_file_and_line(tmp_path, text, message):
    from wsd_plan import LogError
    from wsd_plan._logs import read_log

    path = _write(tmp_path / "log.csv", text)
    if message is None:
        log = read_log(path)
        assert log.losses.tolist() == [2.0] and log.steps[0] in (1, 2**53 + 1)
        return
    with pytest.raises(LogError, match=message):
        read_log(path)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.npy", lambda p: np.save(p, np.array([])), "non-empty 1-d array"),
        ("nested.json", lambda p: p.write_text("[" * 100_000 + "]" * 100_000), "not JSON"),
        ("list.json", lambda p: p.write_text("[1, 2]"), "an object of its fields"),
        ("rates.csv", lambda p: p.write_text("step,lr\n0,1e-3\n1,x\n"), r"rates.csv:3: the lr 'x'"),
        ("pickled.npy", lambda p: np.save(p, np.array([{}], dtype=object)), "not a numpy array file"),
    ],
)
def test_bad_schedule_files_are_refused_without_a_traceback(tmp_path, name, content, message):
    from wsd_plan import LogError, read_schedule

    path = tmp_path / name
    content(path)
    with pytest.raises(LogError, match=message):
        read_schedule(path)


def _args(**changes):
    import argparse

    base = dict(step_column=None, loss_column=None, lr_column=None, peak=None, warmup_steps=0)
    return argparse.Namespace(**{**base, **changes})


def test_a_logged_lr_column_that_covers_every_update_is_the_schedule(tmp_path):
    from wsd_plan._command import _run

    lrs = np.r_[np.full(30, 1e-3), np.linspace(1e-3, 1e-4, 20)]
    rows = "".join(f"{s},{3.0 - s / 100},{lr}\n" for s, lr in enumerate(lrs))
    run = _run([str(_write(tmp_path / "log.csv", "step,loss,lr\n" + rows))], _args())
    np.testing.assert_array_equal(run.lrs, lrs)


def test_a_partial_lr_column_needs_the_schedule_and_is_checked_against_it(tmp_path):
    from wsd_plan import LogError
    from wsd_plan._command import _run

    log = _write(tmp_path / "log.csv", "step,loss,lr\n10,3.0,0.001\n20,2.9,0.001\n")
    with pytest.raises(LogError, match="covers 2 of the 21 updates"):
        _run([str(log)], _args())
    np.save(tmp_path / "right.npy", np.full(21, 1e-3))
    assert _run([str(log), str(tmp_path / "right.npy")], _args()).lrs.size == 21
    np.save(tmp_path / "wrong.npy", np.full(21, 3e-4))
    with pytest.raises(LogError, match=r"the logged lr at step 10 is 0.001, but .*wrong.npy gives 0.0003"):
        _run([str(log), str(tmp_path / "wrong.npy")], _args())


def test_wsd_plan_reports_a_decimal_comma_log_without_a_traceback(tmp_path, capsys):
    from wsd_core.cli import main

    files = _spec_files(tmp_path)
    log = _write(tmp_path / "log.csv", "step,loss\n2176,4,101\n")
    argv = ["plan", "--run", str(log), files["constant"], "--trunk", files["trunk"], "--peak", "3e-4",
            "--at", "100", "--lengths", "10"]  # fmt: skip
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "log.csv:2: 3 fields" in err and "Traceback" not in err


def test_parameters_the_runs_do_not_determine_are_said_and_reported():
    # the reported case: on lm-25M a trunk and one cooldown left beta ~ 0 with B ~ 3e9 when the fit
    # searched log B; it now searches log(B*beta) with a mild prior on beta, and beta stays meaningful
    runs = lc.published_runs("lm-25M")
    fit = fit_loss_law([runs["constant_24000"], runs["wsd_20000_24000"]], "multi-power")
    assert fit.notes == () and 0.05 < fit.params["beta"] < 2 and fit.params["B"] < 1e4
    # a loss with no floor: the fit recovers A and alpha, and says that L0 ran off to 0
    lrs = np.full(3000, 1e-3)
    steps = np.arange(200, 3000, 100)
    no_floor = LossRun(lrs=lrs, steps=steps, losses=2.0 * np.cumsum(lrs)[steps] ** -0.5, warmup_steps=0)
    with pytest.warns(UserWarning, match=r"L0 = .* is near 0 \(the lowest logged loss is 1.174\)"):
        fit = fit_loss_law([no_floor], "annealing")
    assert fit.params["A"] == pytest.approx(2.0, rel=2e-3)
    assert fit.params["alpha"] == pytest.approx(0.5, rel=2e-3)
    assert fit.report().startswith("annealing law fit on 1 run(s): L0=") and "note: L0 = " in fit.report()
    from wsd_plan._fit import undetermined

    # parameters whose logarithms ran off to minus infinity (the L-BFGS fit once did this to A, alpha)
    (note,) = undetermined(dict(L0=1.5, A=1e-30, alpha=1e-14, C=1.0), lowest_loss=1.6)
    assert note.startswith("A = 1e-30, alpha = 1e-14: at the edge of the search range")
    # L0 near 0 (the demo's fit once reported L0 = 5.7e-31)

    demo_like = dict(L0=5.7e-31, A=2.0, alpha=0.2, B=40.0, C=0.01, beta=1.1, gamma=1.3)
    (note,) = undetermined(demo_like, lowest_loss=1.63)
    assert note.startswith("L0 = 5.7e-31 is near 0 (the lowest logged loss is 1.63)")
    # at the lowest declared versions the same fit lands at beta = 3.4e-15: one note, not two
    lowest = dict(L0=3.16, A=0.52, alpha=0.51, B=2.9e9, C=0.04, beta=3.4e-15, gamma=3.0)
    (note,) = undetermined(lowest, lowest_loss=3.2)
    assert note.startswith("beta = 3.4e-15 is near 0 with B = 2.9e+09")


def test_a_well_determined_fit_says_nothing():
    import warnings

    lrs = np.full(3000, 1e-3)
    steps = np.arange(200, 3000, 100)
    run = LossRun(lrs=lrs, steps=steps, losses=3.0 + 2.0 * np.cumsum(lrs)[steps] ** -0.5, warmup_steps=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit = fit_loss_law([run], "annealing")
    assert fit.notes == () and "note:" not in fit.report()


# --- wsd plan: a message and exit status 2, never a traceback ------------------------------------


def _plan_args(tmp_path, *extra, lr_column=True):
    files, data = _spec_files(tmp_path), lc.DATA / "lm-25M"
    logs = []
    for name in ("constant_24000", "wsd_20000_24000"):
        log = data / f"{name}.csv"
        if not lr_column:  # the logged rates would catch a wrong peak before the fit
            rows = [line.split(",") for line in log.read_text().splitlines()]
            keep = [i for i, column in enumerate(rows[0]) if column != "lr"]
            log = tmp_path / f"{name}.csv"
            log.write_text("\n".join(",".join(r[i] for i in keep) for r in rows) + "\n")
        logs.append(str(log))
    return ["plan", "--run", logs[0], files["constant"], "--run", logs[1], files["wsd"],
            "--trunk", files["trunk"], "--lengths", "2000", *extra]  # fmt: skip


@pytest.mark.parametrize(
    ("extra", "message", "before_any_work"),
    [
        # before: ArrayMemoryError (7.28 TiB), and an OOM kill that took the machine's memory
        (["--peak", "3e-4", "--budgets", "1000000000000"], "probably tokens or samples", True),
        (["--peak", "3e-4", "--budgets", "3000000000"], r"update 3,000,000,000: over 1,000,000,000", True),
        # before: FileNotFoundError after the fit and the plan
        (
            ["--peak", "3e-4", "--budgets", "24000", "--out", "/proc/x.png"],
            "cannot write '/proc/x.png'",
            True,
        ),
        # before: refused only after the fit and the plan, the table lost
        (["--peak", "3e-4", "--at", "20000", "--optimize"], "--optimize needs --budgets", True),
        # before: a branching error with a Python tuple in it
        (["--peak", "3e-4", "--budgets", "100000"], r"past the trunk's end at step 72000", False),
    ],
)
def test_wsd_plan_fails_with_a_message_and_never_a_traceback(
    tmp_path, capsys, extra, message, before_any_work
):
    from wsd_core.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(_plan_args(tmp_path, *extra))
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "Traceback" not in err
    assert re.search(message, err), err
    assert ("reading" not in err) == before_any_work  # usage errors come before any log is read


def test_wsd_plan_says_a_diverging_fit_names_the_peak(tmp_path, capsys):
    # before: RuntimeError: the multi-power fit diverged (a traceback)
    from wsd_core.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(_plan_args(tmp_path, "--peak", "10", "--budgets", "24000", lr_column=False))
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "Traceback" not in err
    assert "diverged from every starting point" in err and "peak rates 10" in err


def test_wsd_plan_without_matplotlib_refuses_out_before_any_work(tmp_path, capsys, monkeypatch):
    import importlib.util

    from wsd_core.cli import main

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else real(name, *a)
    )
    with pytest.raises(SystemExit) as exit_:
        main(_plan_args(tmp_path, "--peak", "3e-4", "--budgets", "24000", "--out", str(tmp_path / "p.png")))
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "pip install 'wsd-schedule[plot]'" in err and "reading" not in err


def test_plan_cooldown_names_what_is_missing_and_refuses_token_sized_budgets():
    fit = LossLawFit("annealing", {"L0": 3.0, "A": 0.5, "alpha": 0.5, "C": 1.0}, {}, 0.0)
    trunk = WSDSpec(30_000, warmup_steps=100, decay_steps=0)
    with pytest.raises(TypeError, match="exactly one of them, got neither"):  # before: "not both"
        plan_cooldown(fit, trunk, peak=3e-4, lengths=[1000])
    with pytest.raises(ValueError, match="probably tokens"):
        plan_cooldown(fit, trunk, peak=3e-4, budgets=[3 * 10**9], lengths=[1000])


def test_a_candidate_prints_as_one_line():
    # before: about 60 lines of arrays
    params = dict(L0=3.0, A=0.5, alpha=0.5, B=400.0, C=2.0, beta=0.6, gamma=0.6)
    fit = LossLawFit("multi-power", params, {}, 0.0)
    plan = plan_cooldown(fit, WSDSpec(30_000, warmup_steps=2000, decay_steps=0), peak=3e-4, budgets=[24_000],
                         lengths=[2000, 4000], shapes=["linear"], min_ratios=[0.1])  # fmt: skip
    best, other = plan.ranking(24_000)
    assert repr(best) == (
        f"CooldownCandidate(linear cooldown of {best.length} from step {best.at_step} to 24000, "
        f"min_ratio 0.1: final loss {best.final_loss:.4f} [{best.low:.4f}, {best.high:.4f}])"
    )
    assert "\n" not in repr(other) and len(repr(other)) < 200


@pytest.mark.slow
def test_wsd_plan_published_tries_the_planner_on_the_shipped_curves(tmp_path, capsys):
    # before: trying it meant digging the CSVs out of site-packages and writing spec JSONs by hand
    pytest.importorskip("matplotlib")
    from wsd_core.cli import main

    main(["plan", "--published", "lm-100M", "--budgets", "24000", "--lengths", "2000", "4000",
          "--out", str(tmp_path / "p.png")])  # fmt: skip
    text = capsys.readouterr().out
    assert "multi-power law fit on 2 run(s)" in text and "fit      wsd_20000_24000" in text
    held = [line for line in text.splitlines() if line.startswith("  held out ") and "final loss" in line]
    assert len(held) == len(lc.RUNS) - 2  # every other published run, checked against its interval
    assert "-- runs of 24000 updates (4)" in text  # the published defaults: linear and 1-sqrt, floor 0.1
    assert (tmp_path / "p.png").stat().st_size > 10_000


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--published", "lm-100M", "--run", "a.csv"],
            "brings its own runs, trunk, peak and warmup: leave out",
        ),
        (["--published", "lm-7B"], r"--published must be one of .*lm-25M"),
        (["--lengths", "2000", "--budgets", "24000"], "needs --run, --trunk .*or --published lm-25M"),
        (["--published", "lm-25M", "--budgets", "24000", "--at", "20000"], "not allowed with argument"),
    ],
)
def test_wsd_plan_published_and_missing_arguments_are_refused_before_any_work(capsys, args, message):
    from wsd_core.cli import main
    from wsd_plan import _cli

    assert _cli.PUBLISHED_MODELS == lc.MODELS  # named twice, to keep the command's parser light
    with pytest.raises(SystemExit) as exit_:
        main(["plan", *args])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "Traceback" not in err and "reading" not in err
    assert re.search(message, err), err


def test_the_plan_plot_shades_each_budgets_best_labelled_by_budget(tmp_path, monkeypatch):
    # before: plan.candidates[:top] drew only the shortest budget's runs, numbered as if ranked
    # globally, and no interval was drawn
    import wsd_core.plot
    from wsd_plan._command import plot_plan

    drawn: dict[str, Any] = {}
    capture = lambda series, path, **kw: drawn.update(series=series, **kw)
    monkeypatch.setattr(wsd_core.plot, "plot_series", capture)
    params = dict(L0=3.0, A=0.5, alpha=0.5, B=400.0, C=2.0, beta=0.6, gamma=0.6)
    fit = LossLawFit("multi-power", params, {}, 0.0)
    plan = plan_cooldown(fit, WSDSpec(30_000, warmup_steps=2000, decay_steps=0), peak=3e-4,
                         budgets=[12_000, 24_000], lengths=[1000, 2000, 4000], shapes=["linear"])  # fmt: skip
    plot_plan(plan, fit, [], tmp_path / "p.png", top=2)
    labels = list(drawn["series"])
    for budget in (12_000, 24_000):
        best = plan.best_for(budget)
        (shaded,) = [k for k in drawn["bands"] if k.startswith(f"{budget} updates, best: ")]
        assert f"linear {best.length} from {best.at_step}" in shaded and "90% interval" in shaded
        x, low, high = drawn["bands"][shaded]
        assert best.at_step - 1 <= x[0] <= best.at_step and x[-1] == budget - 1  # from the branch on
        assert low[-1] == pytest.approx(best.low) and high[-1] == pytest.approx(best.high)
        assert sum(k.startswith(f"{budget} updates, #2: ") for k in labels) == 1
    assert len(labels) == 4


def test_a_candidates_curve_interval_holds_its_curve_and_ends_at_its_final_interval():
    params = dict(L0=3.0, A=0.5, alpha=0.5, B=400.0, C=2.0, beta=0.6, gamma=0.6)
    fit = LossLawFit("multi-power", params, {}, 0.0)
    plan = plan_cooldown(fit, WSDSpec(30_000, warmup_steps=2000, decay_steps=0), peak=3e-4,
                         budgets=[24_000], lengths=[1000, 4000], shapes=["linear", "1-sqrt"])  # fmt: skip
    for c in plan.candidates:
        assert c.predicted_low is not None and c.predicted_high is not None
        assert np.all(c.predicted_low < c.predicted) and np.all(c.predicted < c.predicted_high)
        assert (c.predicted_low[-1], c.predicted_high[-1]) == pytest.approx((c.low, c.high), rel=1e-12)
        # half the curve's points are on the cooldown, so a short one is drawn smoothly
        assert np.sum(c.steps >= c.at_step) >= 30


def test_plot_series_refuses_a_band_around_no_series(tmp_path):
    pytest.importorskip("matplotlib")
    from wsd_core.plot import plot_series

    with pytest.raises(ValueError, match=r"bands must name series.*\['b'\] are not among \['a'\]"):
        plot_series({"a": ([0, 1], [1, 2])}, tmp_path / "x.png", title="t", ylabel="y",
                    bands={"b": ([0], [1], [2])})  # fmt: skip
    path = plot_series({"a": ([0, 1], [1, 2])}, tmp_path / "x.png", title="t", ylabel="y",
                       bands={"a": ([0, 1], [0.5, 1.5], [1.5, 2.5])})  # fmt: skip
    assert path.stat().st_size > 1000
