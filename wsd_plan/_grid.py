"""``CooldownGrid``: the cooldowns to consider off a trunk, as one validated value.

A grid is where each cooldown branches (the runs' lengths, ``budgets``, each cooldown then branching
at ``budget - length``; or the checkpoints to branch from, ``at_steps``; or neither, for a
``Forecast``, which branches at its last observed step), how long it lasts (``lengths``), its shapes
and its floors. Every entry point that considers cooldowns takes one (``plan_cooldown``,
``optimize_cooldown``, ``Forecast.now`` / ``plan`` / ``metrics``, the forecast callbacks), or its
fields as keywords that build one; it is checked once, where it is built.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any, TypedDict

from wsd_core import DECAY_SHAPES
from wsd_core.backend import as_list, check_choice, check_ratio, check_steps
from wsd_plan._runs import check_update_count


class GridFields(TypedDict, total=False):
    """A ``CooldownGrid``'s fields as keywords (one value stands for a list of it)."""

    lengths: Iterable[int] | int
    budgets: Iterable[int] | int | None
    at_steps: Iterable[int] | int | None
    shapes: Iterable[str] | str
    min_ratios: Iterable[float] | float


@dataclasses.dataclass(frozen=True, init=False)
class CooldownGrid:
    """The cooldowns to consider: each of ``lengths`` x ``shapes`` x ``min_ratios``, ending at each of
    ``budgets`` or branching at each of ``at_steps`` (at most one of the two). One value stands for a
    list of it; every value is checked at construction, and kept as a tuple.

    Attributes:
      lengths: cooldown lengths in updates (at least one).
      budgets: run lengths in updates: each cooldown of ``length`` branches at ``budget - length``.
      at_steps: the stable checkpoints to branch from (each length then ends at its own step).
      shapes: decay shapes (default ``("1-sqrt",)``).
      min_ratios: floors of the cooldown, as fractions of the peak (default ``(0.0,)``).

    Examples:
      >>> grid = CooldownGrid(lengths=[2000, 4000], budgets=24_000, shapes="linear")
      >>> grid.budgets, grid.shapes, grid.pairs
      ((24000,), ('linear',), ((22000, 2000), (20000, 4000)))
    """

    lengths: tuple[int, ...]
    budgets: tuple[int, ...] | None
    at_steps: tuple[int, ...] | None
    shapes: tuple[str, ...]
    min_ratios: tuple[float, ...]

    def __init__(
        self, lengths: Iterable[int] | int, *, budgets: Iterable[int] | int | None = None,
        at_steps: Iterable[int] | int | None = None, shapes: Iterable[str] | str = ("1-sqrt",),
        min_ratios: Iterable[float] | float = (0.0,),
    ) -> None:  # fmt: skip
        set_ = lambda name, value: object.__setattr__(self, name, None if value is None else tuple(value))
        set_("lengths", [check_steps("lengths", n, minimum=1) for n in as_list(lengths)])
        if budgets is not None and at_steps is not None:
            raise TypeError(
                "give budgets= (runs of that many updates: the branch is at budget - length) or at_steps= "
                "(branch off these checkpoints): at most one of them, got both"
            )
        set_(
            "budgets",
            None if budgets is None else [check_steps("budgets", b, minimum=1) for b in as_list(budgets)],
        )
        set_(
            "at_steps", None if at_steps is None else [check_steps("at_steps", a) for a in as_list(at_steps)]
        )
        set_("shapes", [check_choice("shapes", x, DECAY_SHAPES) for x in as_list(shapes)])
        set_("min_ratios", [check_ratio("min_ratios", r) for r in as_list(min_ratios)])
        for name in ("lengths", "budgets", "at_steps", "shapes", "min_ratios"):
            if getattr(self, name) == ():
                raise ValueError(f"{name} must hold at least one value")
        if self.pairs:
            check_update_count(max(a + n for a, n in self.pairs), "budgets" if self.budgets else "at_steps")

    @property
    def pairs(self) -> tuple[tuple[int, int], ...]:
        """Every (branch step, length): for budgets, those that branch at step 0 or later."""
        if self.budgets is not None:
            return tuple((b - n, n) for b in self.budgets for n in self.lengths if b - n >= 0)
        return tuple((a, n) for a in self.at_steps or () for n in self.lengths)

    def at(self, step: int) -> CooldownGrid:
        """This grid branching at ``step`` alone (a forecast's "cool down now")."""
        return dataclasses.replace(self, budgets=None, at_steps=(step,))

    def pairs_after(self, warmup: int) -> list[tuple[int, int]]:
        """The pairs that branch after a trunk's warmup; with budgets, a cooldown too long for its
        budget (it would branch inside the warmup, or at its end, whose last update was still
        warming up) is no candidate, and a budget left with none is refused."""
        pairs = list(self.pairs)
        if self.budgets is not None:
            pairs = [(a, n) for a, n in pairs if a > warmup or a == warmup == 0]
            short = [b for b in self.budgets if not any(a + n == b for a, n in pairs)]
            if short:
                raise ValueError(
                    f"budget(s) {short} leave no cooldown of lengths {list(self.lengths)} after the trunk's "
                    f"warmup (it ends at step {warmup})"
                )
        inside = sorted({a for a, _ in pairs if a < warmup})
        if inside:
            raise ValueError(
                f"cannot branch at step(s) {inside}: inside the trunk's warmup (it ends at step {warmup}); "
                "a cooldown starts from the peak"
            )
        return pairs


def grid_of(grid: CooldownGrid | None, fields: Mapping[str, Any]) -> CooldownGrid:
    """The grid of a ``f(..., grid=None, **fields)`` call: the given grid, or one built from its
    fields (not both)."""
    if grid is not None and fields:
        raise TypeError(f"give either grid or its fields, not both (got fields {sorted(fields)})")
    if grid is None:
        unknown = sorted(set(fields) - set(GridFields.__annotations__))
        if unknown:
            raise TypeError(
                f"unknown CooldownGrid fields {unknown}; its fields: {list(GridFields.__annotations__)}"
            )
        if "lengths" not in fields:
            raise TypeError("give grid=CooldownGrid(...) or its fields (lengths=... at least)")
        return CooldownGrid(**fields)
    if not isinstance(grid, CooldownGrid):
        raise TypeError(f"grid must be a CooldownGrid, got {type(grid).__name__}")
    return grid
