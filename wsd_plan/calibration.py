"""Intervals calibrated on real runs: how wide a fit's interval must be, by what the fit was given.

The model-based standard deviation of ``wsd_plan._uncertainty`` adds the parameters' spread, the
noise and the law's error, whose constants were measured on fits that had seen a cooldown; a
trunk-alone fit also carries the prior's transfer variance. Checked on real held-out cooldowns, its
90% intervals were 5 to 10 times wider than the errors made. So a fit of the Multi-Power Law records
its **protocol**, what it was given, and its intervals are scaled by a factor measured for that
protocol on the shipped curves (the published 25M and 100M models, Schaipp et al.'s ten):

* ``"runs"``: runs with a cooldown, no prior (``wsd plan``'s trunk and one cooldown, the paper's
  three runs);
* ``"trunk + prior, same peak"``: a trunk alone and a prior fitted at the same peak rate (another model
  size or dataset);
* ``"trunk + prior, other peak"``: a trunk alone and a prior fitted at another peak rate (e.g. the
  published curves as the prior of a run at 1e-3);
* ``"trunk + ladder prior"``: a trunk alone and a ``ModelLadder``, fits of other sizes of the same
  family (``wsd_plan._ladder``), at a peak within those its fits were fitted at (at another, the
  ladder is calibrated as ``"trunk + prior, other peak"``).

A protocol's calibration is split-conformal: every held-out cooldown of every shipped model gives the
factor its final loss needed to lie inside the interval, and the factor shipped is the 90% conformal
quantile of those (the ``ceil((n + 1) 0.9)``-th smallest). The interval still holds every fitted
law's prediction (``other_law_fits``: what guards against the law being the wrong one), each widened
by the calibrated half-width, so a case needs a factor only as far as its loss lies outside them.
Its **form** is ``"scaled"`` (the factor times the model-based standard deviation, which keeps its
shape: wider the farther a cooldown is from the fitted points, the noisier the runs, the fewer their
points) or ``"constant"`` (one log half-width for every prediction). ``"scaled"`` is preferred, as
it adapts to a user's runs, which the shipped curves vary little; ``"constant"`` is chosen where its
held-out intervals are over 25% narrower (``"trunk + prior, other peak"``: the transfer variance
gives the model-based shape little to do with the error). Either must cover at least 85% when each
model is held out in turn (the factor learnt on the others). Other levels than 90% take the normal
quantile's ratio.

``data/calibration.json`` holds the factors, how they were made and the held-out validation;
``python -m benchmarks.forecast_validation --write-calibration`` remakes it from the shipped curves.
A fit saves its calibration (``to_json``), so it keeps its intervals across releases; a fit saved by
an earlier release has none and keeps the model-based intervals, as do fits of other protocols (a
prior and a cooldown together) and of the annealing law, which the shipped curves did not measure.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from importlib import resources
from typing import Any

import numpy as np

from wsd_plan._uncertainty import z_value

RUNS = "runs"
PRIOR_SAME_PEAK = "trunk + prior, same peak"
PRIOR_OTHER_PEAK = "trunk + prior, other peak"
PRIOR_LADDER = "trunk + ladder prior"
PROTOCOLS = (RUNS, PRIOR_SAME_PEAK, PRIOR_OTHER_PEAK, PRIOR_LADDER)
FORMS = ("scaled", "constant")
LEVEL = 0.9  # the level the factors are measured at
DATA = "data/calibration.json"  # in the wsd_plan package
SAME_PEAK_TOLERANCE = 0.01  # relative: a prior fitted at 1e-3 is at the same peak as a run at 1e-3


@dataclasses.dataclass(frozen=True)
class Calibration:
    """How a fit's intervals are scaled (``wsd_plan.calibration``).

    Attributes:
      protocol: what the fit was given (``PROTOCOLS``).
      form: ``"scaled"``: the 90% half-width is ``factor`` times the model-based one; ``"constant"``:
        it is ``factor`` (a log half-width) for every prediction.
      factor: measured on the shipped curves (> 0).
    """

    protocol: str
    form: str
    factor: float

    def __post_init__(self) -> None:
        if not isinstance(self.protocol, str):
            raise TypeError(f"a calibration's protocol must be a str, got {type(self.protocol).__name__}")
        if self.form not in FORMS:
            raise ValueError(f"a calibration's form must be one of {list(FORMS)}, got {self.form!r}")
        factor = self.factor
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not 0 < factor < 1e4:
            raise ValueError(f"a calibration's factor must be a number in (0, 1e4), got {factor!r}")

    def half_width(self, log_sd: np.ndarray, level: float) -> np.ndarray:
        """The log half-width of each prediction's ``level`` interval, from its model-based sd."""
        if self.form == "scaled":
            return self.factor * z_value(level) * np.asarray(log_sd, np.float64)
        return np.full(np.shape(log_sd), self.factor * z_value(level) / z_value(LEVEL))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def protocol_of(
    *, drops: bool, prior: bool, prior_peaks: tuple[float, float] | None, peak: float, ladder: bool = False
) -> str | None:
    """The protocol of a fit (None: one not calibrated): ``drops``, whether a fitted run's rate
    drops; ``prior``, whether a prior was given, fitted at ``prior_peaks`` (None: not known, then
    taken as another peak); ``peak``, the runs' peak; ``ladder``, whether the prior is a
    ``ModelLadder`` (a ladder at another peak than its fits' is calibrated as any prior at another
    peak: it then carries what one fit does, the drop term)."""
    if not prior:
        return RUNS if drops else None
    if drops:
        return None
    if not within_peaks(prior_peaks, peak):
        return PRIOR_OTHER_PEAK
    return PRIOR_LADDER if ladder else PRIOR_SAME_PEAK


