"""Validation of a saved scheduler state, done in full before anything is changed.

Every scheduler of ``wsd_torch`` loads through ``parse_state``: a state that is refused leaves the
scheduler (and a container of schedulers) exactly as it was. Unknown and missing keys are named,
and every value is checked for type and range, so a hand-edited or foreign state can neither
overwrite internals (``optimizer``, ``lr_lambdas``) nor leave a count like ``15.7`` behind.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from wsd_core import WSDSpec
from wsd_core._saved import check_saved_spec

REQUIRED = ("spec", "last_epoch", "base_lrs")


def _count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"saved {name} must be an int, got {value!r} (type {type(value).__name__})")
    if value < 0:
        raise ValueError(f"saved {name} must be >= 0, got {value}")
    return int(value)


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"saved {name} must be a bool, got {value!r}")
    return value


def _rates(name: str, value: Any, groups: int) -> list[float]:
    if not isinstance(value, (list, tuple)):
        raise TypeError(f"saved {name} must be a list of {groups} rates, got {type(value).__name__}")
    if len(value) != groups:
        raise ValueError(f"saved {name} has {len(value)} entries but the optimizer has {groups} param groups")
    out = []
    for i, rate in enumerate(value):
        rate = float(rate.item()) if hasattr(rate, "item") else rate  # a tensor rate (torch's _last_lr)
        if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not math.isfinite(rate):
            raise TypeError(f"saved {name}[{i}] must be a finite number, got {rate!r}")
        if rate < 0:
            raise ValueError(f"saved {name}[{i}] must be >= 0, got {rate}")
        out.append(float(rate))
    return out


# torch's own LRScheduler bookkeeping, present in a WSDLR state; each is checked, none is required.
_TORCH_KEYS: dict[str, Callable[[str, Any, int], Any]] = {
    "_step_count": lambda k, v, g: _count(k, v),
    "_is_initial": lambda k, v, g: _flag(k, v),
    "_get_lr_called_within_step": lambda k, v, g: _flag(k, v),
    "verbose": lambda k, v, g: _flag(k, v),
    "_last_lr": _rates,
}


class SchedulerState(NamedTuple):
    """A validated scheduler state: the count, the base rates and torch's bookkeeping keys."""

    last_epoch: int
    base_lrs: list[float]
    torch_keys: dict[str, Any]


def parse_state(
    state: Any, *, owner: str, spec: WSDSpec, groups: int, allow_spec_change: bool
) -> SchedulerState:
    """Checks ``state`` completely against a scheduler of ``spec`` over ``groups`` param groups."""
    if not isinstance(state, Mapping):
        raise TypeError(f"{owner}.load_state_dict expects a dict, got {type(state).__name__}")
    keys = set(state)
    bad_keys = sorted(repr(k) for k in keys if not isinstance(k, str))
    if bad_keys:
        raise TypeError(f"{owner} state keys must be strings, got {', '.join(bad_keys)}")
    check_saved_spec(state, spec, allow_spec_change)  # first: a state of another library has no spec
    missing = [k for k in REQUIRED if k not in keys]
    unknown = sorted(keys - set(REQUIRED) - set(_TORCH_KEYS))
    if missing or unknown:
        raise ValueError(
            f"not a {owner} state: "
            + (f"missing keys {missing}" if missing else "")
            + ("; " if missing and unknown else "")
            + (f"unknown keys {unknown}" if unknown else "")
            + f" (a {owner} state has {list(REQUIRED)} and torch's own {sorted(_TORCH_KEYS)})"
        )
    return SchedulerState(
        last_epoch=_count("last_epoch", state["last_epoch"]),
        base_lrs=_rates("base_lrs", state["base_lrs"], groups),
        torch_keys={k: check(k, state[k], groups) for k, check in _TORCH_KEYS.items() if k in state},
    )
