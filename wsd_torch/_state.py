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
from typing import Any, ClassVar, NamedTuple, Protocol

from wsd_core import WSDSpec
from wsd_core import backend as v
from wsd_core.backend import check_saved_spec

REQUIRED = ("spec", "last_epoch")  # base_lrs too when saved; without them the optimizer's stay
# A scheduler's settings beside its spec that change its rates, saved only when set (as plain values)
_SETTINGS: dict[str, Callable[[Any], Any]] = {
    "min_lr": lambda value: v.check_real("saved min_lr", value, minimum=0.0),
}
SPEC_CHANGES = ("refuse", "continue")


def check_policy(on_spec_change: Any, adopt_foreign_state: Any) -> tuple[str, bool]:
    """The two load policies every scheduler and the container take at construction."""
    return (
        v.check_choice("on_spec_change", on_spec_change, SPEC_CHANGES),
        v.check_bool("adopt_foreign_state", adopt_foreign_state),
    )


def _count(name: str, value: Any) -> int:
    return v.check_steps(f"saved {name}", value)


def _flag(name: str, value: Any) -> bool:
    return v.check_bool(f"saved {name}", value)


def _lambdas(name: str, value: Any, groups: int) -> None:
    # LambdaLR's own entry (None, or the __dict__ of a callable object): accepted so that states
    # move between LambdaLR and WSDLR both ways, and ignored: the factor is always the spec's.
    if not isinstance(value, (list, tuple)) or len(value) != groups:
        raise ValueError(
            f"saved {name} must be a list of {groups} entries (LambdaLR's format), got {value!r}"
        )
    for i, entry in enumerate(value):
        if entry is not None and not isinstance(entry, Mapping):
            raise TypeError(f"saved {name}[{i}] must be None or a dict, got {type(entry).__name__}")


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


# torch's own LRScheduler bookkeeping that we know; each is checked, none is required. torch's other
# private fields (a later release may add some) pass through unchecked, as torch itself loads them.
_TORCH_KEYS: dict[str, Callable[[str, Any, int], Any]] = {
    "_step_count": lambda k, v, g: _count(k, v),
    "_is_initial": lambda k, v, g: _flag(k, v),
    "_get_lr_called_within_step": lambda k, v, g: _flag(k, v),
    "verbose": lambda k, v, g: _flag(k, v),
    "_last_lr": _rates,
    "lr_lambdas": _lambdas,
}


class TwoStepState(Protocol):
    """How every stateful object of ``wsd_torch`` saves and loads (``WSDLR``, ``WSDDeviceLR``,
    ``WSDCompanion``; ``WSDSchedulersContainer`` uses nothing else of them).

    ``check_state`` validates a saved state in full and changes nothing, raising an error that names
    the key and the value; what it returns, ``apply_state`` applies, and that cannot fail. So a
    container checks every member's state before it applies any, and a refused state leaves every
    member as it was. ``load_state_dict`` is the two in a row.

    Attributes:
      STATE_KEYS: the keys of ``state_dict()`` the class owns (a scheduler's state also passes
        torch's own private bookkeeping fields through, as torch saves them); any other key is refused.
      INTERNAL_ATTRIBUTES: the private attributes of the class that a state may never set, even under
        the name of a torch bookkeeping field.
    """

    STATE_KEYS: ClassVar[frozenset[str]]
    INTERNAL_ATTRIBUTES: ClassVar[frozenset[str]]

    def state_dict(self) -> dict[str, Any]: ...

    def check_state(self, state_dict: Any, *, allow_spec_change: bool | None = None) -> Any: ...

    def apply_state(self, checked: Any) -> None: ...

    def load_state_dict(self, state_dict: Any, *, allow_spec_change: bool | None = None) -> None: ...


def is_torch_field(key: str, internal: frozenset[str]) -> bool:
    """A private field of torch's ``LRScheduler`` we do not know (a newer torch's): passed through,
    unless it names one of the scheduler's ``internal`` attributes."""
    return key.startswith("_") and not key.startswith("__") and key not in internal


