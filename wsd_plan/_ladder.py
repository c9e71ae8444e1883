"""A prior for a model of one size from fits of other sizes (a model ladder): ``ModelLadder``.

A trunk alone leaves a law's drop term to a prior (``wsd_plan._transfer``). One earlier fit carries
its drop term as it is, widened by ``TRANSFER_SD``; a ladder of fits at several sizes moves the law's
parameters with the size. Each combination ``c`` the prior holds is taken as a line in
``x = log(parameters)``, a power law in the parameter count:

    c_i = a + b (x_i - x) + e_i,    e_i ~ N(0, S_i + T),   T = diag(tau_j^2)

where ``S_i`` is fit ``i``'s own (Laplace) covariance of its combinations and ``tau_j`` how far a
size strays from the line beyond that. ``a`` is the prediction at the target's size ``x``. The slope
``b`` has a Gaussian prior ``N(0, SLOPE_SD^2)`` per unit of ``log N``, so that a ladder of one size
is the single-fit prior again (widened by the slope's variance the farther the target is) and two
sizes do not fix a slope by noise alone. The prior given to the fit is ``a``'s posterior (mean and
covariance: it grows with the extrapolation's leverage, ``x_i - x``) plus ``T``, the target's own
deviation from the line.

**The combinations.** The drop term's, as one fit carries them (``_transfer.carry_rows``:
``log(B peak / A)``, ``log C``, ``log beta``, ``log gamma`` for the Multi-Power Law); and, with two
sizes or more and a run at a peak rate within those the ladder was fitted at, the power-law part
``log L0``, ``log A``, ``log alpha``, which a short trunk does not pin down yet (a SlimPajama 33M
trunk seen for 2,400 updates fits ``alpha`` 0.77 against 0.58 from all its runs, and misses its
cooldown by 1.1% even with the drop term of its own full fit). ``A`` and ``alpha`` are in units of
the rate's area, which Schaipp et al.'s ladder shows carrying across its two peaks (1e-3 up to 93M,
5e-4 above: one line through both); beyond the ladder's peaks they are left to the runs.

**tau.** Each combination's restricted maximum likelihood estimate (``a`` and ``b`` integrated out)
over ``TAU_GRID``, where the ladder has at least ``MIN_SIZES_FOR_TAU`` sizes; never below
``POWER_LAW_TAU`` for the power-law part (the largest estimates on the SlimPajama ladder, each size
left out in turn) nor, at a peak outside the ladder's, below ``TRANSFER_SD`` for the drop term. With
fewer sizes tau cannot be told from the slope: ``POWER_LAW_TAU`` and ``TRANSFER_SD``.

Measured on the shipped curves (``benchmarks/forecast_validation.py``, "trunk + ladder prior"): each
size of Schaipp et al.'s SlimPajama ladder (33M-360M) and OpenWebText2 ladder (60M-166M) forecast
from its trunk and the ladder of the other sizes, and the published 100M from 25M and back;
``docs/planner.md`` ("Priors across model sizes") has the table.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from wsd_plan import _fit_json
from wsd_plan._laws import LAWS, Law
from wsd_plan._least_squares import Penalty
from wsd_plan._transfer import PEAK_EXPONENT, TRANSFER_SD, carried, carry_rows, gaussian_penalty
from wsd_plan.calibration import within_peaks

FORMAT = "wsd_plan.ModelLadder"
VERSION = 1
SLOPE_SD = 0.2  # per unit of log(parameters): twice the largest slope a shipped pair of sizes shows
MIN_SIZES_FOR_TAU = 4  # with fewer, each combination's tau has under two residual degrees of freedom
TAU_GRID = np.geomspace(0.01, 1.0, 41)
# L0, A, alpha: how far a size strays from the line, the largest estimates over Schaipp et al.'s
# SlimPajama ladder (each size left out in turn): the floor of an estimate, the value below 4 sizes
POWER_LAW_TAU = np.array([0.01, 0.08, 0.07])
POWER_LAW_PARAMETERS = 3  # L0, A, alpha: every law's first parameters


@dataclasses.dataclass(frozen=True, eq=False)
class Rung:
    """What a ladder keeps of one size's fit of one law: what its prior needs."""

    params: Mapping[str, float]
    covariance: np.ndarray | None
    fitted_peaks: tuple[float, float] | None
    residual_scale: float | None

    def saved(self, law: str) -> dict[str, Any]:
        """As a saved fit's JSON object (``_fit_json``), which ``_fit_json.decode`` checks on reading."""
        fields = {"law": law, "params": dict(self.params), "fitted_peaks": self.fitted_peaks,
                  "covariance": self.covariance, "residual_scale": self.residual_scale}  # fmt: skip
        return _fit_json.encode(fields)

    def same(self, other: Rung) -> bool:
        a, b = self.covariance, other.covariance
        same_cov = (a is None and b is None) or (a is not None and b is not None and np.array_equal(a, b))
        return (dict(self.params), self.fitted_peaks, self.residual_scale) == (
            dict(other.params), other.fitted_peaks, other.residual_scale) and same_cov  # fmt: skip


