"""Forecasts from a trunk alone: ``fit_loss_law(prior=)`` and ``Forecast``.

Checked against real published runs (the Multi-Power Law paper's two sizes, Schaipp et al.'s sizes
and datasets): a trunk observed up to a cooldown's branch step, with a prior fitted to another model,
must put the measured final loss of that cooldown inside its 90% interval and rank the cooldowns of
one budget as they measured. The prior's algebra is checked on its own: where the runs say nothing,
the fit is the prior; where they determine everything, the prior does not move it.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np
import pytest

pytest.importorskip("jax")
pytest.importorskip("scipy")

from wsd_core import WSDSpec
from wsd_plan import (
    CooldownPlan,
    Forecast,
    LossLawFit,
    LossRun,
    _transfer,
    branch_rates,
    fit_loss_law,
    learning_rates,
)
from wsd_plan import published as lc

PARAMS = dict(L0=3.0, A=0.5, alpha=0.5, B=400.0, C=2.0, beta=0.6, gamma=0.6)
TRUNK = WSDSpec(72_000, warmup_steps=lc.WARMUP, decay_steps=0)


def _quiet_fit(*args, **kwargs) -> LossLawFit:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fit_loss_law(*args, **kwargs)


@functools.cache
def _all_runs_fit(model: str) -> LossLawFit:
    return _quiet_fit(list(lc.published_runs(model).values()))


def _trunk_until(run: LossRun, step: int) -> LossRun:
    keep = run.steps <= step
    return LossRun(run.lrs[: step + 1], run.steps[keep], run.losses[keep], run.warmup_steps, "trunk")


def _synthetic_trunk(params: dict, peak: float, until: int, noise: float = 0.0) -> LossRun:
    lrs = np.full(until + 1, peak)
    lrs[:1000] = np.linspace(0.0, peak, 1000)
    steps = np.arange(1100, until + 1, 100)
    truth = LossLawFit("multi-power", params, {}, 0.0)
    losses = truth.predict(lrs, steps, warmup_steps=1000)
    losses = losses * np.exp(noise * np.random.default_rng(0).standard_normal(steps.size))
    return LossRun(lrs, steps, losses, 1000, "trunk")


@pytest.mark.slow
@pytest.mark.parametrize("model, other", [("lm-100M", "lm-25M"), ("lm-25M", "lm-100M")])
def test_a_trunk_with_a_prior_of_another_size_forecasts_the_measured_cooldowns(model, other):
    """The issue's bar: coverage >= 80% and, per budget, regret of the one ranked best (measured
    loss over the best measured) at most 0.3%; every published cooldown that branches off the trunk."""
    runs, prior = lc.published_runs(model), _all_runs_fit(other)
    inside, regrets = [], []
    for branch, names in ((20_000, ("wsd_20000_24000", "wsdld_20000_24000")),
                          (8_000, ("wsdcon_3", "wsdcon_9", "wsdcon_18"))):  # fmt: skip
        fit = _quiet_fit([_trunk_until(runs["constant_72000"], branch)], prior=prior)
        held = [runs[n] for n in names]
        batch = fit.predict_batch([r.lrs for r in held], [r.steps[-1:] for r in held], warmup_steps=lc.WARMUP)
        low, high = batch.final_intervals()
        measured = np.array([r.losses[-1] for r in held])
        inside += list((low <= measured) & (measured <= high))
        regrets.append(measured[np.argmin(batch.final)] / measured.min() - 1)
    assert np.mean(inside) >= 0.8, inside
    assert max(regrets) <= 0.003 and np.mean(regrets) <= 0.001, regrets


@pytest.mark.slow
@pytest.mark.parametrize(
    "model, other", [("slimpajama-60M", "openwebtext2-60M"), ("openwebtext2-93M", "lm-25M")]
)
def test_a_prior_of_another_dataset_or_peak_forecasts_the_measured_cooldown(model, other):
    """Schaipp et al.'s runs (validation losses, cooldowns to 0) with a prior of the other dataset, or
    of the published curves (another dataset, size and peak rate): every cooldown inside its interval."""
    runs, prior = lc.published_runs(model), _all_runs_fit(other)
    for name, run in runs.items():
        if name == "trunk":
            continue
        branch = run.warmup_steps + int(np.flatnonzero(np.diff(run.lrs[run.warmup_steps :]) < 0)[0])
        fit = _quiet_fit([_trunk_until(runs["trunk"], branch)], prior=prior)
        (low,), (high,) = fit.predict_interval(run.lrs, run.steps[-1:], warmup_steps=run.warmup_steps)
        assert low <= run.losses[-1] <= high, (name, low, run.losses[-1], high)


def test_where_the_trunk_says_nothing_the_drop_term_is_the_priors_scaled_to_the_peak():
    # the prior fitted at peak 3e-4; the trunk at 1e-3: B * peak (the drop of a whole cooldown) carries
    prior = LossLawFit("multi-power", PARAMS, {}, 0.0, fitted_peaks=(3e-4, 3e-4),
                       covariance=np.eye(7) * 0.01, residual_scale=1e-3)  # fmt: skip
    fit = _quiet_fit([_synthetic_trunk(PARAMS, 1e-3, 20_000)], prior=prior)
    assert fit.params["B"] * 1e-3 / fit.params["A"] == pytest.approx(400.0 * 3e-4 / PARAMS["A"], rel=1e-6)
    for name in ("C", "beta", "gamma"):
        assert fit.params[name] == pytest.approx(PARAMS[name], rel=1e-6)
    assert fit.prior is prior


def test_where_the_runs_determine_everything_the_prior_hardly_moves_the_fit():
    runs = lc.published_runs("lm-25M")
    own = [runs["constant_72000"], runs["wsd_20000_24000"], runs["wsdcon_3"]]
    alone = _quiet_fit(own)
    prior = LossLawFit("multi-power", dict(PARAMS, B=100.0, gamma=1.0), {}, 0.0,
                       fitted_peaks=(3e-4, 3e-4))  # fmt: skip
    with_prior = _quiet_fit(own, prior=prior)
    run = runs["cosine_72000"]
    a, b = (f.predict(run.lrs, run.steps[-1:], warmup_steps=lc.WARMUP)[0] for f in (alone, with_prior))
    assert abs(a / b - 1) < 2e-3


def test_the_priors_uncertainty_widens_the_forecast():
    trunk = _synthetic_trunk(PARAMS, 3e-4, 20_000, noise=1e-3)
    sure, unsure = (
        LossLawFit("multi-power", PARAMS, {}, 0.0, fitted_peaks=(3e-4, 3e-4), covariance=np.eye(7) * sd**2,
                   residual_scale=1e-3)
        for sd in (0.01, 1.0)
    )  # fmt: skip
    cooldown = WSDSpec(24_000, warmup_steps=1000, decay_steps=4000)
    widths = []
    for prior in (sure, unsure):
        fit = _quiet_fit([trunk], prior=prior)
        (low,), (high,) = fit.predict_interval(cooldown, [23_999], peak=3e-4)
        widths.append(high - low)
    assert widths[1] > 1.5 * widths[0]


def test_the_posterior_covariance_is_the_gaussian_one():
    """Where the law is linear in its parameters near the optimum, the Laplace posterior of a
    Gaussian prior and Gaussian noise is exact: (J^T J / s^2 + P)^-1. Checked with a prior so weak
    on the power law that the data's own curvature is what remains there, against a no-prior fit."""
    trunk = _synthetic_trunk(PARAMS, 3e-4, 30_000, noise=1e-3)
    prior = LossLawFit("multi-power", PARAMS, {}, 0.0, fitted_peaks=(3e-4, 3e-4),
                       covariance=np.eye(7) * 0.04, residual_scale=1e-3)  # fmt: skip
    fit = _quiet_fit([trunk], prior=prior)
    cov = fit.covariance
    assert cov is not None
    # the drop term is undetermined by a trunk: its posterior is the prior's (own + transfer)
    drop = [3, 4, 5, 6]
    rows = np.eye(7)[drop]
    rows[0, 1] = -1.0  # log B - log A carries over (Law.transfer_relative_to)
    expected = np.eye(4) * (0.04 + _transfer.TRANSFER_SD**2) + np.outer([1, 0, 0, 0], [1, 0, 0, 0]) * 0.04
    assert np.allclose(rows @ cov @ rows.T, expected, rtol=0.05, atol=1e-4)


