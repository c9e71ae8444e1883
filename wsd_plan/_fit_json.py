"""A ``LossLawFit`` as JSON (``LossLawFit.to_json`` / ``from_json``): what a fit knows, kept so that a
saved fit predicts, and states its uncertainty, exactly as the one it was saved from.

Saved: the law, its parameters, the fit's metrics, objective, notes and fitted peaks; the Laplace
covariance, residual scale and the fitted points' coordinates (``_uncertainty``); the leave-one-
run-out ``law_error_scale``; its calibration (``wsd_plan.calibration``; absent in the fits of
earlier releases, which keep their model-based intervals); and each other law's fit to the same runs
(``other_law_fits``), whose predictions an uncalibrated interval holds. The fitted runs themselves
are not saved (their rates of every update would dominate the file): what needs them is computed
before saving, so a loaded fit does not refit anything. Floats are written with ``repr``, which
reads back to the same float; a metric that is not a number (``R2`` of a flat curve) is written as
``null``. Strict JSON: no ``NaN`` tokens.
"""

from __future__ import annotations

import json
import math
import numbers
from typing import Any

import numpy as np

from wsd_plan._laws import PARAMETERS
from wsd_plan.calibration import Calibration

FORMAT = "wsd_plan.LossLawFit"
VERSION = 1


def encode(fields: dict[str, Any]) -> dict[str, Any]:
    """The JSON-ready form of a fit's fields (``dataclasses.asdict``-like, arrays as nested lists)."""
    out = {"format": FORMAT, "version": VERSION}
    for name, value in fields.items():
        if isinstance(value, np.ndarray):
            value = value.tolist()
        elif name == "fit_metrics":
            finite = lambda m: {k: (v if math.isfinite(v) else None) for k, v in m.items()}
            value = {run: finite(m) for run, m in value.items()}
        elif name == "other_law_fits":
            value = [encode(other) for other in value]
        elif isinstance(value, Calibration):
            value = value.to_dict()
        elif isinstance(value, tuple):
            value = list(value)
        out[name] = value
    return out


def dumps(fields: dict[str, Any]) -> str:
    return json.dumps(encode(fields), allow_nan=False, indent=1)


def read_saved(path: str, name: str) -> str:
    """The text of a saved fit (or ladder) at ``path``; a file that cannot be read is refused naming
    ``name`` (the argument or flag it was given as) and the path."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise ValueError(f"{name}: cannot read the saved fit {path!r}: {reason}") from None


def loads(text: str) -> dict[str, Any]:
    """A saved fit's fields, checked: each mistake is named with what is valid."""
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as e:
        raise ValueError(f"not a saved LossLawFit: the text is not JSON ({type(e).__name__}: {e})") from None
    return decode(data)


# What a saved fit's numbers may be: each keeps the fit's predictions and intervals finite numbers
# (a parameter of 1e308, a law_error_scale of 1e308 or a NaN residual scale gave intervals of
# (-2e307, 3.29), (0, inf) and (nan, nan)). Fits of the shipped curves are far inside: parameters
# 0.04..440, residual scales ~1e-3, law_error_scale 1..1.1, covariance diagonals <= 0.4.
MAX_PARAMETER = 1e100
MAX_RESIDUAL_SCALE = 10.0  # a log residual: a fit that misses by a factor e**10
MAX_LAW_ERROR_SCALE = 1e4  # times the law's base error 0.002: intervals of e**+-33
MAX_LOG_VARIANCE = 1e4  # of a log parameter: a standard deviation of 100 in log


