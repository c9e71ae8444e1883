"""Spellings of 0.1 and the 0.2 development line that still work, with a ``DeprecationWarning``
naming the new one, until 0.3 (the CHANGELOG says so): the presets as ``WSDSpec`` classmethods
(now plain functions of ``wsd_core.presets``), the ``*_in_units`` evaluations (now a keyword of the
one evaluation), and ``WSDSpec.resolved()`` (now ``wsd_core.backend.resolve``).

They are attached to ``WSDSpec`` here, so the class itself lists only its current interface.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

from wsd_core import presets
from wsd_core._formula import Resolved
from wsd_core._phases import Phase
from wsd_core._spec import WSDSpec

# the presets as classmethods, 0.1's spelling (also for the presets added since, so that either
# spelling works for every preset until 0.3)
PRESETS = tuple(presets.__all__)
EVALUATIONS = ("multiplier_in_units", "stable_fraction_in_units", "phase_in_units")
NAMES = (*PRESETS, *EVALUATIONS, "resolved")


def _warn(old: str, new: str) -> None:
    warnings.warn(f"WSDSpec.{old} is deprecated and goes in 0.3: use {new}", DeprecationWarning, stacklevel=3)


def _preset(name: str) -> Any:
    function: Callable[..., WSDSpec] = getattr(presets, name)

    def build(cls: type[WSDSpec], *args: Any, **kwargs: Any) -> WSDSpec:
        _warn(f"{name}(...)", f"wsd_core.presets.{name}(...) (the same arguments)")
        return function(*args, **kwargs)

    build.__doc__ = f"Deprecated: ``wsd_core.presets.{name}``."
    return classmethod(build)


def multiplier_in_units(self: WSDSpec, step: int | float) -> float:
    """Deprecated: ``multiplier(step, in_units=True)``."""
    _warn("multiplier_in_units(step)", "multiplier(step, in_units=True)")
    return self.multiplier(step, in_units=True)


def stable_fraction_in_units(self: WSDSpec, step: int | float) -> float:
    """Deprecated: ``stable_fraction(step, in_units=True)``."""
    _warn("stable_fraction_in_units(step)", "stable_fraction(step, in_units=True)")
    return self.stable_fraction(step, in_units=True)


def phase_in_units(self: WSDSpec, step: int) -> Phase:
    """Deprecated: ``phase(step, in_units=True)``."""
    _warn("phase_in_units(step)", "phase(step, in_units=True)")
    return self.phase(step, in_units=True)


def resolved(self: WSDSpec) -> Resolved:
    """Deprecated: ``wsd_core.backend.resolve(spec)``."""
    _warn("resolved()", "wsd_core.backend.resolve(spec)")
    return self._resolved


for _name in PRESETS:
    setattr(WSDSpec, _name, _preset(_name))
for _function in (multiplier_in_units, stable_fraction_in_units, phase_in_units, resolved):
    setattr(WSDSpec, _function.__name__, _function)