def test_a_prior_of_another_law_is_taken_from_its_other_law_fits():
    runs = lc.published_runs("lm-25M")
    prior = _quiet_fit([runs["constant_72000"], runs["wsd_20000_24000"]])
    trunk = _trunk_until(lc.published_runs("lm-100M")["constant_72000"], 20_000)
    fit = _quiet_fit([trunk], "annealing", prior=prior)
    assert fit.law == "annealing" and fit.prior is prior.other_law_fits[0]
    bare = LossLawFit("multi-power", PARAMS, {}, 0.0)
    with pytest.raises(ValueError, match="prior is a multi-power fit and holds no annealing fit"):
        fit_loss_law([trunk], "annealing", prior=bare)
    with pytest.raises(TypeError, match="prior must be a LossLawFit"):
        fit_loss_law([trunk], prior=PARAMS)  # type: ignore[arg-type]


def test_a_trunk_alone_without_a_prior_is_refused_naming_the_prior():
    with pytest.raises(ValueError, match=r"give a prior \(fit_loss_law\(\.\.\., prior="):
        fit_loss_law([_synthetic_trunk(PARAMS, 3e-4, 10_000)])


def test_a_cooldown_to_a_rate_of_zero_fits():
    # before: S_k(t) came out at -1e-12 for the last drop to 0, times eta^-gamma = e^200 gamma: NaN,
    # "the multi-power fit diverged from every starting point" on Schaipp et al.'s 53M runs
    fit = _quiet_fit(list(lc.published_runs("slimpajama-53M").values()))
    assert fit.covariance is not None and np.isfinite(fit.covariance).all()
    assert fit.fit_error["PredE"] < 0.01