def decode(data: Any) -> dict[str, Any]:
    """A saved fit's fields from its JSON object, every value checked and named when refused."""
    if isinstance(data, dict) and "format" not in data and "total_steps" in data:
        raise ValueError(
            "not a saved LossLawFit: this is a schedule (a WSDSpec's fields); a saved fit is what "
            "LossLawFit.to_json or wsd fit --save writes"
        )
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"not a saved LossLawFit: 'format' must be {FORMAT!r}, got {_get(data, 'format')!r}")
    if data.get("version") != VERSION:
        raise ValueError(
            f"a saved LossLawFit of version {data.get('version')!r}; this wsd_plan reads version {VERSION}"
        )
    law = data.get("law")
    if not isinstance(law, str) or law not in PARAMETERS:
        raise ValueError(f"a saved LossLawFit's 'law' must be one of {list(PARAMETERS)}, got {law!r}")
    what = f"a saved {law} fit's"
    names = PARAMETERS[law]
    fields = {
        "law": law,
        "params": _params(data.get("params"), names, what),
        "fit_metrics": _metrics(data.get("fit_metrics", {}), what),
        "objective": _number(data.get("objective", 0.0), f"{what} objective", low=0.0),
        "fitted_peaks": _peaks(data.get("fitted_peaks"), what),
        "notes": _notes(data.get("notes", []), what),
        "residual_scale": _optional(
            data.get("residual_scale"), f"{what} residual_scale", 0.0, MAX_RESIDUAL_SCALE
        ),
        "covariance": _covariance(data.get("covariance"), len(names), what),
        "fitted_coordinates": _matrix(
            data.get("fitted_coordinates"), (None, 2), f"{what} fitted_coordinates"
        ),
        "law_error_scale": _optional(
            data.get("law_error_scale"), f"{what} law_error_scale", 1.0, MAX_LAW_ERROR_SCALE
        ),
    }
    fields["calibration"] = _calibration(data.get("calibration"), what)
    others = data.get("other_law_fits", [])
    if not isinstance(others, list):
        raise ValueError(f"{what} other_law_fits must be a list of saved fits, got {type(others).__name__}")
    fields["other_law_fits"] = tuple(decode(other) for other in others)
    return fields


def check_built(law: Any, params: Any, fitted_peaks: Any, covariance: Any) -> tuple[float, float] | None:
    """The structure of a ``LossLawFit`` built by hand, as ``decode`` checks a saved one's (the law,
    its parameters by name, two fitted peaks, a covariance of the parameters' size); returns the
    fitted peaks as a tuple. Bounds that only a damaged file breaks are left to ``decode``."""
    if not isinstance(law, str) or law not in PARAMETERS:
        raise ValueError(f"LossLawFit law must be one of {list(PARAMETERS)}, got {law!r}")
    _params(params, PARAMETERS[law], f"LossLawFit({law!r})", high=math.inf)
    peaks = None if fitted_peaks is None else _peaks(list(np.ravel(fitted_peaks)), f"LossLawFit({law!r})")
    if covariance is not None and np.shape(covariance) != (len(PARAMETERS[law]),) * 2:
        raise ValueError(
            f"LossLawFit({law!r}) covariance must be a {len(PARAMETERS[law])}x{len(PARAMETERS[law])} matrix "
            f"(of log {', '.join(PARAMETERS[law])}), got shape {np.shape(covariance)}"
        )
    return peaks


