"""``fit_loss_law``: fit a law to logged runs; ``LossLawFit.predict``: any schedule's loss curve.

The fit minimises the published objective, a Huber loss (delta 1e-3) on ``log L - log prediction``
summed over every logged point of every run, in float64:

1. The power-law part ``L0 + A area^-alpha`` is fit first, on the points logged before each run's
   first LR drop (at the peak, where the drop terms are 0): a grid over ``alpha`` with linear least
   squares for ``L0`` and ``A``. No starting point is hand-tuned.
2. Levenberg-Marquardt (``_least_squares``: exact Jacobians, Huber weights, a mild prior on the
   drop term's shape) then runs on all the parameters (as logarithms, so each stays positive) from
   that start combined with a small fixed grid of the drop-term parameters; all starts run together
   (``vmap``) and the lowest objective wins. Same inputs, same fit.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import os
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from wsd_core.backend import check_choice, check_int
from wsd_plan import _fit_json
from wsd_plan._features import Features, features
from wsd_plan._ladder import ModelLadder, is_ladder_json
from wsd_plan._laws import LAWS, Law
from wsd_plan._least_squares import HUBER_DELTA, Data, Penalty, Solution, default_penalty, pack, solver
from wsd_plan._predictions import FitUncertainty, Predictions
from wsd_plan._runs import LossRun, check_step_array, learning_rates, resolve_warmup
from wsd_plan._transfer import penalty_from_prior, posterior_covariance
from wsd_plan._uncertainty import check_level, coordinates, z_value
from wsd_plan.calibration import Calibration, calibration_of, protocol_of

ITERATIONS = 200


def float64_mode() -> Any:
    """A context in which jax computes in float64: ``jax.enable_x64(True)`` from jax 0.8,
    ``jax.experimental.enable_x64()`` before (jax 0.10 removed the latter)."""
    enable: Any = getattr(jax, "enable_x64", None)
    if enable is None:
        enable = importlib.import_module("jax.experimental").enable_x64
    return enable(True)


def relative_errors(predicted: Any, measured: Any) -> np.ndarray:
    """``|pred - loss| / loss`` per point: PredE is their mean over a run, WorstE their max."""
    predicted, measured = np.asarray(predicted, np.float64), np.asarray(measured, np.float64)
    return np.abs(predicted - measured) / measured


def curve_metrics(predicted: Any, measured: Any) -> dict[str, float]:
    """The protocol's metrics of one run: PredE, WorstE, R^2, MAE and RMSE; and FinalE, the relative
    error of the last point (the loss a run ends with)."""
    predicted, measured = np.asarray(predicted, np.float64), np.asarray(measured, np.float64)
    err = relative_errors(predicted, measured)
    residual = predicted - measured
    total = float(np.sum((measured - measured.mean()) ** 2))
    return {
        "PredE": float(err.mean()),
        "WorstE": float(err.max()),
        "R2": 1.0 - float(np.sum(residual**2)) / total if total > 0 else float("nan"),
        "MAE": float(np.abs(residual).mean()),
        "RMSE": float(np.sqrt(np.mean(residual**2))),
        "FinalE": float(err[-1]),
    }


@dataclasses.dataclass(frozen=True)
class LossLawFit:
    """A fitted law: ``predict`` the loss curve of any schedule, its ``params``, how well it fit.

    Attributes:
      law: ``"multi-power"`` or ``"annealing"``.
      params: the fitted parameters by name.
      fit_metrics: per run it was fit on (by name, or ``run0``, ``run1``...), the curve metrics of its
        own prediction (``PredE``, ``WorstE``, ``R2``, ``MAE``, ``RMSE``).
      objective: the final Huber objective.
      fitted_peaks: the smallest and largest peak rate among the runs it was fit on (None when
        built by hand); a plan far outside them is warned about.
      notes: parameters these runs do not determine (``L0`` near 0, ``beta`` near 0 with ``B``
        huge), each said as a warning when the fit is made.
      covariance: the covariance of ``log(params)`` (``PARAMETERS[law]`` order) from the objective's
        curvature at the fit, scaled by the residuals (the Laplace approximation).
      residual_scale: the root-mean-square weighted log residual: the logged losses' noise and
        the law's misfit on its own runs, relative to the loss.
      prior: the earlier fit given as ``fit_loss_law(prior=)`` (None: none; not saved by ``to_json``).
      calibration: the factor on its intervals measured on real runs for what it was given (its
        ``protocol``), or None: the model-based intervals (``wsd_plan.calibration``).
    """

    def report(self, held_out: Sequence[LossRun] = ()) -> str:
        """The parameters, what the runs do not determine, and the errors on the runs it was fit on
        (and on ``held_out`` runs), as text: what ``wsd plan`` prints."""
        params = ", ".join(f"{k}={v:.4g}" for k, v in self.params.items())
        lines = [f"{self.law} law fit on {len(self.fit_metrics)} run(s): {params}"]
        lines += [f"  note: {n}" for n in self.notes]
        for label, metrics in (("fit", self.fit_metrics), ("held out", self.evaluate(held_out))):
            for name, m in metrics.items():
                errors = f"PredE {m['PredE']:.5f}  WorstE {m['WorstE']:.5f}  final {m['FinalE']:.5f}"
                lines.append(f"  {label:8s} {name}: {errors}")
        for i, run in enumerate(held_out):
            # the claim a plan makes, checked: is the measured final loss inside its 90% interval?
            (low,), (high,) = self.predict_interval(run.lrs, run.steps[-1:], warmup_steps=run.warmup_steps)
            inside = "inside" if low <= run.losses[-1] <= high else "OUTSIDE"
            lines.append(f"  held out {_label(run, i)}: final loss {run.losses[-1]:.4f} {inside} its 90% "
                         f"interval [{low:.4f}, {high:.4f}]")  # fmt: skip
        return "\n".join(lines)

    law: str
    params: dict[str, float]
    fit_metrics: dict[str, dict[str, float]]
    objective: float
    fitted_peaks: tuple[float, float] | None = None  # the smallest and largest peak rate fitted on
    notes: tuple[str, ...] = ()  # parameters the runs do not determine (see ``report``)
    # The Laplace covariance of log(params) and the residual scale (None when built by hand)
    covariance: np.ndarray | None = dataclasses.field(default=None, compare=False, repr=False)
    residual_scale: float | None = None
    # (AREA_WEIGHT log area, drop) of every fitted point, and the runs (for leave-one-run-out)
    fitted_coordinates: np.ndarray | None = dataclasses.field(default=None, compare=False, repr=False)
    fitted_runs: tuple[LossRun, ...] = dataclasses.field(default=(), compare=False, repr=False)
    # the earlier fit whose drop term stood in for what the runs do not determine (refits use it too)
    prior: LossLawFit | ModelLadder | None = dataclasses.field(default=None, compare=False, repr=False)
    # how its intervals are scaled, measured for what it was given (``wsd_plan.calibration``)
    calibration: Calibration | None = None

    def __post_init__(self) -> None:
        peaks = _fit_json.check_built(self.law, self.params, self.fitted_peaks, self.covariance)
        object.__setattr__(self, "fitted_peaks", peaks)
        if self.calibration is not None and not isinstance(self.calibration, Calibration):
            raise TypeError(
                f"calibration must be a Calibration or None, got {type(self.calibration).__name__}"
            )

    @property
    def protocol(self) -> str | None:
        """What the fit was given, as its calibration names it (``wsd_plan.calibration.PROTOCOLS``;
        None: not calibrated)."""
        return None if self.calibration is None else self.calibration.protocol

    @property
    def fit_error(self) -> dict[str, float]:
        """Over the runs it was fit on: the mean PredE and the worst WorstE."""
        runs = self.fit_metrics.values()
        return {
            "PredE": float(np.mean([m["PredE"] for m in runs])),
            "WorstE": float(max(m["WorstE"] for m in runs)),
        }

    def predict(
        self, lrs: Any, steps: Any, *, warmup_steps: int | None = None, peak: float | None = None
    ) -> np.ndarray:
        """The predicted loss at ``steps`` of a run with rates ``lrs`` from step 0.

        Args:
          lrs: the rate of every update up to ``max(steps)``, or a ``WSDSpec`` with ``peak``.
          steps: the steps to predict (ints, increasing).
          warmup_steps: as in ``LossRun`` (None: the spec's warmup, or up to the largest rate).
          peak: the stable rate of a ``WSDSpec``.
        """
        steps = check_step_array(steps)
        rates = learning_rates(lrs, int(steps[-1]) + 1, peak=peak)
        warmup = resolve_warmup(lrs, rates, warmup_steps)
        with float64_mode():
            f = on_device(features(rates, steps, warmup))
            curve = np.asarray(_jitted_law(self.law)(self.theta(), f))
        check_prediction(curve, steps, "the schedule")
        return curve

    def predict_interval(
        self,
        lrs: Any,
        steps: Any,
        *,
        level: float = 0.9,
        warmup_steps: int | None = None,
        peak: float | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(low, high)``: an interval on the loss at each of ``steps`` that holds with probability
        ``level``, from the parameters' uncertainty, the logged losses' noise and the law's own error
        at that distance from the fitted runs (``wsd_plan._uncertainty`` says how each is measured).

        Takes the arguments of ``predict``. A fit built by hand (no covariance, no fitted runs) gets
        the law's base error alone.
        """
        level = check_level(level)
        return self.predict_batch([lrs], [steps], warmup_steps=warmup_steps, peak=peak).interval(0, level)

    def predict_difference(
        self,
        lrs_a: Any,
        lrs_b: Any,
        step: int,
        *,
        level: float = 0.9,
        warmup_steps: int | None = None,
        peak: float | None = None,
    ) -> tuple[float, float]:
        """``(low, high)``: an interval on ``L_a(step) - L_b(step)`` that holds with probability
        ``level``. Most of two predictions' error is shared (the same parameters, a similar
        extrapolation), so this is much narrower than the difference of two ``predict_interval`` results:
        where it excludes 0, the two schedules are distinguishable.
        """
        level = check_level(level)
        step = check_int("step", step, minimum=0)
        both = self.predict_batch([lrs_a, lrs_b], [[step], [step]], warmup_steps=warmup_steps, peak=peak)
        return both.difference_interval(0, 1, level)

    def predict_batch(
        self,
        schedules: Iterable[Any],
        steps: Iterable[Any],
        *,
        warmup_steps: int | None = None,
        peak: float | None = None,
        labels: Sequence[str] | None = None,
    ) -> Predictions:
        """Several runs' predicted curves and their uncertainty, in one batched evaluation: what a plan
        ranks by and what ``predict_interval`` and ``predict_difference`` are made of.

        Args:
          schedules: each run's rates from step 0 (or a ``WSDSpec`` with ``peak``), as for
            ``predict``; read one at a time, so a generator keeps one run's rates in memory at once.
          steps: each run's steps to predict (ints, increasing); the last is its "final" step.
          warmup_steps, peak: as for ``predict``, the same for every run.
          labels: each run's name in an error (a prediction that is not a finite positive loss).

        Returns:
          ``Predictions``: ``curves``, ``final``, ``interval(run, level)``, ``final_intervals(level)``,
          ``difference_interval(a, b, level)``.
        """
        runs, checked = [], []
        for lrs, at in zip(schedules, steps, strict=True):
            at = check_step_array(at)
            rates = learning_rates(lrs, int(at[-1]) + 1, peak=peak)
            runs.append(features(rates, at, resolve_warmup(lrs, rates, warmup_steps)))
            checked.append(at)
        if not runs:
            raise ValueError("predict_batch needs at least one schedule")
        with float64_mode():
            predicted = _predict_many(self.law, self.theta(), runs)
        for i, ((curve, _), at) in enumerate(zip(predicted, checked, strict=True)):
            check_prediction(curve, at, "the schedule" if labels is None else labels[i])
        curves = tuple(c for c, _ in predicted)
        points = tuple(coordinates(self.params, f.area, c) for f, c in zip(runs, curves, strict=True))

        def other_laws() -> tuple[tuple[np.ndarray, ...], ...]:
            with float64_mode():
                return tuple(
                    tuple(c for c, _ in _predict_many(other.law, other.theta(), runs))
                    for other in self.other_law_fits
                )

        return Predictions(curves, tuple(j for _, j in predicted), points, self._uncertainty(), other_laws)

    def _uncertainty(self) -> FitUncertainty:
        return FitUncertainty(
            self.covariance,
            self.residual_scale,
            self.fitted_coordinates,
            lambda: self.law_error_scale,
            self.calibration,
        )

    @functools.cached_property
    def law_error_scale(self) -> float:
        """The factor (>= 1) on the law's error chosen by leaving each fitted run out: the smallest
        that puts every left-out run's final loss inside the 90% interval of the fit on the others
        (1 where no run can be left out). Computed on first use: it refits the law once per run
        (``measure_law_error`` does it now, saying each refit)."""
        return self._leave_each_run_out(None)

    def measure_law_error(self, progress: Callable[[int, int, str, float], None] | None = None) -> float:
        """``law_error_scale``, computed now if it was not: ``progress(k, n, run name, seconds)`` is
        called after each of the n refits (``wsd fit --save`` prints them)."""
        if "law_error_scale" not in self.__dict__:
            self.__dict__["law_error_scale"] = self._leave_each_run_out(progress)
        return self.law_error_scale

    def _leave_each_run_out(self, progress: Callable[[int, int, str, float], None] | None) -> float:
        needed = [1.0]
        for i in range(len(self.fitted_runs)):
            others = self.fitted_runs[:i] + self.fitted_runs[i + 1 :]
            if not others:
                continue
            start = time.perf_counter()
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    sub = fit_loss_law(others, self.law, prior=self.prior)
                    run = self.fitted_runs[i]
                    left_out = sub.predict_batch([run.lrs], [run.steps[-1:]], warmup_steps=run.warmup_steps)
            except ValueError:  # the others cannot be fit alone (no LR drop left, too few points)
                continue
            finally:
                if progress is not None:
                    progress(
                        i + 1,
                        len(self.fitted_runs),
                        _label(self.fitted_runs[i], i),
                        time.perf_counter() - start,
                    )
            (sd,), (sd_without_law,) = (left_out.log_sd(0, scale=scale) for scale in (1.0, 0.0))
            # the smallest s with |error| <= z sqrt(sd_without_law^2 + s^2 law^2)
            error = abs(float(np.log(run.losses[-1] / left_out.final[0]))) / z_value(0.9)
            law2 = float(sd**2 - sd_without_law**2)
            needed.append(float(np.sqrt(max(error**2 - float(sd_without_law) ** 2, 0.0) / law2)))
        return max(needed)

    @functools.cached_property
    def other_law_fits(self) -> tuple[LossLawFit, ...]:
        """Every other law of ``LAWS`` fitted to the same runs (those the runs can determine): every
        interval holds theirs too (``wsd_plan._uncertainty``, "The choice of law"). Fitted on first
        use; empty for a fit built by hand."""
        fits = []
        for law in LAWS:
            if law == self.law or not self.fitted_runs:
                continue
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    fits.append(fit_loss_law(self.fitted_runs, law, prior=self.prior))
            except (ValueError, RuntimeError):  # the runs do not determine that law, or it diverged
                continue
        return tuple(fits)

    def to_json(self) -> str:
        """The fit as JSON text, to keep or pass on (e.g. as another run's prior): ``from_json`` reads
        it back into a fit that predicts, with the same intervals, as this one. The fitted runs are
        not saved; ``law_error_scale`` and ``other_law_fits``, which need them, are computed first
        (``wsd_plan._fit_json`` has the format).

        Examples:
          >>> fit = LossLawFit("annealing", {"L0": 3.0, "A": 0.5, "alpha": 0.5, "C": 1.0}, {}, 0.0)
          >>> LossLawFit.from_json(fit.to_json()) == fit
          True
        """
        return _fit_json.dumps(self._saved_fields(with_others=True))

    def _saved_fields(self, *, with_others: bool) -> dict[str, Any]:
        unsaved = ("fitted_runs", "prior")
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in unsaved}
        if with_others:  # (another law's fit is saved for its predictions alone: no scale, no others)
            fields["law_error_scale"] = self.law_error_scale
            others = self.other_law_fits
            fields["other_law_fits"] = [other._saved_fields(with_others=False) for other in others]
        return fields

    @classmethod
    def from_json(cls, text: str) -> LossLawFit:
        """A fit saved by ``to_json``. Refuses text that is not one, naming what is wrong."""
        if not isinstance(text, str):
            raise TypeError(f"from_json takes the JSON text (str), got {type(text).__name__}")
        return _from_saved(_fit_json.loads(text))

    def theta(self) -> jax.Array:
        """The parameters as the laws take them: their logarithms, in ``PARAMETERS[law]`` order
        (float64: call under ``float64_mode()``)."""
        return jnp.log(jnp.asarray([self.params[n] for n in LAWS[self.law].parameters], jnp.float64))

    def predict_run(self, run: LossRun) -> np.ndarray:
        """The predicted loss at ``run``'s logged steps (its own warmup)."""
        return self.predict(run.lrs, run.steps, warmup_steps=run.warmup_steps)

    def evaluate(self, runs: Sequence[LossRun]) -> dict[str, dict[str, float]]:
        """Curve metrics of the prediction of each run (by name), over its points after the warmup:
        how well the law predicts held-out runs."""
        check_distinct_names(runs)
        runs = [r.after_warmup() for r in runs]
        return {_label(r, i): curve_metrics(self.predict_run(r), r.losses) for i, r in enumerate(runs)}