@pytest.mark.parametrize("model", lc.SCHAIPP_MODELS)
def test_schaipp_rates_match_the_logged_ones(model):
    raw = lc._schaipp()[model]
    for name, run in lc.published_runs(model).items():
        at, logged = np.asarray(raw[name]["lr_step"]), np.asarray(raw[name]["lr"])
        rebuilt = run.lrs[at]
        if name == "trunk":  # its log's last rate is the scheduler's after the last update: 0
            assert logged[-1] == 0.0
            at, logged, rebuilt = at[:-1], logged[:-1], rebuilt[:-1]
        assert np.allclose(rebuilt, logged, rtol=1e-9, atol=1e-12), name
        assert run.steps[-1] < run.lrs.size


# --- Forecast ------------------------------------------------------------------------------------


def _prior() -> LossLawFit:
    return LossLawFit("multi-power", PARAMS, {}, 0.0, fitted_peaks=(3e-4, 3e-4), covariance=np.eye(7) * 0.01,
                      residual_scale=1e-3)  # fmt: skip


def test_the_first_forecast_of_a_process_says_that_it_compiles_and_later_ones_say_nothing(
    monkeypatch, capsys
):
    from wsd_plan import _forecast

    monkeypatch.setattr(_forecast, "_compiled", False)  # as in a fresh process
    trunk = _synthetic_trunk(PARAMS, 3e-4, 12_000, noise=1e-3)
    forecast = Forecast(WSDSpec(100_000, warmup_steps=1000, decay_steps=0), peak=3e-4, prior=_prior())
    forecast.observe(trunk.steps[:60], trunk.losses[:60])
    forecast.now(lengths=[2000])
    assert capsys.readouterr().err.count("the first forecast compiles the law's solver") == 1
    forecast.observe(trunk.steps[60:], trunk.losses[60:])
    forecast.now(lengths=[2000])
    Forecast(WSDSpec(100_000, warmup_steps=1000, decay_steps=0), peak=3e-4, prior=_prior()).observe(1500, 3.0)
    assert capsys.readouterr().err == ""


