"""Runs read from the files a training loop leaves (``load_run``, ``wsd plan``, ``wsd fit``), as they
come: logs that start inside the warmup, steps counted in tokens, a trunk still warming up, priors
that are damaged or not fits at all. Each is planned, or refused before any work with an error that
says what to do, in the command's own words."""

from __future__ import annotations

import json
import random
import re
import warnings

import numpy as np
import pytest

pytest.importorskip("jax")
pytest.importorskip("scipy")

from wsd_core import WSDSpec
from wsd_core.cli import main
from wsd_plan import LossLawFit, fit_loss_law, load_run

PEAK = 3e-4
SPEC = WSDSpec(20_000, warmup_steps=500, decay_steps=4000, decay_shape="linear")
TRUTH = LossLawFit(
    "multi-power", dict(L0=3.0, A=0.5, alpha=0.5, B=400.0, C=2.0, beta=0.6, gamma=0.6), {}, 0.0
)


def _files(tmp_path, *, every: int = 100, first: int = 100, scale: int = 1, until: int = 20_000):
    """A log from step ``first`` (inside the warmup) with its WSDSpec schedule as JSON; steps times
    ``scale`` (tokens or samples per update, as a logger counting those would write them)."""
    steps = np.arange(first, until + 1, every)
    losses = TRUTH.predict(SPEC, steps, peak=PEAK)
    log = tmp_path / "run.csv"
    log.write_text(
        "step,loss\n" + "".join(f"{s * scale},{float(x)!r}\n" for s, x in zip(steps, losses, strict=True))
    )
    schedule = tmp_path / "spec.json"
    schedule.write_text(json.dumps(SPEC.to_dict()))
    return str(log), str(schedule)


def test_a_log_that_starts_inside_the_warmup_fits_with_its_spec(tmp_path):
    # before: "peak is only for lrs given as a WSDSpec" from LossRun.after_warmup, for every log with a
    # row inside the warmup (Lightning's own metrics.csv); the shipped examples start after it
    run = load_run(*_files(tmp_path), peak=PEAK)
    assert run.warmup_steps == 500 and run.steps[0] == 100
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = fit_loss_law([run])
    assert fit.fit_error["PredE"] < 1e-3


def test_wsd_plan_and_wsd_fit_plan_such_a_log(tmp_path, capsys):
    log, schedule = _files(tmp_path)
    main(["fit", "--run", log, schedule, "--peak", str(PEAK), "--save", str(tmp_path / "fit.json")])
    main(["plan", "--run", log, schedule, "--peak", str(PEAK), "--trunk", schedule, "--at", "10000",
          "--lengths", "2000"])  # fmt: skip
    assert "runs of 12000 updates" in capsys.readouterr().out


@pytest.mark.parametrize("scale, per", [(524_288, "524,288"), (256, "256")])
def test_steps_counted_in_tokens_or_samples_are_refused_before_any_allocation(tmp_path, scale, per):
    # before: tokens (x524288) ended in a traceback allocating 78 GiB; samples (x256) were accepted, and
    # the plan predicted 6.17 +- 4.55 for a trunk at 3.06
    log, schedule = _files(tmp_path, scale=scale)
    with pytest.raises(ValueError, match=rf"past the schedule's end at update 20,000.*look like tokens or "
                       rf"samples \({per} per update\?\)"):  # fmt: skip
        load_run(log, schedule, peak=PEAK)


def test_a_trunk_still_in_its_warmup_is_refused_saying_so(tmp_path, capsys):
    # before: "warmup_steps (len(lrs) = 401) must be ... <= 401, got 500"
    log, schedule = _files(tmp_path, until=400)
    with pytest.raises(ValueError, match=r"still in its warmup \(update 400 of 500\): nothing to fit"):
        load_run(log, schedule, peak=PEAK)


def _run_cli(args: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as exit_:
        main(args)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "Traceback" not in err, err
    return err


def test_cli_errors_name_flags_not_python_keywords(tmp_path, capsys):
    # before: "fit law='multi-power'", "prior=an earlier fit", "Or try law='annealing'"
    log, schedule = _files(tmp_path, until=15_000)  # a trunk alone: no LR drop
    trunk = [log, schedule, "--peak", str(PEAK)]
    err = _run_cli(["fit", "--run", *trunk], capsys)
    assert "--prior FIT.json" in err and "--law annealing" in err
    annealing = tmp_path / "annealing.json"
    annealing.write_text(LossLawFit("annealing", dict(L0=3.0, A=0.5, alpha=0.5, C=1.0), {}, 0.0).to_json())
    err = _run_cli(["plan", "--run", *trunk, "--trunk", schedule, "--at", "10000", "--lengths", "2000",
                    "--prior", str(annealing)], capsys)  # fmt: skip
    assert "--prior is a annealing fit" in err and "--law annealing" in err
    for keyword in ("prior=", "law=", "law='"):
        assert keyword not in err


def test_a_schedule_given_as_a_prior_is_named_as_one(tmp_path, capsys):
    # before: "'format' must be 'wsd_plan.LossLawFit', got None"
    _, schedule = _files(tmp_path)
    err = _run_cli(["plan", "--published", "lm-25M", "--prior", schedule], capsys)
    assert "this is a schedule (a WSDSpec's fields)" in err


def _mutations(value, rng: random.Random):
    """Every way to damage one entry of a saved fit: another type, a number out of range, a cut list."""
    junk = [None, True, "x", -1.0, 0.0, 1e308, float("nan"), [], {}, [1.0], [[1.0, 2.0], [3.0]], {"a": 1}]
    yield from junk
    if isinstance(value, list) and value:
        yield value[:-1]
        yield [value[0]] * (len(value) + 1)


def test_a_damaged_prior_file_is_refused_never_a_traceback(tmp_path, capsys):
    # before: an IndexError or AttributeError traceback for some damage
    saved = json.loads(TRUTH_FIT.to_json())
    rng = random.Random(0)
    paths = [(k,) for k in saved] + [("other_law_fits", 0, k) for k in saved["other_law_fits"][0]]
    cases = 0
    for path in paths:
        parent = saved
        for key in path[:-1]:
            parent = parent[key]
        for bad in _mutations(parent[path[-1]], rng):
            damaged = json.loads(json.dumps(saved))
            target = damaged
            for key in path[:-1]:
                target = target[key]
            target[path[-1]] = bad
            try:
                LossLawFit.from_json(json.dumps(damaged))
            except ValueError:
                cases += 1
            # (a damage that leaves a valid fit, e.g. notes=[], is accepted: nothing to refuse)
    assert cases > 100
    bad = tmp_path / "prior.json"
    bad.write_text(json.dumps({**saved, "covariance": [[1.0, 2.0], [3.0]]}))
    err = _run_cli(["plan", "--published", "lm-25M", "--prior", str(bad)], capsys)
    assert re.search(r"--prior .*prior.json: a saved multi-power fit's covariance must be a matrix", err)


TRUTH_FIT = LossLawFit(
    "multi-power", TRUTH.params, {"a": {"PredE": 0.001, "R2": float("nan")}}, 0.5, fitted_peaks=(PEAK, PEAK),
    notes=("a note",), covariance=np.eye(7) * 0.01, residual_scale=0.001,
    fitted_coordinates=np.zeros((3, 2)),
)  # fmt: skip
TRUTH_FIT.__dict__["law_error_scale"] = 1.0
TRUTH_FIT.__dict__["other_law_fits"] = (
    LossLawFit("annealing", dict(L0=3.0, A=0.5, alpha=0.5, C=1.0), {}, 0.0, residual_scale=0.001),
)
