"""A ``LossLawFit`` as JSON (``LossLawFit.to_json`` / ``from_json``): what a fit knows, kept so that a
saved fit predicts, and states its uncertainty, exactly as the one it was saved from.

Saved: the law, its parameters, the fit's metrics, objective, notes and fitted peaks; the Laplace
covariance, residual scale and the fitted points' coordinates (``_uncertainty``); the leave-one-
run-out ``law_error_scale``; and each other law's fit to the same runs (``other_law_fits``), whose
predictions every interval holds. The fitted runs themselves are not saved (their rates of every
update would dominate the file): what needs them is computed before saving, so a loaded fit does not
refit anything. Floats are written with ``repr``, which reads back to the same float; a metric that
is not a number (``R2`` of a flat curve) is written as ``null``. Strict JSON: no ``NaN`` tokens.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from wsd_plan._laws import PARAMETERS

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
        elif isinstance(value, tuple):
            value = list(value)
        out[name] = value
    return out


def dumps(fields: dict[str, Any]) -> str:
    return json.dumps(encode(fields), allow_nan=False, indent=1)


def loads(text: str) -> dict[str, Any]:
    """A saved fit's fields, checked: each mistake is named with what is valid."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"not a saved LossLawFit: the text is not JSON ({e})") from None
    return decode(data)


def decode(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"not a saved LossLawFit: 'format' must be {FORMAT!r}, got {_get(data, 'format')!r}")
    if data.get("version") != VERSION:
        raise ValueError(
            f"a saved LossLawFit of version {data.get('version')!r}; this wsd_plan reads version {VERSION}"
        )
    law = data.get("law")
    if not isinstance(law, str) or law not in PARAMETERS:
        raise ValueError(f"a saved LossLawFit's 'law' must be one of {list(PARAMETERS)}, got {law!r}")
    params = data.get("params")
    names = PARAMETERS[law]
    if not isinstance(params, dict) or sorted(params) != sorted(names):
        raise ValueError(f"a saved {law} fit's 'params' must name {list(names)}, got {params!r:.200}")
    for k, v in params.items():
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or v <= 0:
            raise ValueError(f"a saved {law} fit's parameter {k} must be a finite number > 0, got {v!r}")
    fields = {
        "law": law,
        "params": {k: float(params[k]) for k in names},
        "fit_metrics": {
            run: {k: (float("nan") if v is None else float(v)) for k, v in m.items()}
            for run, m in data.get("fit_metrics", {}).items()
        },
        "objective": float(data.get("objective", 0.0)),
        "fitted_peaks": None if data.get("fitted_peaks") is None else tuple(map(float, data["fitted_peaks"])),
        "notes": tuple(str(n) for n in data.get("notes", ())),
        "residual_scale": None if data.get("residual_scale") is None else float(data["residual_scale"]),
        "covariance": _matrix(data.get("covariance"), (len(names), len(names)), "covariance", law),
        "fitted_coordinates": _matrix(data.get("fitted_coordinates"), (None, 2), "fitted_coordinates", law),
    }
    scale = data.get("law_error_scale")
    if scale is not None and (not isinstance(scale, (int, float)) or not scale >= 1):
        raise ValueError(f"a saved {law} fit's law_error_scale must be a number >= 1, got {scale!r}")
    fields["law_error_scale"] = None if scale is None else float(scale)
    fields["other_law_fits"] = tuple(decode(other) for other in data.get("other_law_fits", ()))
    return fields


def _matrix(value: Any, shape: tuple[int | None, int], name: str, law: str) -> np.ndarray | None:
    if value is None:
        return None
    array = np.asarray(value, dtype=np.float64)
    if array.ndim != 2 or any(
        want is not None and got != want for got, want in zip(array.shape, shape, strict=False)
    ):
        raise ValueError(f"a saved {law} fit's {name} must be a matrix of shape {shape}, got {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"a saved {law} fit's {name} must be finite")
    return array


def _get(data: Any, key: str) -> Any:
    return data.get(key) if isinstance(data, dict) else type(data).__name__