def test_a_forecast_fed_as_the_run_goes_equals_one_fed_the_log_at_once():
    trunk = _synthetic_trunk(PARAMS, 3e-4, 20_000, noise=1e-3)
    spec = WSDSpec(100_000, warmup_steps=1000, decay_steps=0)
    at_once, one_by_one = Forecast(spec, peak=3e-4, prior=_prior()), Forecast(spec, peak=3e-4, prior=_prior())
    at_once.observe(trunk.steps, trunk.losses)
    for i, (s, loss) in enumerate(zip(trunk.steps, trunk.losses, strict=True)):
        one_by_one.observe(int(s), float(loss))
        if i % 40 == 39:
            one_by_one.now(lengths=[2000])  # refits along the way: warm starts
    a, b = at_once.now(lengths=[2000, 4000]), one_by_one.now(lengths=[2000, 4000])
    for x, y in zip(a, b, strict=True):
        assert x.final_loss == pytest.approx(y.final_loss, rel=1e-5)
        assert (x.low, x.high) == pytest.approx((y.low, y.high), rel=1e-4)
    assert [c.at_step for c in a] == [20_000, 20_000]
    # the same numbers as fit_loss_law on the same trunk
    direct = _quiet_fit([at_once.run()], prior=_prior())
    rates = branch_rates(learning_rates(spec, 20_000, peak=3e-4), a[0].spec, 3e-4)
    predicted = direct.predict(rates, [a[0].steps[-1]], warmup_steps=1000)[0]
    assert a[0].final_loss == pytest.approx(predicted, rel=1e-9)


def test_a_forecast_plans_budgets_as_plan_cooldown():
    forecast = Forecast(WSDSpec(100_000, warmup_steps=1000, decay_steps=0), peak=3e-4, prior=_prior())
    trunk = _synthetic_trunk(PARAMS, 3e-4, 20_000, noise=1e-3)
    forecast.observe(trunk.steps, trunk.losses)
    plan = forecast.plan(budgets=[30_000, 40_000], lengths=[2000, 6000], shapes=["linear", "1-sqrt"])
    assert isinstance(plan, CooldownPlan) and plan.end_steps == (30_000, 40_000)
    best = plan.best_for(40_000)
    assert best.spec.start_step == best.at_step and best.spec.start_step + best.spec.total_steps == 40_000


def test_a_resumed_run_replaces_what_it_logs_again():
    forecast = Forecast(WSDSpec(100_000, warmup_steps=1000, decay_steps=0), peak=3e-4, prior=_prior())
    forecast.observe([1100, 1200, 1300, 1400], [4.0, 3.9, 3.8, 3.7])
    with pytest.warns(UserWarning, match="the 2 observation"):
        forecast.observe(1300, 3.75)
    assert forecast.state_dict() == {"steps": [1100, 1200, 1300], "losses": [4.0, 3.9, 3.75]}