def within_peaks(peaks: tuple[float, float] | None, peak: float) -> bool:
    """Whether ``peak`` is one a prior fitted at ``peaks`` (lowest, highest; None: not known) was
    fitted at, to ``SAME_PEAK_TOLERANCE``."""
    if peaks is None:
        return False
    low, high = peaks
    return low * (1 - SAME_PEAK_TOLERANCE) <= peak <= high * (1 + SAME_PEAK_TOLERANCE)


def calibration_of(law: str, protocol: str | None) -> Calibration | None:
    """The shipped calibration of ``law`` fits of ``protocol`` (None where none was measured)."""
    return None if protocol is None else shipped().get((law, protocol))


@functools.cache
def shipped() -> dict[tuple[str, str], Calibration]:
    """The factors of ``data/calibration.json``, by (law, protocol)."""
    return {
        (law, protocol): Calibration(protocol, entry["form"], float(entry["factor"]))
        for law, protocols in shipped_data()["laws"].items()
        for protocol, entry in protocols.items()
    }


def shipped_data() -> dict[str, Any]:
    """``data/calibration.json`` as it is: the factors, how they were made, their validation."""
    text = resources.files("wsd_plan").joinpath(DATA).read_text(encoding="utf-8")
    return dict(json.loads(text))


def conformal_factor(needed: Any, level: float = LEVEL) -> float:
    """The split-conformal quantile of ``needed`` (each case's factor): the ``ceil((n + 1) level)``-th
    smallest, the largest if there are too few cases for that."""
    values = np.sort(np.asarray(needed, np.float64))
    if values.size == 0:
        raise ValueError("conformal_factor needs at least one case")
    rank = min(math.ceil((values.size + 1) * level), values.size)
    return float(values[rank - 1])


def needed_factor(form: str, measured: float, lowest: float, highest: float, log_sd: float) -> float:
    """The factor a case needs for its measured loss to lie inside its 90% interval: how far, in log,
    it lies outside the fitted laws' predictions ``[lowest, highest]`` (0 inside), over the
    half-width of factor 1."""
    beyond = max(0.0, math.log(measured / highest), math.log(lowest / measured))
    unit = z_value(LEVEL) * log_sd if form == "scaled" else 1.0
    return beyond / unit
