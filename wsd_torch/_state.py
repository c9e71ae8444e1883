"""Validation of a saved scheduler state, done in full before anything is changed.

Every scheduler of ``wsd_torch`` loads through ``parse_state``: a state that is refused leaves the
scheduler (and a container of schedulers) exactly as it was. Unknown and missing keys are named,
and every value is checked for type and range, so a hand-edited or foreign state can neither
overwrite internals (``optimizer``, ``lr_lambdas``) nor leave a count like ``15.7`` behind.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar, NamedTuple, Protocol

from wsd_core import WSDSpec
from wsd_core.backend import check_bool, check_choice, check_real, check_saved_spec, check_steps

REQUIRED = ("spec", "last_epoch")  # base_lrs too when saved; without them the optimizer's stay
# A scheduler's settings beside its spec that change its rates, saved only when set (as plain values)
_SETTINGS: dict[str, Callable[[Any], Any]] = {
    "min_lr": lambda value: _floors(value),
}
SPEC_CHANGES = ("refuse", "continue")


def _floors(value: Any) -> float | tuple[float, ...]:
    """A saved ``min_lr``: one rate, or a list of one per param group (saved as a list)."""
    if isinstance(value, (list, tuple)):
        return tuple(check_real(f"saved min_lr[{i}]", x, minimum=0.0) for i, x in enumerate(value))
    return check_real("saved min_lr", value, minimum=0.0)


def check_policy(on_spec_change: Any, adopt_foreign_state: Any) -> tuple[str, bool]:
    """The two load policies every scheduler and the container take at construction."""
    return (
        check_choice("on_spec_change", on_spec_change, SPEC_CHANGES),
        check_bool("adopt_foreign_state", adopt_foreign_state),
    )


def _count(name: str, value: Any) -> int:
    return check_steps(f"saved {name}", value)


def _flag(name: str, value: Any) -> bool:
    return check_bool(f"saved {name}", value)


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


# torch's own LRScheduler bookkeeping that we know (this torch's, and earlier releases': ``verbose``
# went in 2.7), each checked when a state holds it. A scheduler's own bookkeeping is what torch's
# ``__init__`` set on it (``WSDSchedulerBase._init_torch`` records it), so a newer torch's fields are
# saved and loaded as torch itself would.
_TORCH_KEYS: dict[str, Callable[[str, Any, int], Any]] = {
    "_step_count": lambda k, v, g: _count(k, v),
    "_is_initial": lambda k, v, g: _flag(k, v),
    "_get_lr_called_within_step": lambda k, v, g: _flag(k, v),
    "verbose": lambda k, v, g: _flag(k, v),
    "_last_lr": _rates,
    "lr_lambdas": _lambdas,
}


KNOWN_TORCH_KEYS = frozenset(_TORCH_KEYS)


class TwoStepState(Protocol):
    """How every stateful object of ``wsd_torch`` saves and loads (``WSDLR``, ``WSDDeviceLR``,
    ``WSDCompanion``; ``WSDSchedulersContainer`` uses nothing else of them).

    ``check_state`` validates a saved state in full and changes nothing, raising an error that names
    the key and the value; what it returns, ``apply_state`` applies, and that cannot fail. So a
    container checks every member's state before it applies any, and a refused state leaves every
    member as it was. ``load_state_dict`` is the two in a row.

    Attributes:
      STATE_KEYS: the keys of ``state_dict()`` the class owns. A scheduler's state also holds torch's
        own bookkeeping (the fields torch's ``LRScheduler.__init__`` set on it, as torch saves them);
        any other key is refused, naming it.
    """

    STATE_KEYS: ClassVar[frozenset[str]]

    def state_dict(self) -> dict[str, Any]: ...

    def check_state(self, state_dict: Any, *, allow_spec_change: bool | None = None) -> Any: ...

    def apply_state(self, checked: Any) -> None: ...

    def load_state_dict(self, state_dict: Any, *, allow_spec_change: bool | None = None) -> None: ...


def owned_names(obj: Any, classes: Iterable[type] = ()) -> frozenset[str]:
    """Every name ``obj`` answers to: its attributes, its class's attributes and methods, and the
    attributes its classes declare (a cache set on first use is declared, not yet set); and the same
    of ``classes`` (the sibling classes whose states it loads). A state key that names one of these
    (and is not torch's own bookkeeping) would overwrite the object's own data or shadow a method:
    it is refused, however it is spelled."""
    names = set(dir(obj))
    for cls in (type(obj), *classes):
        names.update(dir(cls))
        names.update(name for base in cls.__mro__ for name in getattr(base, "__annotations__", {}))
    return frozenset(names)


def torch_fields(scheduler: Any) -> dict[str, Any]:
    """torch's own bookkeeping on ``scheduler`` (what ``LRScheduler.state_dict`` saves), without the
    keys the scheduler owns and saves itself: a state keeps them as torch does."""
    keys = scheduler._torch_keys - type(scheduler).STATE_KEYS
    return {k: v for k, v in vars(scheduler).items() if k in keys}


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
    torch_keys: frozenset[str] = frozenset(),
    owned: frozenset[str] = frozenset(),
) -> SchedulerState:
    """Checks ``state`` completely against a scheduler of ``spec`` over ``groups`` param groups.

    The keys a state may hold: the scheduler's own (``REQUIRED``, ``base_lrs``, its settings), torch's
    bookkeeping (``torch_keys``: what torch's ``__init__`` set on this scheduler, and the fields of
    other torch releases that we know), and a private field of a newer torch that names nothing the
    scheduler has. A key that names one of the scheduler's own attributes or methods (``owned``) is
    refused, and so is every other key.

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
    _check_keys(keys, owner, torch_keys, owned, foreign)
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
    checked = {k: check(k, state[k], groups) for k, check in _TORCH_KEYS.items() if k in state}
    # applied: this scheduler's own torch fields and a newer torch's; another release's are dropped
    newer = {k: state[k] for k in keys if _is_newer_torch_field(k, torch_keys, owned)}
    applied = {k: v for k, v in checked.items() if k in torch_keys and k != "lr_lambdas"}
    return SchedulerState(
        last_epoch=_count("last_epoch", state["last_epoch"]),
        base_lrs=_rates("base_lrs", state["base_lrs"], groups) if "base_lrs" in state else None,
        torch_keys={**applied, **dict(sorted(newer.items()))},
    )


def _is_newer_torch_field(key: str, torch_keys: frozenset[str], owned: frozenset[str]) -> bool:
    """A private field torch saved that this torch does not have: passed through, as torch's own
    ``load_state_dict`` would, unless the name is the scheduler's own."""
    known = key in _TORCH_KEYS or key in torch_keys
    return key.startswith("_") and not key.startswith("__") and not known and key not in owned


def _check_keys(
    keys: set[str], owner: str, torch_keys: frozenset[str], owned: frozenset[str], foreign: bool
) -> None:
    """Refuses missing keys, and keys that are neither ours, torch's, nor a newer torch's field."""
    ours = {*REQUIRED, "base_lrs", *_SETTINGS}
    missing = [k for k in REQUIRED if k not in keys and not (foreign and k == "spec")]
    rest = keys - ours - set(_TORCH_KEYS) - torch_keys
    unknown = sorted(k for k in rest if not _is_newer_torch_field(k, torch_keys, owned))
    if not (missing or unknown):
        return
    found = [f"missing keys {missing}"] * bool(missing) + [f"unknown keys {unknown}"] * bool(unknown)
    shadowing = [k for k in unknown if k in owned]
    if shadowing:  # e.g. "_refresh": applied, it would replace the method with data
        found[-1] += f" ({shadowing} name the {owner}'s own attributes or methods: a state may not set them)"
    raise ValueError(
        f"not a {owner} state: {'; '.join(found)} (a {owner} state has {list(REQUIRED)}, base_lrs, "
        f"{', '.join(_SETTINGS)} when set, and torch's own fields {sorted(torch_keys - ours)})"
    )