def test_a_forecast_saves_and_restores_its_observations(tmp_path):
    path = tmp_path / "prior.json"
    path.write_text(_prior().to_json())
    spec = WSDSpec(100_000, warmup_steps=1000, decay_steps=0)
    forecast = Forecast(spec, peak=3e-4, prior=str(path))  # a saved prior, by path
    trunk = _synthetic_trunk(PARAMS, 3e-4, 10_000)
    forecast.observe(trunk.steps, trunk.losses)
    again = Forecast(spec, peak=3e-4, prior=path)
    again.load_state_dict(forecast.state_dict())
    assert again.now(lengths=[1000])[0].final_loss == forecast.now(lengths=[1000])[0].final_loss


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda f: f.observe(1100, float("nan")), "loss at step 1100 must be finite, got nan"),
        (lambda f: f.observe(1100, -1.0), "loss at step 1100 must be > 0, got -1.0"),
        (lambda f: f.observe(1.5, 3.0), "step"),
        (
            lambda f: f.observe(200_000, 3.0),
            r"step 200000 is past the trunk's end \(trunk.total_steps = 100000",
        ),
        (
            lambda f: f.observe([1, 2], [3.0]),
            "step and loss must be two numbers or two sequences of one length",
        ),
        (lambda f: f.now(lengths=[100]), "no loss observed yet: call observe"),
    ],
)
def test_a_forecast_refuses_bad_input(call, match):
    forecast = Forecast(WSDSpec(100_000, warmup_steps=1000, decay_steps=0), peak=3e-4, prior=_prior())
    with pytest.raises((ValueError, TypeError), match=match):
        call(forecast)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(trunk=30_000), "trunk must be a WSDSpec"),
        (dict(peak=0.0), r"peak \(the trunk's stable learning rate\) must be > 0, got 0.0"),
        (
            dict(prior=3),
            "prior must be a LossLawFit or ModelLadder, the path of one saved with to_json, or None; got int",
        ),
        (dict(prior="/nonexistent/fit.json"), "prior: cannot read the saved fit '/nonexistent/fit.json'"),
        (dict(law="power"), "law"),
    ],
)
def test_a_forecast_refuses_bad_arguments(kwargs, match):
    args = dict(trunk=WSDSpec(100_000, warmup_steps=1000, decay_steps=0), peak=3e-4, prior=None) | kwargs
    with pytest.raises((ValueError, TypeError), match=match):
        Forecast(args.pop("trunk"), **args)


# --- the command line: wsd fit --save, wsd plan --prior ---------------------------------------------


def _write_run(tmp_path, run: LossRun, name: str, until: int | None = None) -> list[str]:
    keep = run.steps <= (until if until is not None else run.steps[-1])
    log = tmp_path / f"{name}.csv"
    rows = "".join(f"{s},{float(x)!r}\n" for s, x in zip(run.steps[keep], run.losses[keep], strict=True))
    log.write_text("step,loss\n" + rows)
    np.save(tmp_path / f"{name}.npy", run.lrs if until is None else run.lrs[: until + 1])
    return [str(log), str(tmp_path / f"{name}.npy")]


