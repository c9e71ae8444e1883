"""What ``WSDLR`` and ``WSDDeviceLR`` share: the load policies, state loading, and introspection."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import torch
from torch.optim import Optimizer

from wsd_core import Phase, WSDSpec
from wsd_core.backend import check_absolute, check_bool, spec_from_absolute, spec_from_args
from wsd_torch._state import KNOWN_TORCH_KEYS, SchedulerState, check_policy, owned_names, parse_state


def base_rate(index: int, group: dict[str, Any], *, record: bool = True) -> float:
    """Param group ``index``'s base rate: its ``initial_lr``, or its ``lr`` (recorded as
    ``initial_lr`` when ``record``, as torch's schedulers do), a float or a one-element tensor."""
    lr = group.setdefault("initial_lr", group["lr"]) if record else group.get("initial_lr", group["lr"])
    if isinstance(lr, torch.Tensor) and lr.numel() != 1:
        raise ValueError(
            f"param group {index}'s lr must be a scalar, got a tensor of shape {tuple(lr.shape)}"
        )
    return float(lr.item()) if isinstance(lr, torch.Tensor) else float(lr)


class WSDSchedulerBase:
    """Mixed into both schedulers (before their torch base class).

    Load policies, set at construction because frameworks (HF Trainer, Lightning, DCP) call
    ``load_state_dict(state)`` with no other argument:

    * ``on_spec_change="refuse"`` (default) refuses a state saved under another spec;
      ``"continue"`` keeps this scheduler's spec and the saved step count: extending a trunk,
      branching a cooldown.
    * ``adopt_foreign_state=True`` accepts a state without a spec (a plain ``LambdaLR``,
      transformers' ``get_wsd_schedule``, torchtitan's container) and takes over its step count:
      switching a running job to this library.
    """

    spec: WSDSpec
    optimizer: Optimizer
    last_epoch: int
    STATE_KEYS: ClassVar[frozenset[str]]
    # the attributes torch's LRScheduler.__init__ set on this scheduler: torch's own bookkeeping,
    # which a state saves and may set (see _init_torch)
    _torch_state_keys: frozenset[str]

    on_spec_change: str
    adopt_foreign_state: bool
    min_lr: float | tuple[float, ...] | None = None

    def _init_torch(self, init: Callable[[], None]) -> None:
        """Runs torch's ``LRScheduler.__init__`` (``init``) and records the attributes it set: torch's
        own bookkeeping, which ``state_dict`` saves as torch does and a state may set. Found on the
        object rather than listed, so a newer torch's fields are kept and nothing else slips in."""
        before = set(vars(self))
        init()
        added = set(vars(self)) - before
        # its private fields, and what we own under torch's names (base_lrs, lr_lambdas); a public
        # attribute of a newer torch is neither saved nor expected
        self._torch_state_keys = frozenset(k for k in added if k.startswith("_") or k in self.STATE_KEYS)

    @property
    def _torch_keys(self) -> frozenset[str]:
        """torch's own bookkeeping fields of this scheduler (recorded by ``_init_torch``)."""
        recorded = self.__dict__.get("_torch_state_keys")
        if recorded is None:  # unpickled from a release that did not record them: those we know
            return frozenset(k for k in vars(self) if k in KNOWN_TORCH_KEYS) | {"base_lrs"}
        return recorded

    def _take_torch_fields(self, fields: dict[str, Any]) -> None:
        """Sets torch's bookkeeping fields from a checked state; a newer torch's field becomes one of
        this scheduler's, saved again by ``state_dict`` (as torch's own ``load_state_dict`` keeps it)."""
        self.__dict__.update(fields)
        self._torch_state_keys = self._torch_keys | set(fields)

    def _set_policy(self, on_spec_change: str, adopt_foreign_state: bool) -> None:
        self.on_spec_change, self.adopt_foreign_state = check_policy(on_spec_change, adopt_foreign_state)

    # --- an absolute floor ----------------------------------------------------------------------

    def _spec_and_floor(
        self, optimizer: Optimizer, spec: WSDSpec | None, fields: Mapping[str, Any], min_lr: Any
    ) -> None:
        """Sets ``spec`` and ``min_lr``: the floor as an absolute rate, the same in every param group
        (torch's convention, as ``CosineAnnealingLR``'s ``eta_min``), or one per group (Megatron-LM's
        per-group ``min_lr``), instead of a ratio. The spec is then the first group's
        (``min_ratio = its min_lr / its lr``); ``_group_spec`` gives the others'."""
        if min_lr is None:
            self.spec, self.min_lr = spec_from_args(spec, fields), None
            return
        floors = check_floors(min_lr, len(optimizer.param_groups))
        base = base_rate(0, optimizer.param_groups[0], record=False)
        self.spec = spec_from_absolute(
            base, {"min_lr": floor_of(floors, 0)}, spec=spec, fields=fields, peak_name="param group 0's lr"
        )
        self.min_lr = floors

    def _group_spec(self, index: int, base: float) -> WSDSpec:
        """The spec param group ``index`` follows: the spec itself, or with ``min_lr``, the spec with
        ``min_ratio = its min_lr / base``, so that each group's floor is its absolute rate."""
        if self.min_lr is None:
            return self.spec
        curve = {name: value for name, value in self.spec.to_dict().items() if name != "min_ratio"}
        return spec_from_absolute(
            base,
            {"min_lr": floor_of(self.min_lr, index)},
            fields=curve,
            peak_name=f"param group {index}'s lr",
        )

    def _floor_entry(self) -> dict[str, Any]:
        # min_lr, saved only when set (a list with one per group): a state without it is the same as
        # before it existed
        if self.min_lr is None:
            return {}
        return {"min_lr": list(self.min_lr) if isinstance(self.min_lr, tuple) else self.min_lr}

    # --- state: the TwoStepState protocol (``wsd_torch._state``) ---------------------------------

    def load_state_dict(self, state_dict: dict[str, Any], *, allow_spec_change: bool | None = None) -> None:
        """Resumes from ``state_dict``, validated in full first: a refused state changes nothing.

        A state saved under another spec is refused unless ``allow_spec_change=True`` here or
        ``on_spec_change="continue"`` at construction: the scheduler then keeps its own (new) spec
        and the saved step count, which is how a trunk is extended or a cooldown branched without
        resetting the count. A state without a spec needs ``adopt_foreign_state=True``. The
        optimizer's rates are set for the restored step, whichever order things were loaded in.
        """
        self.apply_state(self.check_state(state_dict, allow_spec_change=allow_spec_change))

    def check_state(
        self,
        state_dict: Any,
        *,
        allow_spec_change: bool | None = None,
        adopt_foreign_state: bool | None = None,
    ) -> SchedulerState:
        """``state_dict`` validated in full for this scheduler, changing nothing: unknown or missing
        keys, a bad value, another spec (unless allowed) or a base rate ``min_lr`` cannot serve all
        raise here, so that ``apply_state`` of the result cannot fail. The policies default to the
        scheduler's own (``on_spec_change``, ``adopt_foreign_state``)."""
        allow = self.on_spec_change == "continue" if allow_spec_change is None else allow_spec_change
        adopt = self.adopt_foreign_state if adopt_foreign_state is None else adopt_foreign_state
        state = parse_state(
            state_dict,
            owner=type(self).__name__,
            spec=self.spec,
            groups=len(self.optimizer.param_groups),
            allow_spec_change=check_bool("allow_spec_change", allow),
            adopt_foreign=check_bool("adopt_foreign_state", adopt),
            settings={"min_lr": self.min_lr},
            torch_keys=self._torch_keys,
            owned=owned_names(self, _subclasses(WSDSchedulerBase)),
        )
        for i, base in enumerate(state.base_lrs or ()):
            self._group_spec(i, base)  # a saved base rate below min_lr is refused here, not half-applied
        return state

    def apply_state(self, checked: SchedulerState) -> None:
        """Applies a state that ``check_state`` returned: the count, base rates and torch's fields,
        and sets the optimizer's rates for the restored step."""
        raise NotImplementedError

    def _new_groups(self, known: int) -> list[tuple[dict[str, Any], float]]:
        """Param groups added (``optimizer.add_param_group``) since ``known`` were seen, each with
        its base rate: its own ``lr``, recorded as ``initial_lr`` as torch's schedulers do."""
        groups = self.optimizer.param_groups
        return [(groups[i], base_rate(i, groups[i])) for i in range(known, len(groups))]

    # --- introspection ------------------------------------------------------------------------

    def phase(self) -> Phase:
        """The phase of the next update (step ``last_epoch``), whose rate is currently set."""
        return self.spec.phase(self.last_epoch)

    @property
    def period_ends(self) -> tuple[int, ...]:
        return self.spec.period_ends

    @property
    def decay_starts(self) -> tuple[int, ...]:
        """Each period's first decayed step: save pre-decay (trunk) checkpoints at these counts."""
        return self.spec.decay_starts