def _number(value: Any, name: str, *, low: float, high: float = math.inf) -> float:
    """A finite JSON number in [low, high], named when refused."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r:.80}")
    if not low <= value <= high:
        bound = f" and <= {high:g}" if high < math.inf else ""
        raise ValueError(f"{name} must be a number >= {low:g}{bound}, got {value!r}")
    return float(value)


def _optional(value: Any, name: str, low: float, high: float) -> float | None:
    return None if value is None else _number(value, name, low=low, high=high)


def _params(params: Any, names: tuple[str, ...], what: str, high: float = MAX_PARAMETER) -> dict[str, float]:
    """The parameters by name: finite, >= 0 (a fitted log parameter that underflows is 0 or 1e-210:
    L0 of runs that do not determine it), at most ``high``."""
    if not isinstance(params, dict) or sorted(params) != sorted(names):
        raise ValueError(f"{what} 'params' must name {list(names)}, got {params!r:.200}")
    for k, v in params.items():
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v) or v < 0:
            raise ValueError(f"{what} parameter {k} must be a finite number >= 0, got {v!r}")
        _number(v, f"{what} parameter {k}", low=0.0, high=high)
    return {k: float(params[k]) for k in names}


def _metrics(metrics: Any, what: str) -> dict[str, dict[str, float]]:
    """Each run's curve metrics: numbers, or null for one that is not a number (R2 of a flat curve)."""
    if not isinstance(metrics, dict) or not all(isinstance(m, dict) for m in metrics.values()):
        raise ValueError(f"{what} fit_metrics must map each run to its metrics, got {metrics!r:.100}")
    out = {}
    for run, m in metrics.items():
        out[str(run)] = {
            str(k): float("nan")
            if v is None
            else _number(v, f"{what} fit_metrics[{run!r}][{k!r}]", low=-math.inf)
            for k, v in m.items()
        }
    return out


def _peaks(peaks: Any, what: str) -> tuple[float, float] | None:
    if peaks is None:
        return None
    if not isinstance(peaks, list) or len(peaks) != 2:
        raise ValueError(f"{what} fitted_peaks must be [smallest, largest], got {peaks!r:.80}")
    low, high = (_number(p, f"{what} fitted_peaks", low=0.0) for p in peaks)
    if not 0 < low <= high:
        raise ValueError(f"{what} fitted_peaks must be two rates 0 < smallest <= largest, got {peaks!r}")
    return low, high


def _notes(notes: Any, what: str) -> tuple[str, ...]:
    if not isinstance(notes, list) or not all(isinstance(n, str) for n in notes):
        raise ValueError(f"{what} notes must be a list of strings, got {notes!r:.80}")
    return tuple(notes)


def _covariance(value: Any, size: int, what: str) -> np.ndarray | None:
    """A covariance of the log parameters: symmetric, positive semi-definite, of sensible size."""
    name = f"{what} covariance"
    matrix = _matrix(value, (size, size), name)
    if matrix is None:
        return None
    scale = max(float(np.max(np.abs(matrix))), 1e-300)
    if not np.allclose(matrix, matrix.T, rtol=1e-9, atol=1e-12 * scale):
        raise ValueError(f"{name} must be symmetric")
    smallest = float(np.min(np.linalg.eigvalsh(matrix)))
    if smallest < -1e-9 * scale:
        raise ValueError(
            f"{name} must be positive semi-definite (a covariance), but has an eigenvalue {smallest:.3g}"
        )
    if float(np.max(np.diag(matrix))) > MAX_LOG_VARIANCE:
        raise ValueError(
            f"{name}'s variances must be <= {MAX_LOG_VARIANCE:g} (of a log parameter), got "
            f"{float(np.max(np.diag(matrix))):.3g}"
        )
    return matrix


def _matrix(value: Any, shape: tuple[int | None, int], name: str) -> np.ndarray | None:
    if value is None:
        return None
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a matrix of numbers, got {value!r:.80}") from None
    if array.ndim != 2 or any(
        want is not None and got != want for got, want in zip(array.shape, shape, strict=False)
    ):
        raise ValueError(f"{name} must be a matrix of shape {shape}, got {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} must be finite")
    return array


def _get(data: Any, key: str) -> Any:
    return data.get(key) if isinstance(data, dict) else type(data).__name__


def _calibration(value: Any, what: str) -> Calibration | None:
    """A saved calibration (absent in fits saved before 0.2's calibrated intervals: None)."""
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) != {"protocol", "form", "factor"}:
        raise ValueError(
            f"{what} calibration must be an object of 'protocol', 'form' and 'factor' (or absent), "
            f"got {value!r:.200}"
        )
    try:
        return Calibration(value["protocol"], value["form"], value["factor"])
    except (TypeError, ValueError) as e:
        raise ValueError(f"{what} calibration: {e}") from None