@pytest.mark.slow
def test_wsd_fit_saves_a_prior_that_wsd_plan_forecasts_a_trunk_alone_with(tmp_path, capsys):
    from wsd_core.cli import main

    small, large = lc.published_runs("lm-25M"), lc.published_runs("lm-100M")
    saved = tmp_path / "prior.json"
    main(["fit", "--run", *_write_run(tmp_path, small["constant_24000"], "trunk25"),
          "--run", *_write_run(tmp_path, small["wsd_20000_24000"], "cooldown25"),
          "--warmup-steps", str(lc.WARMUP), "--save", str(saved)])  # fmt: skip
    out, err = capsys.readouterr()
    assert "multi-power law fit on 2 run(s)" in out and f"wrote {saved}" in out
    # each leave-one-run-out refit is said as it ends: a save is not minutes of one silent line
    assert "refit 1 of 2, without trunk25:" in err and "refit 2 of 2, without cooldown25:" in err
    prior = LossLawFit.from_json(saved.read_text())
    assert prior.law_error_scale >= 1 and prior.fitted_peaks == (lc.PEAK, lc.PEAK)
    (tmp_path / "trunk.json").write_text(__import__("json").dumps(TRUNK.to_dict()))
    trunk = _write_run(tmp_path, large["constant_72000"], "trunk100", until=20_000)
    main(["plan", "--run", *trunk, "--warmup-steps", str(lc.WARMUP), "--prior", str(saved),
          "--trunk", str(tmp_path / "trunk.json"), "--peak", str(lc.PEAK), "--at", "20000",
          "--lengths", "4000", "--shapes", "linear", "--min-ratios", "0.1"])  # fmt: skip
    captured = capsys.readouterr()
    assert "with the prior" in captured.err
    row = next(line for line in captured.out.splitlines() if line.strip().startswith("1 "))
    predicted, half = (float(x) for x in row.split()[-2:])
    measured = large["wsdld_20000_24000"].losses[-1]  # the same cooldown, run for real
    assert abs(predicted - measured) <= half


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["fit"], "wsd fit needs --run .* or --published MODEL"),
        (["fit", "--published", "lm-7B"], "model must be one of"),
        (["fit", "--published", "lm-25M", "--peak", "1e-3"], "brings its own peak and warmup"),
        (["fit", "--published", "lm-25M", "--save", "/nonexistent/dir/fit.json"], "does not exist"),
        (["plan", "--published", "lm-25M", "--prior", "/nonexistent/prior.json"], "--prior: cannot read"),
    ],
)
def test_wsd_fit_and_prior_mistakes_are_reported_without_a_traceback(capsys, args, message):
    import re

    from wsd_core.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(args)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "Traceback" not in err
    assert re.search(message, err), err


def test_a_saved_prior_that_is_not_a_fit_is_refused_naming_the_file(tmp_path, capsys):
    from wsd_core.cli import main

    bad = tmp_path / "prior.json"
    bad.write_text('{"format": "something else"}')
    with pytest.raises(SystemExit):
        main(["plan", "--published", "lm-25M", "--prior", str(bad)])
    assert f"--prior {bad}: not a saved LossLawFit" in capsys.readouterr().err


# --- never harm the run: a forecast checks everything before it changes anything --------------------


def _observed_forecast() -> Forecast:
    forecast = Forecast(WSDSpec(100_000, warmup_steps=1000, decay_steps=0), peak=3e-4, prior=_prior())
    forecast.observe([1100, 1200], [3.5, 3.4])
    return forecast


def test_a_log_with_one_bad_value_records_nothing():
    # before: the points before the NaN were kept, and the call raised
    forecast = _observed_forecast()
    with pytest.raises(ValueError, match="loss at step 1400 must be finite, got nan"):
        forecast.observe([1300, 1400, 1500], [3.3, float("nan"), 3.2])
    with pytest.raises(ValueError, match="the steps of one log must increase"):
        forecast.observe([1300, 1500, 1400], [3.3, 3.2, 3.1])
    assert forecast.state_dict() == {"steps": [1100, 1200], "losses": [3.5, 3.4]}


@pytest.mark.parametrize(
    "state, match",
    [
        ({"steps": [1100, 1300], "losses": [3.5, -1.0]}, "loss at step 1300 must be > 0, got -1.0"),
        ({"steps": [1100, 1300], "losses": [3.5]}, "step and loss must be two numbers or two sequences"),
        ({"steps": [1300, 1100], "losses": [3.5, 3.4]}, "the steps of one log must increase"),
        ({"steps": [1100]}, "a Forecast state is a dict of 'steps' and 'losses'"),
        ([1100], "a Forecast state is a dict"),
    ],
)
def test_a_refused_state_leaves_every_observation(state, match):
    # before: load_state_dict deleted every observation, then failed
    forecast = _observed_forecast()
    with pytest.raises(ValueError, match=match):
        forecast.load_state_dict(state)
    assert forecast.state_dict() == {"steps": [1100, 1200], "losses": [3.5, 3.4]}