def _subclasses(cls: type) -> list[type]:
    """Every class derived from ``cls``: a state saved by one scheduler class loads into another, so
    none may set what any of them owns."""
    found: list[type] = []
    subs: list[type] = cls.__subclasses__()
    for sub in subs:
        found += [sub, *_subclasses(sub)]
    return found


def check_floors(min_lr: Any, groups: int) -> float | tuple[float, ...]:
    """``min_lr`` as one absolute rate for every param group, or a tuple of one per group."""
    if isinstance(min_lr, (list, tuple)):
        if len(min_lr) != groups:
            raise ValueError(
                f"min_lr must be one rate, or one per param group ({groups}), got {len(min_lr)} rates"
            )
        return tuple(check_absolute(f"min_lr[{i}]", x) for i, x in enumerate(min_lr))
    return check_absolute("min_lr", min_lr)


def floor_of(floors: float | tuple[float, ...], index: int) -> float:
    """Param group ``index``'s floor; a group added after ``min_lr`` gave one per group has none."""
    if not isinstance(floors, tuple):
        return floors
    if index >= len(floors):
        raise ValueError(
            f"min_lr gives a floor for each of {len(floors)} param groups, but param group {index} was added "
            "since: build the scheduler again with a min_lr for every group"
        )
    return floors[index]
