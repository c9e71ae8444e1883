"""``WSDCompanion``: another optimizer hyperparameter (``betas[1]``, ``weight_decay``) that moves with
the rate's cooldown, set in every param group at each step."""

from __future__ import annotations

from typing import Any, Unpack

import torch
from torch.optim import Optimizer

from wsd_core import WSDFields, WSDSpec
from wsd_core.backend import (
    check_bool,
    check_int,
    check_real,
    check_saved_spec,
    require_clock,
    spec_from_args,
)
from wsd_torch._optimizer import check_optimizer


class WSDCompanion:
    """Sets ``group[key]`` (or ``group[key][index]``) to ``cooled + (stable - cooled) * h(step)`` in
    every param group, where ``h = spec.stable_fraction(step)``: ``stable_value`` while the rate is at
    its peak (the warmup included), ``cooled_value`` where it reaches its floor, following the rate's
    own decay in between (``docs/contract.md``, "Companion hyperparameters").

    It counts steps as a torch scheduler does (``last_epoch`` is the number of updates applied; call
    ``step()`` after ``optimizer.step()``, beside the rate's scheduler, or give it to
    ``WSDSchedulersContainer(..., companions=[...])``, which steps and saves it with the rates), and
    its ``state_dict`` holds
    the spec, key and values, refused on load when they differ from its own unless
    ``allow_spec_change`` (the spec alone may then change, as when a cooldown is branched).

    Args:
      optimizer: the wrapped optimizer.
      key: the param-group entry, e.g. ``"weight_decay"`` or ``"betas"``.
      stable_value: the hyperparameter while the rate is at its peak.
      cooled_value: the hyperparameter where the rate reaches its floor.
      index: for a tuple entry such as ``betas``, which element (1 for beta2); None for a number.
      spec: the rate's ``WSDSpec`` (or its fields as keyword arguments).
      last_epoch: -1 to start; use ``load_state_dict`` to resume.

    Examples:
      >>> import torch
      >>> opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))], lr=1e-3, betas=(0.9, 0.95))
      >>> spec = WSDSpec(100, warmup_steps=10, decay_steps=20, decay_shape="linear", min_ratio=0.0)
      >>> beta2 = WSDCompanion(opt, key="betas", index=1, stable_value=0.95, cooled_value=0.999, spec=spec)
      >>> for _ in range(90):
      ...     opt.step()
      ...     beta2.step()
      >>> [round(b, 4) for b in opt.param_groups[0]["betas"]]
      [0.9, 0.9745]
    """

    def __init__(
        self,
        optimizer: Optimizer,
        *,
        key: str,
        stable_value: float,
        cooled_value: float,
        index: int | None = None,
        spec: WSDSpec | None = None,
        last_epoch: int = -1,
        **fields: Unpack[WSDFields],
    ) -> None:
        check_optimizer("WSDCompanion", optimizer)
        self.optimizer = optimizer
        self.spec = spec_from_args(spec, fields)
        require_clock(self.spec, where="WSDCompanion")
        if not isinstance(key, str):
            raise TypeError(f"key must be a param-group entry name (a str), got {key!r}")
        self.key = key
        self.index = None if index is None else check_int("index", index, minimum=0)
        self.stable_value = check_real("stable_value", stable_value)
        self.cooled_value = check_real("cooled_value", cooled_value)
        self._checked = 0  # param groups checked so far (groups added later are checked when seen)
        self._check_new_groups()
        self.last_epoch = check_int("last_epoch", last_epoch, minimum=-1)
        self.step()

    def _check_new_groups(self) -> None:
        groups = self.optimizer.param_groups
        for i in range(self._checked, len(groups)):
            self._check_group(i, groups[i])
        self._checked = len(groups)

    def _check_group(self, i: int, group: dict[str, Any]) -> None:
        if self.key not in group:
            entries = sorted(k for k in group if k != "params")
            raise ValueError(f"param group {i} has no {self.key!r} entry; its entries are {entries}")
        entry = group[self.key]
        if self.index is None and isinstance(entry, (tuple, list)):
            raise ValueError(f"param group {i}'s {self.key!r} is a {type(entry).__name__}: give index=")
        if self.index is not None and (not isinstance(entry, (tuple, list)) or len(entry) <= self.index):
            raise ValueError(f"param group {i}'s {self.key!r} is {entry!r}: it has no element {self.index}")

    def value_at(self, step: int) -> float:
        """The hyperparameter for the update after ``step`` updates."""
        h = self.spec.stable_fraction(step)
        return self.cooled_value + (self.stable_value - self.cooled_value) * h

    def get_last_value(self) -> float:
        """The value set by the last ``step()``."""
        return self.value_at(max(self.last_epoch, 0))

    def step(self) -> None:
        """Counts one update and sets the value for the next one in every param group."""
        self.last_epoch += 1
        self._apply()

    def _apply(self) -> None:
        value = self.value_at(self.last_epoch)
        self._check_new_groups()  # a group added since (add_param_group) must have the entry too
        for group in self.optimizer.param_groups:
            if self.index is None:
                if isinstance(group[self.key], torch.Tensor):
                    group[self.key].fill_(value)
                else:
                    group[self.key] = value
            else:
                entry = list(group[self.key])
                entry[self.index] = value
                group[self.key] = tuple(entry) if isinstance(group[self.key], tuple) else entry

    # --- state: the TwoStepState protocol (``wsd_torch._state``) ---------------------------------

    STATE_KEYS = frozenset({"last_epoch", "spec", "key", "index", "stable_value", "cooled_value"})

    def state_dict(self) -> dict[str, Any]:
        """The step count, the spec (a plain dict), the key, index and values."""
        return {
            "last_epoch": self.last_epoch,
            "spec": self.spec.to_dict(),
            "key": self.key,
            "index": self.index,
            "stable_value": self.stable_value,
            "cooled_value": self.cooled_value,
        }

    def load_state_dict(self, state_dict: Any, *, allow_spec_change: bool | None = None) -> None:
        """Resumes from ``state_dict()``: refused if it was saved for another key, index or values, or
        (unless ``allow_spec_change``) under another spec."""
        self.apply_state(self.check_state(state_dict, allow_spec_change=allow_spec_change))

    def check_state(self, state_dict: Any, *, allow_spec_change: bool | None = None) -> int:
        """The step count of a saved state, after checking it in full (nothing is changed): its keys
        are exactly ``STATE_KEYS``, it sets the same hyperparameter the same way, and its spec is
        this one's unless ``allow_spec_change``."""
        allow = check_bool(
            "allow_spec_change", bool(allow_spec_change) if allow_spec_change is None else allow_spec_change
        )
        if not isinstance(state_dict, dict):
            raise TypeError(f"WSDCompanion.load_state_dict expects a dict, got {type(state_dict).__name__}")
        missing = sorted(self.STATE_KEYS - set(state_dict))
        unknown = sorted(set(state_dict) - self.STATE_KEYS, key=repr)
        if missing or unknown:
            found = [f"missing keys {missing}"] * bool(missing) + [f"unknown keys {unknown}"] * bool(unknown)
            raise ValueError(
                f"not a WSDCompanion state: {'; '.join(found)} (a WSDCompanion state has exactly "
                f"{sorted(self.STATE_KEYS)})"
            )
        mine = self.state_dict()
        for field in ("key", "index", "stable_value", "cooled_value"):
            if state_dict[field] != mine[field]:
                raise ValueError(
                    f"the saved companion sets {field}={state_dict[field]!r}, this one {mine[field]!r}: "
                    "is it the state of another hyperparameter?"
                )
        check_saved_spec(WSDSpec.from_dict(state_dict["spec"]), self.spec, allow)
        return check_int("saved last_epoch", state_dict["last_epoch"], minimum=0)

    def apply_state(self, checked: int) -> None:
        """Takes the step count ``check_state`` returned and sets the value for the next update."""
        self.last_epoch = checked
        self._apply()
