"""``LossLawFit.to_json`` / ``from_json``: a saved fit predicts, with the same intervals and the same
plan, as the fit it was saved from, without refitting; text that is not a saved fit is refused."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

pytest.importorskip("jax")
pytest.importorskip("scipy")

from wsd_core import WSDSpec
from wsd_plan import LossLawFit, fit_loss_law, plan_cooldown
from wsd_plan import _fit as fit_module
from wsd_plan import published as lc


@pytest.fixture(scope="module")
def fitted() -> LossLawFit:
    runs = lc.published_runs("lm-25M")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fit_loss_law([runs["constant_24000"], runs["wsd_20000_24000"]], "multi-power")


def test_a_saved_fit_predicts_and_plans_as_the_original_without_refitting(fitted, monkeypatch):
    text = fitted.to_json()
    json.loads(text, parse_constant=lambda c: pytest.fail(f"not strict JSON: {c}"))
    monkeypatch.setattr(fit_module, "fit_loss_law", lambda *a, **k: pytest.fail("a loaded fit refitted"))
    loaded = LossLawFit.from_json(text)
    assert loaded == fitted and loaded.law_error_scale == fitted.law_error_scale
    assert [o.params for o in loaded.other_law_fits] == [o.params for o in fitted.other_law_fits]
    assert loaded.covariance is not None and fitted.covariance is not None
    assert np.array_equal(loaded.covariance, fitted.covariance)
    run = lc.published_runs("lm-25M")["cosine_72000"]
    # bit for bit: floats are written with repr, which reads back to the same float
    assert np.array_equal(loaded.predict(run.lrs, run.steps), fitted.predict(run.lrs, run.steps))
    (low, high), (low2, high2) = (
        f.predict_interval(run.lrs, run.steps[-1:], warmup_steps=lc.WARMUP) for f in (fitted, loaded)
    )
    assert np.array_equal(low, low2) and np.array_equal(high, high2)
    trunk = WSDSpec(72_000, warmup_steps=lc.WARMUP, decay_steps=0)
    plans = [plan_cooldown(f, trunk, peak=lc.PEAK, budgets=[24_000], lengths=[100, 2000, 4000],
                           shapes=["linear", "1-sqrt"], min_ratios=[0.1])
             for f in (fitted, loaded)]  # fmt: skip
    assert plans[0].table() == plans[1].table()
    assert LossLawFit.from_json(loaded.to_json()) == loaded  # and saved again


def _saved(fitted: LossLawFit, **change) -> str:
    data = json.loads(fitted.to_json())
    for key, value in change.items():
        data[key] = value
    return json.dumps(data)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format": "something else"}, "'format' must be 'wsd_plan.LossLawFit'"),
        ({"version": 99}, "version 99; this wsd_plan reads version 1"),
        ({"law": "cosine"}, r"'law' must be one of \['multi-power', 'annealing'\], got 'cosine'"),
        ({"params": {"L0": 3.0}}, r"'params' must name \['L0', 'A', 'alpha', 'B', 'C', 'beta', 'gamma'\]"),
        ({"covariance": [[1.0, 0.0], [0.0, 1.0]]}, r"covariance must be a matrix of shape \(7, 7\)"),
        ({"law_error_scale": 0.5}, "law_error_scale must be a number >= 1"),
    ],
)
def test_text_that_is_not_a_saved_fit_is_refused_naming_what_is_wrong(fitted, change, message):
    with pytest.raises(ValueError, match=message):
        LossLawFit.from_json(_saved(fitted, **change))


def test_a_saved_fit_without_its_optional_fields_reads():
    # the format's optional fields have defaults; a missing "notes" was once refused ("must be a list
    # of strings, got ()") while every other optional field read
    params = {"L0": 3.0, "A": 0.5, "alpha": 0.5, "C": 1.0}
    minimal = {"format": "wsd_plan.LossLawFit", "version": 1, "law": "annealing", "params": params}
    fit = LossLawFit.from_json(json.dumps(minimal))
    assert fit.notes == () and fit.covariance is None and fit.calibration is None
    assert fit == LossLawFit("annealing", params, {}, 0.0)


def test_a_parameter_that_is_not_positive_and_text_that_is_not_json_are_refused(fitted):
    params = {**fitted.params, "alpha": -0.5}
    with pytest.raises(ValueError, match=r"parameter alpha must be a finite number >= 0, got -0\.5"):
        LossLawFit.from_json(_saved(fitted, params=params))
    # exactly 0 is what a fit writes when a log parameter underflows (L0 that the runs leave open)
    # (a forecast's refit gave L0 = 5.5e-210; a bound at 1e-100 refused to read it back)
    for tiny in (0.0, 5.5445545287621865e-210):
        assert LossLawFit.from_json(_saved(fitted, params={**fitted.params, "L0": tiny})).params["L0"] == tiny
    with pytest.raises(ValueError, match="not a saved LossLawFit: the text is not JSON"):
        LossLawFit.from_json("{law: multi-power")
    with pytest.raises(TypeError, match="takes the JSON text"):
        LossLawFit.from_json(json.loads(fitted.to_json()))


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        # before: each was accepted, and intervals became (nan, nan), (0, inf) or (-2e307, 3.29)
        ("residual_scale", float("nan"), "residual_scale must be a finite number"),
        ("residual_scale", -0.01, "residual_scale must be a number >= 0"),
        ("law_error_scale", 1e308, "law_error_scale must be a number >= 1 and <= 10000"),
        ("covariance", "not symmetric", "covariance must be symmetric"),
        ("covariance", "negative eigenvalue", "covariance must be positive semi-definite"),
        ("covariance", "huge", r"covariance's variances must be <= 10000"),
        ("other_params", 1e308, r"annealing fit's parameter .* must be a number >= 0 and <= 1e\+100"),
        ("objective", -1.0, "objective must be a number >= 0"),
        ("fitted_peaks", [3e-4, -1.0], "fitted_peaks"),
        ("notes", "a note", "notes must be a list of strings"),
    ],
)
def test_every_saved_number_is_checked_and_named(fitted, field, value, message):
    data = json.loads(fitted.to_json())
    cov = np.asarray(data["covariance"])
    if field == "covariance":
        bad = {"not symmetric": cov + np.triu(np.ones_like(cov), 1) * 0.1,
               "negative eigenvalue": cov - np.eye(len(cov)) * 10.0,
               "huge": cov + np.eye(len(cov)) * 1e300}[value]  # fmt: skip
        data["covariance"] = bad.tolist()
    elif field == "other_params":
        other = data["other_law_fits"][0]
        other["params"] = {**other["params"], "C": value}
    else:
        data[field] = value
    text = json.dumps(data)  # (NaN written as a NaN token: a hand edit, not what to_json writes)
    with pytest.raises(ValueError, match=message):
        LossLawFit.from_json(text)


def test_a_bad_covariance_in_a_prior_file_never_moves_a_forecast(fitted, tmp_path):
    # before: a prior whose covariance was not positive semi-definite moved a forecast by 1.7% and
    # flipped wsd plan --prior's ranking, with no error
    from wsd_plan import Forecast

    data = json.loads(fitted.to_json())
    data["covariance"] = (np.asarray(data["covariance"]) - np.eye(7)).tolist()
    path = tmp_path / "prior.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="positive semi-definite"):
        Forecast(WSDSpec(72_000, warmup_steps=lc.WARMUP, decay_steps=0), peak=lc.PEAK, prior=str(path))