def torch_fields(scheduler: Any) -> dict[str, Any]:
    """torch's own bookkeeping in ``scheduler.__dict__`` (what ``LRScheduler.state_dict`` saves),
    without the scheduler's own attributes and device tensors: a state keeps them as torch does."""
    internal = type(scheduler).INTERNAL_ATTRIBUTES
    return {
        k: v
        for k, v in scheduler.__dict__.items()
        if (k in _TORCH_KEYS or is_torch_field(k, internal)) and k != "lr_lambdas"
    }


class SchedulerState(NamedTuple):
    """A validated scheduler state: the count, the base rates and torch's bookkeeping keys."""

    last_epoch: int
    base_lrs: list[float] | None  # None: a foreign state without them; the optimizer's are kept
    torch_keys: dict[str, Any]


def parse_state(
    state: Any,
    *,
    owner: str,
    spec: WSDSpec,
    groups: int,
    allow_spec_change: bool,
    adopt_foreign: bool = False,
    settings: Mapping[str, Any] | None = None,
    internal: frozenset[str] = frozenset(),
) -> SchedulerState:
    """Checks ``state`` completely against a scheduler of ``spec`` over ``groups`` param groups.

    A state without a spec (a plain ``LambdaLR``, transformers' ``get_wsd_schedule``, torchtitan's
    container ``{"last_epoch": N}``) is refused unless ``adopt_foreign``: then its step count (and
    its base rates, when it has them) are taken over, and the factor becomes this spec's.
    """
    if not isinstance(state, Mapping):
        raise TypeError(f"{owner}.load_state_dict expects a dict, got {type(state).__name__}")
    keys = set(state)
    bad_keys = sorted(repr(k) for k in keys if not isinstance(k, str))
    if bad_keys:
        raise TypeError(f"{owner} state keys must be strings, got {', '.join(bad_keys)}")
    foreign = "spec" not in keys
    if foreign and not adopt_foreign:
        raise ValueError(
            f"this state has no 'spec' entry: it was not saved by this library (a LambdaLR, "
            f"get_wsd_schedule or torchtitan state?). To switch a running job to {owner} and keep its "
            "step count, build the scheduler (or container) with adopt_foreign_state=True"
        )
    if not foreign:
        # the settings first: with min_lr the spec is the first group's, so its min_ratio differs too
        for name, current in (settings or {}).items():
            saved = state.get(name)
            if saved is not None:
                saved = _SETTINGS[name](saved)
            if saved != current and not allow_spec_change:
                raise ValueError(
                    f"the saved state was made with {name}={saved}, this scheduler has {name}={current}: "
                    "that changes the rate sequence. Pass allow_spec_change=True (or "
                    "on_spec_change='continue' at construction) to change it on purpose."
                )
        check_saved_spec(WSDSpec.from_dict(state["spec"]), spec, allow_spec_change)
    missing = [k for k in REQUIRED if k not in keys and not (foreign and k == "spec")]
    passed_through = {k for k in keys - set(_TORCH_KEYS) if is_torch_field(k, internal)}
    unknown = sorted(keys - {*REQUIRED, "base_lrs", *_SETTINGS} - set(_TORCH_KEYS) - passed_through)
    if missing or unknown:
        raise ValueError(
            f"not a {owner} state: "
            + (f"missing keys {missing}" if missing else "")
            + ("; " if missing and unknown else "")
            + (f"unknown keys {unknown}" if unknown else "")
            + f" (a {owner} state has {list(REQUIRED)}, base_lrs, {', '.join(_SETTINGS)} when set, and "
            f"torch's own private fields such as {sorted(_TORCH_KEYS)}; it may not set "
            f"{sorted(internal)})"
        )
    torch_keys = {k: check(k, state[k], groups) for k, check in _TORCH_KEYS.items() if k in state}
    torch_keys.pop("lr_lambdas", None)
    torch_keys.update({k: state[k] for k in sorted(passed_through)})
    return SchedulerState(
        last_epoch=_count("last_epoch", state["last_epoch"]),
        base_lrs=_rates("base_lrs", state["base_lrs"], groups) if "base_lrs" in state else None,
        torch_keys=torch_keys,
    )