class ModelLadder:
    """A prior for a model of ``parameters`` parameters from fits of other sizes of the same family
    (``wsd_plan._ladder`` has the model): give it as ``fit_loss_law(runs, prior=ladder)``,
    ``Forecast(..., prior=ladder)``, or saved with ``to_json`` as a path (``wsd fit --ladder``).

    Args:
      fits: each size's fit, keyed by its parameter count: a ``LossLawFit`` (``fit_loss_law`` of that
        size's runs, with a cooldown) or the path of one saved with ``to_json``. One size is a single
        fit's prior, widened by the extrapolation; two or more move the law's parameters with the size.
        Each fit's law, and its ``other_law_fits``, are kept.
      parameters: the parameter count of the model the prior is for.

    Examples:
      >>> from wsd_plan import ModelLadder, fit_loss_law, published_runs
      >>> ladder = ModelLadder({25e6: fit_loss_law(list(published_runs("lm-25M").values()))},
      ...                      parameters=100e6)
      >>> trunk = published_runs("lm-100M")["constant_72000"]
      >>> fit = fit_loss_law([trunk], prior=ladder)
      >>> fit.protocol
      'trunk + ladder prior'
    """

    def __init__(self, fits: Mapping[float, Any], parameters: float) -> None:
        if not isinstance(fits, Mapping) or not fits:
            raise TypeError(
                "fits must be a non-empty mapping of parameter count to fit (a LossLawFit or the path of "
                f"one saved with to_json), e.g. {{25e6: fit_25m, 100e6: 'fit_100m.json'}}; got {fits!r:.200}"
            )
        pairs = []
        for size, fit in fits.items():
            name = f"fits[{size!r}]"
            pairs.append((_check_size(f"{name}'s key, a parameter count,", size), _rungs(fit, name)))
        self._keep(pairs, parameters)

    def _keep(
        self, given: Sequence[tuple[float, Mapping[str, Rung]]], parameters: Any, law: str | None = None
    ) -> None:
        """Keeps the (size, rungs) pairs by size, the law it is a prior of, the target's size."""
        pairs = sorted(given, key=lambda pair: pair[0])
        self.sizes: tuple[float, ...] = tuple(size for size, _ in pairs)  # smallest first
        self.rungs: tuple[Mapping[str, Rung], ...] = tuple(rungs for _, rungs in pairs)  # by law, per size
        self.law: str = law or next(iter(pairs[0][1]))  # the first size's own law
        self.parameters = _check_size("parameters", parameters)
        # carried()'s answers by (law, peak): a Forecast refits at every evaluation with one peak
        self._carried: dict[tuple[str, float], tuple[np.ndarray, ...]] = {}

    def __repr__(self) -> str:
        sizes = ", ".join(f"{s:.3g}" for s in self.sizes)
        return f"ModelLadder(sizes=[{sizes}], law={self.law!r}, parameters={self.parameters:.3g})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ModelLadder):
            return NotImplemented
        return (self.sizes, self.parameters, self.law) == (other.sizes, other.parameters, other.law) and all(
            a.keys() == b.keys() and all(a[k].same(b[k]) for k in a)
            for a, b in zip(self.rungs, other.rungs, strict=True)
        )

    __hash__ = None  # type: ignore[assignment]

    @property
    def residual_scale(self) -> float | None:
        """The median residual scale of its fits of its law: a first guess of a run's noise."""
        scales = [s for r in self.rungs if (s := r[self.law].residual_scale)]
        return float(np.median(scales)) if scales else None

    def of_law(self, law: str) -> ModelLadder:
        """The ladder as a prior of ``law``: every size must hold a fit of it."""
        missing = [f"{s:.3g}" for s, r in zip(self.sizes, self.rungs, strict=True) if law not in r]
        if missing:
            raise ValueError(
                f"prior is a ladder whose sizes {missing} hold no {law} fit (they hold "
                f"{sorted({k for r in self.rungs for k in r})}): give fits of the {law} law"
            )
        if law == self.law:
            return self
        ladder = ModelLadder.__new__(ModelLadder)
        ladder._keep(list(zip(self.sizes, self.rungs, strict=True)), self.parameters, law)
        return ladder

    def carried(self, law: Law, *, peak: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The prior at ``parameters`` for runs of peak rate ``peak``: the combinations of ``theta`` it
        is on (rows), a ``theta`` whose combinations are its mean, their covariance, and each
        combination's ``tau``. The power-law part is among them where the ladder has two sizes or
        more and ``peak`` lies within the peaks it was fitted at (``A`` and ``alpha`` are in units of
        the rate's area, measured across peaks only as far as the ladder spans them). At another
        peak each ``tau`` of the drop term is at least ``TRANSFER_SD``, as one fit's would be."""
        key = (law.name, float(peak))
        if key not in self._carried:
            found = self._carry(law, float(peak))
            for array in found:
                array.setflags(write=False)
            self._carried[key] = found
        rows, theta, block, taus = self._carried[key]
        return rows, theta, block, taus

    def _carry(self, law: Law, peak: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        thetas, owns = [], []
        for rung in (r[law.name] for r in self.rungs):
            theta, _ = carried(law, rung.params, rung.covariance, rung.fitted_peaks, peak=peak)
            cov = (
                np.zeros((theta.size, theta.size)) if rung.covariance is None else np.asarray(rung.covariance)
            )
            thetas.append(theta)
            owns.append(cov)
        rows = carry_rows(law)
        x = np.log(np.asarray(self.sizes)) - math.log(self.parameters)
        sizes, at_its_peaks = len(set(self.sizes)), within_peaks(self.fitted_peaks, peak)
        # at another peak the drop term is carried as one fit carries it: at least as wide
        default = np.full(rows.shape[0], TRANSFER_SD)
        floor = np.full(rows.shape[0], TAU_GRID[0] if at_its_peaks else TRANSFER_SD)
        if sizes >= 2 and at_its_peaks:
            rows = np.vstack([np.eye(len(law.parameters))[:POWER_LAW_PARAMETERS], rows])
            default, floor = np.concatenate([POWER_LAW_TAU, default]), np.concatenate([POWER_LAW_TAU, floor])
        combos = np.stack([rows @ t for t in thetas])
        own = np.stack([rows @ c @ rows.T for c in owns])
        if sizes >= MIN_SIZES_FOR_TAU:
            taus = np.maximum([_tau(combos[:, j], own[:, j, j], x) for j in range(rows.shape[0])], floor)
        else:
            taus = default
        mean, cov = _line_at_target(combos, own, x, taus)
        nearest = thetas[int(np.argmin(np.abs(x)))].copy()
        # each row leads with one parameter (+1: a drop-term one, or a power-law one alone); the B row
        # also holds A, itself a row where the power-law part is carried: solve for the leads together
        lead = [int(np.flatnonzero(row == 1.0)[0]) for row in rows]
        nearest[lead] += np.linalg.solve(rows[:, lead], mean - rows @ nearest)
        return rows, nearest, cov + np.diag(taus**2), taus

    @property
    def fitted_peaks(self) -> tuple[float, float] | None:
        """The lowest and highest peak its fits were fitted at (None where a fit's are not known)."""
        peaks = [r[self.law].fitted_peaks for r in self.rungs]
        if any(p is None for p in peaks):
            return None
        return min(p[0] for p in peaks if p), max(p[1] for p in peaks if p)

    def penalty(self, law: Law, *, peak: float, noise: float) -> tuple[Penalty, np.ndarray]:
        """The solver's ``Penalty`` (``_transfer.gaussian_penalty``) for runs of peak ``peak``."""
        rows, theta, block, _ = self.carried(law, peak=peak)
        return gaussian_penalty(law, theta, block, noise=noise, rows=rows)

    def report(self) -> str:
        """What the ladder says at ``parameters``, at its fits' middle peak: each combination of the
        parameters it moves (mean, standard deviation in log, ``tau``)."""
        law = LAWS[self.law]
        peaks = [p for r in self.rungs if (p := r[self.law].fitted_peaks) is not None]
        peak = float(np.exp(np.mean(np.log(peaks)))) if peaks else 1.0
        rows, theta, block, taus = self.carried(law, peak=peak)
        sizes = ", ".join(f"{s / 1e6:.4g}M" for s in self.sizes)
        lines = [f"a model ladder of {len(self.sizes)} size(s) ({sizes}), {self.law} law: the prior for a "
                 f"model of {self.parameters / 1e6:.4g}M parameters, at a peak of {peak:.3g}"]  # fmt: skip
        for row, mean, var, tau in zip(rows, rows @ theta, np.diag(block), taus, strict=True):
            relative = bool((row < 0).any())  # B / A at this peak: B peak / A, which carries over
            value = math.exp(mean + (PEAK_EXPONENT * math.log(peak) if relative else 0.0))
            lines.append(f"  {_row_name(law, row):<16} {value:<10.4g} +-{math.sqrt(var):.3f} in log "
                         f"(tau {tau:.3f})")  # fmt: skip
        if rows.shape[0] == len(law.drop_parameters):
            lines.append("  (L0, A and alpha are left to the runs: " + (
                "one size says nothing of how they move)" if len(set(self.sizes)) < 2
                else "its fits' peaks are not known)"))  # fmt: skip
        elif (span := self.fitted_peaks) is not None:  # (the power-law part is carried within it)
            low, high = span
            lines.append(
                f"  (L0, A and alpha are the prior's only for runs at peaks from {low:.3g} to {high:.3g})"
            )
        return "\n".join(lines)

    def to_json(self) -> str:
        """The ladder as JSON text: its sizes, each size's fits (what the prior needs of them), the
        parameter count it is for. ``from_json`` (or a path to it as a ``prior``) reads it back."""
        fits = [[rungs[law].saved(law) for law in rungs] for rungs in self.rungs]
        data = {"format": FORMAT, "version": VERSION, "parameters": self.parameters, "law": self.law,
                "sizes": list(self.sizes), "fits": fits}  # fmt: skip
        return json.dumps(data, allow_nan=False, indent=1)

    @classmethod
    def from_json(cls, text: str) -> ModelLadder:
        """A ladder saved by ``to_json``. Refuses text that is not one, naming what is wrong."""
        data = _ladder_data(text)
        sizes, fits = data.get("sizes"), data.get("fits")
        if not isinstance(sizes, list) or not isinstance(fits, list) or len(sizes) != len(fits) or not fits:
            raise ValueError(
                "not a saved ModelLadder: 'sizes' and 'fits' must be lists of one length, at least 1"
            )
        if len(set(map(repr, sizes))) != len(sizes):
            raise ValueError(f"not a saved ModelLadder: a size is given twice in {sizes!r}")
        pairs = []
        for i, (size, saved) in enumerate(zip(sizes, fits, strict=True)):
            size = _check_size(f"a saved ModelLadder's size {i}", size)
            if not isinstance(saved, list) or not saved:
                raise ValueError(
                    f"not a saved ModelLadder: its fits of size {size!r} must be a non-empty list"
                )
            try:
                decoded = [_fit_json.decode(one) for one in saved]
            except ValueError as e:
                raise ValueError(f"not a saved ModelLadder: its fit {i} (size {size!r}): {e}") from None
            pairs.append((size, _rungs_of(decoded)))
        ladder = cls.__new__(cls)
        ladder._keep(pairs, data.get("parameters"))
        return ladder.of_law(data["law"]) if isinstance(data.get("law"), str) else ladder


def is_ladder_json(text: str) -> bool:
    """Whether ``text`` claims to be a saved ladder (its ``format``), to tell it from a saved fit."""
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return False
    return isinstance(data, dict) and data.get("format") == FORMAT


def _ladder_data(text: Any) -> dict[str, Any]:
    if not isinstance(text, str):
        raise TypeError(f"from_json takes the JSON text (str), got {type(text).__name__}")
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as e:
        raise ValueError(f"not a saved ModelLadder: the text is not JSON ({type(e).__name__}: {e})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"not a saved ModelLadder: its 'format' must be {FORMAT!r}")
    if data.get("version") != VERSION:
        raise ValueError(
            f"a ModelLadder of version {data.get('version')!r}; this release reads version {VERSION}"
        )
    return data


def _rungs(fit: Any, name: str) -> dict[str, Rung]:
    """What a ladder keeps of ``fit``, a ``LossLawFit`` or the path of a saved one: its own law first,
    then its ``other_law_fits``."""
    if isinstance(fit, (str, os.PathLike)):
        path = os.fspath(fit)
        text = _fit_json.read_saved(path, name)
        if is_ladder_json(text):
            raise ValueError(
                f"{name}: {path!r} is a saved ModelLadder; a ladder is made of fits (wsd fit --save)"
            )
        try:
            fields = _fit_json.loads(text)
        except ValueError as e:
            raise ValueError(f"{name} {path}: {e}") from None
        return _rungs_of([fields, *fields["other_law_fits"]])
    if isinstance(fit, ModelLadder) or not all(hasattr(fit, a) for a in ("law", "params", "other_law_fits")):
        raise TypeError(
            f"{name} must be a LossLawFit or the path of one saved with to_json, got {type(fit).__name__}"
        )
    out = {}
    for one in (fit, *fit.other_law_fits):
        cov = None if one.covariance is None else np.asarray(one.covariance, np.float64)
        out[one.law] = Rung(dict(one.params), cov, one.fitted_peaks, one.residual_scale)
    return out


def _rungs_of(saved: list[dict[str, Any]]) -> dict[str, Rung]:
    """The rungs of saved fits' fields (``_fit_json.decode``), by law, the first's law first."""
    return {
        f["law"]: Rung(f["params"], f["covariance"], f["fitted_peaks"], f["residual_scale"]) for f in saved
    }


def _row_name(law: Law, row: np.ndarray) -> str:
    up = [law.parameters[i] for i in np.flatnonzero(row > 0)]
    down = [law.parameters[i] for i in np.flatnonzero(row < 0)]
    return up[0] if not down else f"{up[0]} peak / {down[0]}"


def _check_size(name: str, value: Any) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(f"{name} must be a positive, finite parameter count (e.g. 25e6), got {value!r}")
    return float(value)


def _design(x: float, k: int) -> np.ndarray:
    """The rows of one size at offset ``x``: ``c = a + b x``, for ``k`` combinations."""
    return np.hstack([np.eye(k), x * np.eye(k)])


def _posterior(
    combos: np.ndarray, owns: np.ndarray, x: np.ndarray, taus: np.ndarray
) -> tuple[np.ndarray, np.ndarray, float]:
    """(a, b)'s posterior mean and covariance, and the restricted log-likelihood of ``taus``."""
    k = combos.shape[1]
    precision = np.zeros((2 * k, 2 * k))
    precision[k:, k:] = np.eye(k) / SLOPE_SD**2
    weighted = np.zeros(2 * k)
    logdet = 0.0
    inverses = []
    for c, own, xi in zip(combos, owns, x, strict=True):
        v = own + np.diag(taus**2)
        vi = np.linalg.inv(v)
        inverses.append(vi)
        d = _design(xi, k)
        precision += d.T @ vi @ d
        weighted += d.T @ vi @ c
        logdet += np.linalg.slogdet(v)[1]
    cov = np.linalg.inv(precision)
    mean = cov @ weighted
    misfit = mean[k:] @ mean[k:] / SLOPE_SD**2
    for c, vi, xi in zip(combos, inverses, x, strict=True):
        r = c - _design(xi, k) @ mean
        misfit += r @ vi @ r
    loglik = -0.5 * (logdet + np.linalg.slogdet(precision)[1] + misfit)
    return mean, cov, float(loglik)


def _tau(combo: np.ndarray, own: np.ndarray, x: np.ndarray) -> float:
    """One combination's ``tau``: the restricted maximum likelihood over ``TAU_GRID``."""
    logliks = [_posterior(combo[:, None], own[:, None, None], x, np.array([t]))[2] for t in TAU_GRID]
    return float(TAU_GRID[int(np.argmax(logliks))])


def _line_at_target(
    combos: np.ndarray, owns: np.ndarray, x: np.ndarray, taus: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    k = combos.shape[1]
    mean, cov, _ = _posterior(combos, owns, x, taus)
    return mean[:k], cov[:k, :k]