def _from_saved(fields: dict[str, Any]) -> LossLawFit:
    """A fit from ``_fit_json``'s checked fields; what was computed before saving is not recomputed."""
    scale, others = fields.pop("law_error_scale", None), fields.pop("other_law_fits", ())
    fit = LossLawFit(**fields)
    # (cached properties: set in the instance's dict, as their first use would)
    if scale is not None:
        fit.__dict__["law_error_scale"] = scale
    fit.__dict__["other_law_fits"] = tuple(_from_saved(other) for other in others)
    return fit


@functools.cache
def _jitted_law(law: str) -> Any:
    return jax.jit(LAWS[law].curve)


def curve_and_jacobian(law: str, theta: jax.Array, f: Features) -> tuple[jax.Array, jax.Array]:
    """The law's curve and the Jacobian of its log in ``theta`` (points x parameters)."""
    curve = LAWS[law].curve
    return curve(theta, f), jax.jacfwd(lambda t: jnp.log(curve(t, f)))(theta)


def _predict_many(
    law: str, theta: jax.Array, runs: Sequence[Features]
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Every run's curve and the Jacobian of its log in one call: features padded to common shapes
    (padding adds 0; padded points repeat the last one and are cut off again)."""
    points = max(f.area.shape[0] for f in runs)
    terms = max(f.drop_size.shape[1] for f in runs)

    def pad(f: Features) -> Features:
        n, k = f.drop_size.shape
        p2 = lambda a: np.pad(a, ((0, points - n), (0, terms - k)))
        p1 = lambda a: np.pad(a, (0, points - n), mode="edge")
        return Features(p1(f.area), p1(f.s2), p2(f.drop_size), p2(f.drop_log_lr), p2(f.drop_area_since))

    stacked = Features(*(np.stack(xs) for xs in zip(*(pad(f) for f in runs), strict=True)))
    with float64_mode():
        curves, jacs = (np.asarray(a) for a in _batched(law)(theta, on_device(stacked)))
    return [(c[: f.area.shape[0]], j[: f.area.shape[0]]) for c, j, f in zip(curves, jacs, runs, strict=True)]


@functools.cache
def _batched(law: str) -> Any:
    return jax.jit(jax.vmap(functools.partial(curve_and_jacobian, law), in_axes=(None, 0)))


def on_device(f: Features) -> Features:
    """``f`` as jax arrays (inside ``float64_mode``: float64 ones), for a law's curve."""
    return Features(*(jnp.asarray(v) for v in f))


def _label(run: LossRun, i: int) -> str:
    return run.name or f"run{i}"


def check_distinct_names(runs: Sequence[LossRun], what: str = "runs") -> None:
    """Runs are reported by name: two of one name would collapse into one line, one run's metrics
    lost. Refused, naming them (an unnamed run is ``run<i>``)."""
    seen: dict[str, int] = {}
    for i, run in enumerate(runs):
        label = _label(run, i)
        if label in seen:
            raise ValueError(
                f"{what} {seen[label]} and {i} are both named {label!r} (the same log twice, or two "
                "logs of one file name?); give each its own name: LossRun(..., name=...), "
                "load_run(..., name=...), or in wsd plan a log path of another file name"
            )
        seen[label] = i


def fit_loss_law(
    runs: Sequence[LossRun],
    law: str = "multi-power",
    *,
    iterations: int = ITERATIONS,
    prior: LossLawFit | ModelLadder | str | os.PathLike | None = None,
    start: LossLawFit | None = None,
) -> LossLawFit:
    """Fits ``law`` to the logged losses of ``runs``.

    Args:
      runs: ``LossRun``s; losses logged before the end of a run's warmup are left out. The
        Multi-Power Law needs at least one run with an LR drop to learn its drop term (or a
        ``prior``); both laws need points logged at the peak rate.
      law: ``"multi-power"`` (seven parameters) or ``"annealing"`` (four).
      iterations: the most Levenberg-Marquardt iterations per start (each solves a 7x7 system).
      prior: an earlier fit (of other runs: another peak, model size or dataset), or the path of one
        saved with ``to_json`` (``wsd fit --save``), whose drop term, widened by how far it moves
        between models, stands in for what ``runs`` do not determine: with one, ``runs`` may be a
        trunk alone, a run with no LR drop yet (``wsd_plan._transfer`` says what carries over and
        how sure it is). Its law, or its fit of ``law`` among ``other_law_fits``, is used. Or a
        ``ModelLadder`` (or the path of one saved with its ``to_json``): fits of other model sizes,
        whose drop term moves with the parameter count (``wsd_plan._ladder``).
      start: a fit of ``law`` to start the solver from instead of its grid of starting points: the
        previous fit of a log that has grown since (``Forecast`` refits so), a few iterations from
        the new optimum. (The solver only ever lowers the objective, so a start cannot diverge.)

    Returns:
      A ``LossLawFit``.

    Examples:
      >>> import numpy as np
      >>> lrs = np.full(3000, 1e-3)
      >>> steps = np.arange(200, 3000, 100)
      >>> losses = 3.0 + 2.0 * np.cumsum(lrs)[steps] ** -0.5
      >>> fit = fit_loss_law([LossRun(lrs=lrs, steps=steps, losses=losses, warmup_steps=0)], "annealing")
      >>> fit.fit_error["WorstE"] < 1e-4
      True
    """
    spec = LAWS[check_choice("law", law, LAWS)]
    iterations = check_int("iterations", iterations, minimum=1)
    given = None if prior is None else check_prior(load_prior(prior), law)
    runs = _fittable_runs(runs, spec, prior=given is not None)
    host = [features(r.lrs, r.steps, r.warmup_steps) for r in runs]
    data = pack(host, [r.losses for r in runs])
    if given is None:
        penalty, prior_theta = default_penalty(spec), None
    else:
        peak = float(np.exp(np.mean([np.log(r.lrs.max()) for r in runs])))
        penalty, prior_theta = _penalty_of(spec, given, peak, given.residual_scale or HUBER_DELTA)
    starts = _starts(spec, power_law_start(runs, host), None if given is None else penalty, start)
    found = _solve_best(spec, starts, data, iterations, penalty, runs)
    if given is not None:  # again, the prior weighed by these runs' own noise (wsd_plan._transfer)
        penalty, prior_theta = _penalty_of(spec, given, peak, float(found.residual_scale))
        found = _solve_best(spec, np.asarray(found.variables)[None], data, iterations, penalty, runs)
    with float64_mode():
        theta = np.asarray(spec.to_theta(found.variables))
    params = dict(zip(spec.parameters, (float(v) for v in np.exp(theta)), strict=True))
    hessian, scale = np.asarray(found.hessian), float(found.residual_scale)
    if prior_theta is None:
        covariance = _covariance(spec.theta_jacobian(), hessian, scale)
    else:
        covariance = posterior_covariance(spec, hessian, penalty, prior_theta, scale)
    peaks = [float(r.lrs.max()) for r in runs]
    notes = undetermined(params, min(float(r.losses.min()) for r in runs))
    for note in notes:
        warnings.warn(f"the {law} fit: {note}", UserWarning, stacklevel=2)
    with float64_mode():
        theta_device = jnp.asarray(theta)
        curves = [np.asarray(_jitted_law(law)(theta_device, on_device(f))) for f in host]
    fitted = np.concatenate([coordinates(params, f.area, c) for f, c in zip(host, curves, strict=True)])
    protocol = protocol_of(drops=any(_drops(r) for r in runs), prior=given is not None,
                           prior_peaks=None if given is None else given.fitted_peaks,
                           peak=float(np.exp(np.mean(np.log(peaks)))),
                           ladder=isinstance(given, ModelLadder))  # fmt: skip
    fit = LossLawFit(law, params, {}, float(found.objective), fitted_peaks=(min(peaks), max(peaks)),
                     notes=notes, covariance=covariance, residual_scale=scale, fitted_coordinates=fitted,
                     fitted_runs=tuple(runs), prior=given,
                     calibration=calibration_of(law, protocol))  # fmt: skip
    return dataclasses.replace(fit, fit_metrics=fit.evaluate(runs))


def _penalty_of(
    spec: Law, prior: LossLawFit | ModelLadder, peak: float, noise: float
) -> tuple[Penalty, np.ndarray]:
    if isinstance(prior, ModelLadder):
        return prior.penalty(spec, peak=peak, noise=noise)
    return penalty_from_prior(
        spec, prior.params, prior.covariance, prior.fitted_peaks, peak=peak, noise=noise
    )


def load_prior(prior: Any, name: str = "prior") -> LossLawFit | ModelLadder | None:
    """A prior as every entry point takes it (``fit_loss_law``, ``Forecast``, ``wsd plan --prior``): a
    ``LossLawFit`` or ``ModelLadder``, the path of one saved with its ``to_json`` (``wsd fit --save``),
    or None. A file that cannot be read, or is neither, is refused naming ``name`` and the path."""
    if prior is None or isinstance(prior, (LossLawFit, ModelLadder)):
        return prior
    if not isinstance(prior, (str, os.PathLike)):
        raise TypeError(
            f"{name} must be a LossLawFit or ModelLadder, the path of one saved with to_json, or None; got "
            f"{type(prior).__name__}"
        )
    path = os.fspath(prior)
    text = _fit_json.read_saved(path, name)
    try:
        return ModelLadder.from_json(text) if is_ladder_json(text) else LossLawFit.from_json(text)
    except ValueError as e:
        raise ValueError(f"{name} {path}: {e}") from None


def check_prior(prior: object, law: str) -> LossLawFit | ModelLadder:
    """``prior`` as a fit of ``law``: itself, or its fit of that law among ``other_law_fits`` (for a
    ``ModelLadder``, each size's)."""
    if isinstance(prior, ModelLadder):
        return prior.of_law(law)
    if not isinstance(prior, LossLawFit):
        raise TypeError(
            f"prior must be a LossLawFit (fit_loss_law's result, or LossLawFit.from_json of a saved one) "
            f"or a ModelLadder, got {type(prior).__name__}"
        )
    if prior.law == law:
        return prior
    for other in prior.other_law_fits:
        if other.law == law:
            return other
    raise ValueError(
        f"prior is a {prior.law} fit and holds no {law} fit (its other_law_fits: "
        f"{[o.law for o in prior.other_law_fits]}): fit law={prior.law!r}, or give a prior of the {law} law"
    )


def _fittable_runs(runs: Sequence[LossRun], spec: Law, *, prior: bool) -> list[LossRun]:
    """``runs`` after their warmups, checked: enough points, and an LR drop where the law needs one
    and no ``prior`` stands in for it."""
    law, runs = spec.name, list(runs)
    if not runs or not all(isinstance(r, LossRun) for r in runs):
        raise TypeError(f"runs must be a non-empty sequence of LossRun, got {runs!r:.200}")
    check_distinct_names(runs)
    runs = [_without_zero_area(r.after_warmup(), i) for i, r in enumerate(runs)]
    points = sum(r.steps.size for r in runs)
    if points < len(spec.parameters):
        raise ValueError(
            f"the {law} law has {len(spec.parameters)} parameters but the runs hold {points} logged "
            "point(s) after their warmups: log more points (a fit through fewer points is exact and "
            "says nothing)"
        )
    if spec.needs_drop and not prior and not any(_drops(r) for r in runs):
        raise ValueError(
            f"a {law} fit needs a run whose rate drops after its warmup (a cooldown, or a step "
            f"decay): without one its drop term ({', '.join(spec.drop_parameters)}) is not determined by "
            "the data. Add such a run, give a prior (fit_loss_law(..., prior=an earlier fit)), or fit "
            "law='annealing'"
        )
    return runs


def _starts(spec: Law, power: tuple[float, float, float], penalty: Penalty | None, start: Any) -> np.ndarray:
    """The solver's starting points: ``start``'s parameters alone (a warm start), else the law's grid
    from the power-law part's fit, and with a prior's ``penalty`` that fit with the prior's drop term."""
    if start is not None:
        if not isinstance(start, LossLawFit) or start.law != spec.name:
            raise TypeError(f"start must be a LossLawFit of the {spec.name} law, got {start!r:.200}")
        return spec.to_variables(np.log([start.params[n] for n in spec.parameters]))[None]
    starts = spec.starts(*power)
    if penalty is None:
        return starts
    # (L0, A and alpha are the solver's first variables, as the laws' power-law part)
    from_prior = np.array(penalty.mean, np.float64)
    from_prior[:3] = np.log(power)
    return np.concatenate([starts, from_prior[None]])


def _solve_best(
    spec: Law, starts: np.ndarray, data: Data, iterations: int, penalty: Penalty, runs: Sequence[LossRun]
) -> Solution:
    """The solver's best solution over ``starts`` (the lowest objective); an error where every start
    diverged."""
    # float64 in and out: a jax before 0.8 truncates a float64 array to float32 outside the context
    # (the starts of a refit, the solution's fields), so the solution leaves it as host arrays
    with float64_mode():
        penalty_device = Penalty(*(jnp.asarray(a) for a in penalty))
        found = solver(spec.name)(jnp.asarray(starts, jnp.float64), _on_device_data(data),
                                  jnp.asarray(iterations), penalty_device)  # fmt: skip
        found = Solution(*(np.asarray(a) for a in found))
    values = found.objective
    values = np.where(np.isfinite(values), values, np.inf)
    best = int(np.argmin(values))
    if not np.isfinite(values[best]):
        peaks = ", ".join(f"{p:g}" for p in sorted({float(r.lrs.max()) for r in runs}))
        raise RuntimeError(
            f"the {spec.name} fit diverged from every starting point: no parameters describe these runs. "
            f"Are their rates the ones they were trained with (peak rates {peaks}; "
            "in wsd plan, --peak and the SCHEDULE files)? Or try law='annealing'"
        )
    return Solution(*(a[best] for a in found))


def undetermined(params: dict[str, float], lowest_loss: float) -> tuple[str, ...]:
    """What the fitted runs leave undetermined: the parameters that mean nothing on their own.

    * a parameter at 0: its logarithm ran off to minus infinity (the edge of the search range).
    * ``L0`` (the loss at infinite compute) near 0: the power-law term absorbed it.
    * ``beta`` near 0 (multi-power): the drop term ``B (1 - (C x + 1)**-beta)`` tends to
      ``B beta ln(1 + C x)``, so only the product ``B beta`` is fixed by the data; ``B`` runs off
      to a huge value to compensate.
    """
    notes = []
    # L0 and beta have their own notes below (a vanishing beta is the B*beta trade-off, not the edge)
    edge = [name for name, value in params.items() if name not in ("L0", "beta") and value < 1e-12]
    if edge:
        notes.append(
            f"{', '.join(f'{n} = {params[n]:.3g}' for n in edge)}: at the edge of the search range (the "
            "parameters are fit as logarithms, and these ran off to minus infinity); the law does not "
            "describe these runs"
        )
    if params["L0"] < 1e-3 * lowest_loss:
        notes.append(
            f"L0 = {params['L0']:.3g} is near 0 (the lowest logged loss is {lowest_loss:.4g}): these runs "
            "are too short to determine the loss at infinite compute, so the power-law term stands in for "
            "it. Predictions within and near the runs' length are unaffected; far beyond it they are "
            "less sure, and longer runs would pin L0 down"
        )
    if "beta" in params and params["beta"] < 1e-3:
        notes.append(
            f"beta = {params['beta']:.3g} is near 0 with B = {params['B']:.3g}: only B*beta = "
            f"{params['B'] * params['beta']:.4g} is determined (the drop term is then B*beta*ln(1 + C*x)); "
            "B and beta alone mean nothing. Predictions can still be accurate; a run with another "
            "decay shape or floor would determine them"
        )
    return tuple(notes)


def _drops(run: LossRun) -> bool:
    """Whether the rate falls anywhere between the end of the warmup and the last logged step."""
    seen = run.lrs[run.warmup_steps : int(run.steps[-1]) + 1]
    return bool(seen.size > 1 and (np.diff(seen) < 0).any())


def _without_zero_area(run: LossRun, i: int) -> LossRun:
    """``run`` without the points logged before any rate was applied (a step-0 log): the laws' loss
    there is a power of a zero area, infinite. Left out with a warning."""
    area = np.concatenate([[0.0], np.cumsum(run.lrs)])[run.steps]
    keep = area > 0
    if keep.all():
        return run
    if not keep.any():
        raise ValueError(f"run {_label(run, i)!r}: every logged point has zero LR area (no rate applied yet)")
    warnings.warn(
        f"run {_label(run, i)!r}: left out the point(s) at step(s) {run.steps[~keep].tolist()[:5]}, "
        "logged before any learning rate was applied (zero LR area)",
        UserWarning,
        stacklevel=3,
    )
    return dataclasses.replace(run, steps=run.steps[keep], losses=run.losses[keep])


def check_prediction(curve: np.ndarray, steps: np.ndarray, what: str) -> None:
    """A predicted loss must be finite and > 0; a law pushed outside what it was fit on can give
    neither, and a ranking built on that would be confidently wrong."""
    bad = np.flatnonzero(~np.isfinite(curve) | (curve <= 0))
    if bad.size:
        raise ValueError(
            f"the law predicts a loss of {curve[bad[0]]:g} at step {int(steps[bad[0]])} for {what}: "
            "outside what it can describe (a peak or length far from the runs it was fit on?)"
        )


def _on_device_data(data: Data) -> Data:
    return Data(on_device(data.features), jnp.asarray(data.log_loss), jnp.asarray(data.weight))


def _covariance(m: np.ndarray, hessian: np.ndarray, scale: float) -> np.ndarray:
    """The covariance of ``theta = log(params)``: ``scale^2`` times the inverse Gauss-Newton matrix of
    the solver's variables (the Laplace approximation), carried to ``theta`` by the linear map ``m``
    (``Law.theta_jacobian``)."""
    cov_u = scale**2 * np.linalg.pinv(hessian, hermitian=True)
    return m @ cov_u @ m.T


def power_law_start(runs: Sequence[LossRun], host: Sequence[Features]) -> tuple[float, float, float]:
    """L0, A, alpha of ``L = L0 + A area^-alpha`` on the points before each run's first LR drop; where
    fewer than 3 are (a power stable phase falls from the warmup on), on the quarter of all points
    that have dropped least (at least 3): a start, which the solver then corrects."""
    drops = np.concatenate([f.drop_size.sum(axis=-1) for f in host])  # a warmup rise is no drop
    x = np.concatenate([f.area for f in host])
    y = np.concatenate([r.losses for r in runs])
    at_peak = drops == 0
    if at_peak.sum() >= 3:
        x, y = x[at_peak], y[at_peak]
    elif x.size >= 3:
        least = np.argsort(drops, kind="stable")[: max(3, x.size // 4)]
        x, y = x[least], y[least]
    else:
        raise ValueError(
            f"the fit needs at least 3 logged points to fit the power-law part; these runs have {x.size}"
        )
    best = (np.inf, float(y.min()) * 0.9, 1.0, 0.5)
    for alpha in np.linspace(0.05, 2.0, 79):
        design = np.stack([np.ones_like(x), x**-alpha], axis=1)
        (l0, a), *_ = np.linalg.lstsq(design, y, rcond=None)
        if l0 <= 0 or a <= 0:
            continue
        err = float(np.sum((np.log(y) - np.log(l0 + a * x**-alpha)) ** 2))
        if err < best[0]:
            best = (err, float(l0), float(a), float(alpha))
    return best[1], best[2], best[3]