def test_numpy_and_jax_scalars_are_numbers_and_one_value_is_a_list():
    # before: peak=np.float32(3e-4) was refused, and now(lengths=4000) or shapes="linear" raised
    # "'int' object is not iterable" or "got 'l'"
    import jax.numpy as jnp

    trunk = WSDSpec(100_000, warmup_steps=1000, decay_steps=0)
    for peak in (np.float32(3e-4), jnp.asarray(3e-4), np.float64(3e-4)):
        assert Forecast(trunk, peak=peak, prior=_prior()).peak == pytest.approx(3e-4, rel=1e-7)
    forecast = Forecast(trunk, peak=3e-4, prior=_prior())
    steps = np.arange(1100, 20_001, 100)
    for step, loss in zip(steps, _prior().predict(trunk, steps, peak=3e-4), strict=True):
        forecast.observe(np.int64(step), np.float32(loss))
    one = forecast.now(lengths=4000, shapes="linear", min_ratios=0.1)
    many = forecast.now(lengths=[4000], shapes=["linear"], min_ratios=[0.1])
    assert len(one) == 1 and one[0].final_loss == many[0].final_loss
    assert forecast.plan(budgets=24_000, lengths=4000).best_for(24_000).length == 4000


def test_a_trunk_still_in_its_warmup_says_so():
    # before: "warmup_steps (len(lrs) = 2001) must be ... <= 2001, got 2160"
    forecast = Forecast(WSDSpec(100_000, warmup_steps=2160, decay_steps=0), peak=3e-4, prior=_prior())
    forecast.observe(list(range(100, 2001, 100)), [4.0] * 20)
    assert not forecast.ready
    with pytest.raises(
        ValueError, match=r"the trunk is still in its warmup \(update 2,000 of 2,160\): nothing"
    ):
        forecast.now(lengths=[1000])


def test_a_trunk_in_tokens_forecasts_as_the_same_trunk_in_steps():
    # before: "the planner reads one rate per update; this spec counts tokens" at the first observation
    ramp = [(0, 256), (2000, 512)]
    steps_trunk = WSDSpec(50_000, warmup_steps=1000, decay_steps=0)
    consumed = WSDSpec(100, units="tokens", tokens_per_step=ramp).units_at
    tokens_trunk = WSDSpec(
        int(consumed(50_000)),
        warmup_steps=int(consumed(1000)),
        decay_steps=0,
        units="tokens",
        tokens_per_step=ramp,
    )
    steps = np.arange(1100, 20_001, 100)
    losses = _prior().predict(steps_trunk, steps, peak=3e-4)
    answers = []
    for trunk in (steps_trunk, tokens_trunk):
        forecast = Forecast(trunk, peak=3e-4, prior=_prior())
        forecast.observe(steps, losses)
        plan = forecast.plan(budgets=[30_000], lengths=[2000, 6000])
        answers.append([(c.at_step, c.length, c.final_loss) for c in plan.candidates])
        assert forecast.end == 50_000
    assert [a[:2] for a in answers[0]] == [a[:2] for a in answers[1]]
    assert [a[2] for a in answers[0]] == pytest.approx([a[2] for a in answers[1]], rel=1e-12)


def test_fit_loss_law_takes_a_prior_saved_as_a_file(tmp_path):
    # before: fit_loss_law(runs, prior="fit.json") was refused while Forecast and wsd plan took a path
    path = tmp_path / "prior.json"
    path.write_text(_prior().to_json())
    trunk = _synthetic_trunk(PARAMS, 3e-4, 20_000)
    from_file, from_fit = _quiet_fit([trunk], prior=str(path)), _quiet_fit([trunk], prior=_prior())
    assert from_file.params == from_fit.params
    with pytest.raises(ValueError, match="prior: cannot read the saved fit"):
        fit_loss_law([trunk], prior=str(tmp_path / "missing.json"))
