"""Argument checks shared by every constructor of the project.

Each check either returns the value in its canonical Python type or raises an error that names the
parameter, the offending value and what would have been valid. Nothing is clamped or coerced beyond
turning an exact integer-valued type (e.g. ``numpy.int64``) into ``int``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

# The largest step count anything accepts: an int64 count (torch's last_epoch, optax's count under x64)
# cannot go further, and Python floats of larger integers lose the decay's resolution.
MAX_STEP = 2**63 - 1


def _describe(value: Any) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:40] + "..." + text[-10:]
    return f"{text} (type {type(value).__name__})"


def is_bool(value: Any) -> bool:
    """Python and numpy booleans (``numpy.bool_`` is not a ``bool``, and 0-d bool arrays)."""
    return isinstance(value, bool) or getattr(getattr(value, "dtype", None), "kind", None) == "b"


def as_scalar(value: Any) -> Any:
    """A 0-d array (numpy, jax, torch: anything with ``shape == ()`` and a numeric ``dtype``) as the
    Python number it holds, so that ``np.float32(3e-4)`` and ``jnp.asarray(3e-4)`` are numbers like
    ``3e-4``; anything else unchanged. (Reading a device scalar copies it to the host.)"""
    if isinstance(value, (int, float, complex)) or getattr(value, "shape", None) != ():
        return value
    kind = getattr(getattr(value, "dtype", None), "kind", None)
    if kind is None:  # torch's dtype has no kind: its is_floating_point / is_complex say it
        dtype = getattr(value, "dtype", None)
        floating = getattr(dtype, "is_floating_point", None)
        kind = None if floating is None else ("f" if floating else "i")
    if kind in ("i", "u", "f", "b") and hasattr(value, "item"):
        try:
            return value.item()
        except Exception:  # a traced jax value has no number yet: refused as what it is
            return value
    return value


def check_int(name: str, value: Any, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """Returns ``value`` as ``int`` (numpy integers and 0-d integer arrays included); bools, floats
    and other types raise ``TypeError``, an int outside [minimum, maximum] ``ValueError``. Both
    messages state the range."""
    value = as_scalar(value)
    low = "" if minimum is None else f" >= {minimum}"
    high = "" if maximum is None else (" <= 2**63 - 1" if maximum == MAX_STEP else f" <= {maximum}")
    valid = f"an int{low}{' and' if low and high else ''}{high}"
    if is_bool(value) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be {valid}, got {_describe(value)}")
    value = int(value)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        shown = str(value) if value.bit_length() < 200 else f"an int of {len(str(abs(value)))} digits"
        raise ValueError(f"{name} must be {valid}, got {shown}")
    return value


def check_bool(name: str, value: Any) -> bool:
    """Returns ``value`` if it is a ``bool`` (not an int, not a numpy bool)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {_describe(value)}")
    return value


def check_steps(name: str, value: Any, *, minimum: int = 0) -> int:
    """A step count: an int in [minimum, 2**63 - 1]."""
    return check_int(name, value, minimum=minimum, maximum=MAX_STEP)


def check_real(name: str, value: Any, *, minimum: float | None = None, positive: bool = False) -> float:
    """Returns ``value`` as a finite ``float`` (>= ``minimum`` if given, > 0 if ``positive``); numpy
    and jax scalars are numbers; bools and non-numbers raise ``TypeError``."""
    value = as_scalar(value)
    if is_bool(value) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {_describe(value)}")
    try:
        value = float(value)
    except OverflowError:
        raise ValueError(f"{name} must be a finite float, got {_describe(value)}: too large") from None
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum:g}, got {value}")
    if positive and not value > 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    return value


def check_ratio(name: str, value: Any, *, positive: bool = False) -> float:
    """Returns ``value`` as a float in [0, 1] (or (0, 1] when ``positive``)."""
    value = check_real(name, value)
    low_ok = value > 0.0 if positive else value >= 0.0
    if not (low_ok and value <= 1.0):
        valid = "0 < value <= 1" if positive else "0 <= value <= 1"
        hint = f" ({name} is a fraction: {value / 100:g} for {value:g}%)" if 1 < value <= 100 else ""
        raise ValueError(f"{name} must satisfy {valid}, got {value}{hint}")
    return value


def check_choice(name: str, value: Any, choices: Iterable[str]) -> str:
    """Returns ``value`` if it is one of ``choices``; otherwise lists the valid names."""
    choices = tuple(choices)
    if not isinstance(value, str):
        raise TypeError(f"{name} must be one of {list(choices)}, got {_describe(value)}")
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value


def is_sequence(value: Any) -> bool:
    """Whether ``value`` is a collection of items to check one by one: iterable, and not a string,
    bytes or a mapping (whose iteration gives characters or keys)."""
    return isinstance(value, Iterable) and not isinstance(value, (str, bytes, Mapping))


def as_list(value: Any) -> list[Any]:
    """The items of a sequence (a list, a tuple, a 1-d array) as a list; one value (a number, a numpy
    or jax scalar, a string) as a list of it: ``lengths=4000`` means ``lengths=[4000]``, and
    ``shapes="linear"`` means ``["linear"]``, not its letters."""
    if getattr(value, "shape", None) == () or not is_sequence(value):
        return [value]
    return list(value)


def check_strictly_increasing(name: str, values: Sequence[int], item: Callable[[int], str]) -> None:
    """Refuses ``values`` unless each is above the one before; ``item(i)`` names element i."""
    for i in range(1, len(values)):
        if values[i] <= values[i - 1]:
            raise ValueError(
                f"{name} must be strictly increasing, got {list(values)} "
                f"({item(i)}={values[i]} <= {item(i - 1)}={values[i - 1]})"
            )


def check_step_value(value: Any) -> int | float:
    """A step to evaluate m at: any int, or a real number that is not NaN (+-inf are allowed: the
    schedule's limits). Bools are refused rather than read as 0 or 1."""
    if is_bool(value) or not isinstance(value, numbers.Real):
        raise TypeError(f"step must be an int or a real number, got {_describe(value)}")
    if isinstance(value, numbers.Integral):
        return int(value)
    value = float(value)
    if math.isnan(value):
        raise ValueError("step must not be NaN")
    return value
