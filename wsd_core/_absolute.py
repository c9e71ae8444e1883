"""Absolute rates given where the spec holds ratios: optax's ``init_value`` / ``end_value`` and
torch's ``min_lr``, each turned into its ratio of the peak here, once, for every adapter.

The spec is a multiplier (``docs/contract.md``); a rate is ``peak * m``. A user who thinks in rates
gives the warmup's start or the floor as a rate, and the adapter passes it here with the peak it is a
ratio of (optax's ``peak_value``, or a param group's ``lr``). Every error names what the user gave.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from wsd_core._fields import check_field_names
from wsd_core._spec import WSDSpec
from wsd_core._validation import check_real

# each absolute rate, the ratio field it becomes, and whether it may equal the peak: a floor at the
# peak (torch's min_lr equal to a group's lr) never decays, which torch's CosineAnnealingLR users
# would not mean; optax's end_value may, as optax allows it
ABSOLUTE_RATES: dict[str, tuple[str, bool]] = {
    "init_value": ("init_ratio", True),
    "end_value": ("min_ratio", True),
    "min_lr": ("min_ratio", False),
}


def check_absolute(name: str, value: Any) -> float:
    """An absolute rate as given: a finite float >= 0."""
    return check_real(name, value, minimum=0.0)


def spec_from_absolute(
    peak: float,
    values: Mapping[str, Any],
    *,
    spec: WSDSpec | None = None,
    fields: Mapping[str, Any] | None = None,
    peak_name: str = "peak_value",
) -> WSDSpec:
    """The spec of ``spec`` or of ``fields`` (as ``spec_from_args``) with each absolute rate in
    ``values`` (names of ``ABSOLUTE_RATES``; None: not given) as its ratio of ``peak``.

    Refused, naming the value the user gave: a rate below 0 or not finite, a rate above the peak (or
    a ``min_lr`` at it), a rate given with its own ratio (in ``fields``, or a spec whose ratio is set
    to another value), and a spec that cannot have that ratio (the message shows the conversion).
    ``peak_name`` names the peak (``"peak_value"``, ``"param group 2's lr"``); a zero peak allows only
    zero rates.
    """
    given = {name: check_absolute(name, value) for name, value in values.items() if value is not None}
    ratios: dict[str, Any] = {}
    for name, value in given.items():
        ratio, may_equal = ABSOLUTE_RATES[name]
        if value > peak or (value == peak and not may_equal):
            bound = "<=" if may_equal else "<"
            why = "" if may_equal else f", or the rate would never decay ({ratio} = 1)"
            raise ValueError(
                f"{name}={value:g} with {peak_name} {peak:g}: {name} must be {bound} {peak_name} "
                f"({peak:g}), got {value:g}{why}"
            )
        ratios[ratio] = value / peak if peak > 0 else 0.0
        _check_given_once(name, value, ratio, ratios[ratio], spec, fields or {})
    try:
        if spec is not None:
            return dataclasses.replace(spec_from_args(spec, fields or {}), **ratios)
        return spec_from_args(None, {**(fields or {}), **ratios})
    except (TypeError, ValueError) as e:
        shown = ", ".join(
            f"{ABSOLUTE_RATES[n][0]} = {n} / {peak_name} = {ratios[ABSOLUTE_RATES[n][0]]:g}" for n in given
        )
        raise type(e)(f"{e} ({shown})") from None


def _check_given_once(
    name: str, value: float, ratio: str, converted: float, spec: WSDSpec | None, fields: Mapping[str, Any]
) -> None:
    """A rate and its own ratio together are refused, unless the spec's ratio is its default (0) or
    already the converted value (a scheduler rebuilt from its own spec)."""
    own = fields.get(ratio) if spec is None else getattr(spec, ratio)
    if ratio in fields or (spec is not None and own not in (0.0, converted)):
        raise TypeError(
            f"give {name} (an absolute rate) or {ratio} (a fraction of the peak), not both: got "
            f"{name}={value:g} and {ratio}={own!r}"
        )


def spec_from_args(spec: WSDSpec | None, fields: Mapping[str, Any]) -> WSDSpec:
    """The spec of a ``f(..., spec=None, **fields)`` call: the given spec, or one built from fields."""
    if spec is not None and fields:
        raise TypeError(f"give either spec or WSDSpec fields, not both (got fields {sorted(fields)})")
    if spec is None:
        check_field_names(fields, where="the schedule")
        return WSDSpec(**fields)
    if not isinstance(spec, WSDSpec):
        raise TypeError(f"spec must be a WSDSpec, got {type(spec).__name__}")
    return spec
