"""Argument checks shared by every constructor of the project.

Each check either returns the value in its canonical Python type or raises an error that names the
parameter, the offending value and what would have been valid. Nothing is clamped or coerced beyond
turning an exact integer-valued type (e.g. ``numpy.int64``) into ``int``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any


def _describe(value: Any) -> str:
    return f"{value!r} (type {type(value).__name__})"


def check_int(name: str, value: Any, *, minimum: int | None = None) -> int:
    """Returns ``value`` as ``int``; bools, floats and other types raise ``TypeError``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {_describe(value)}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value}")
    return value


def check_real(name: str, value: Any) -> float:
    """Returns ``value`` as a finite ``float``; bools and non-numbers raise ``TypeError``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {_describe(value)}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


def check_ratio(name: str, value: Any, *, positive: bool = False) -> float:
    """Returns ``value`` as a float in [0, 1] (or (0, 1] when ``positive``)."""
    value = check_real(name, value)
    low_ok = value > 0.0 if positive else value >= 0.0
    if not (low_ok and value <= 1.0):
        valid = "0 < value <= 1" if positive else "0 <= value <= 1"
        raise ValueError(f"{name} must satisfy {valid}, got {value}")
    return value


def check_choice(name: str, value: Any, choices: Iterable[str]) -> str:
    """Returns ``value`` if it is one of ``choices``; otherwise lists the valid names."""
    choices = tuple(choices)
    if not isinstance(value, str):
        raise TypeError(f"{name} must be one of {list(choices)}, got {_describe(value)}")
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value
