"""A spec's run cut into its phases (warmup, stable, decay, rewarmup), in the spec's own count: the one
place the Python side does it. ``WSDSpec.phase``, ``phase_table`` and ``multiplier``'s pieces read
it; the array backends locate periods branch-free instead (``wsd_core._formula``)."""

from __future__ import annotations

import bisect
from collections.abc import Callable
from typing import Any, NamedTuple

from wsd_core._formula import (
    PythonBackend,
    Resolved,
    decay_value,
    evaluate,
    rewarmup_value,
    stable_value,
    warmup_value,
)

_WARMUP = "warmup"  # a piece of the run evaluated by warmup_value
_PARTS = {"decay": decay_value, "rewarmup": rewarmup_value, "stable": stable_value}


class Phase(NamedTuple):
    """Where an optimizer step falls in the schedule.

    Attributes:
      name: ``"warmup"``, ``"stable"``, ``"decay"``, ``"rewarmup"`` (the first ``rewarmup_steps`` of
        a later period) or ``"done"`` (at or past the end of the run).
      period: 0-based index of the period (``len(period_ends) - 1`` for ``"done"``).
      progress: fraction of the phase completed before this step, in [0, 1]: ``u / W`` in warmup,
        ``j / N`` in a rewarmup, the contract's ``p`` in a decay, 1.0 when done.
      multiplier: m(step), the factor applied to the peak learning rate.
    """

    name: str
    period: int
    progress: float
    multiplier: float


Segment = tuple[str, int, int, int]  # (name, period, first, last), in the spec's own count


def segments(plan: Resolved) -> list[Segment]:
    """(name, period, first, last) of every non-empty phase, start_step included."""
    s0 = plan.start_step
    found: list[Segment] = []
    previous = 0
    for i, (end, b) in enumerate(zip(plan.ends, plan.decay_starts, strict=True)):
        # the first W updates of the run warm up, the first N of every later period rewarm
        rising = plan.warmup_steps if i == 0 else plan.rewarmup_steps
        if rising > 0:
            found.append(("warmup" if i == 0 else "rewarmup", i, s0 + previous, s0 + previous + rising - 1))
        stable_from = previous + rising
        if b > stable_from:
            found.append(("stable", i, s0 + stable_from, s0 + b - 1))
        decay_from = max(b, stable_from)
        if end > decay_from:
            found.append(("decay", i, s0 + decay_from, s0 + end - 1))
        previous = end
    return found


def phase_at(plan: Resolved, step: int, found: list[Segment], m: float) -> Phase:
    """The phase at ``step``, a count of the spec's own units (``found``: its ``segments``; ``m``:
    the multiplier there)."""
    s0, end = plan.count_range
    if step >= end:
        return Phase("done", len(plan.ends) - 1, 1.0, m)
    step = max(step, s0)  # before the start: as at the start
    name, i, first, last = found[bisect.bisect_right([s[2] for s in found], step) - 1]
    if name == "warmup":
        return Phase(name, i, (step - s0) / plan.warmup_steps, m)
    if name == "stable":
        return Phase(name, i, (step - first) / (last - first + 1), m)
    if name == "rewarmup":
        return Phase(name, i, (step - first) / plan.rewarmup_steps, m)
    return Phase(name, i, (step - s0 - plan.decay_starts[i]) / plan.decay_lengths[i], m)


def phase_table(plan: Resolved, units: str, at: Callable[[int], float]) -> str:
    """A human-readable table of the phases: steps, lengths and the multiplier (``at``) at each end."""
    unit = units[:-1]  # the columns count what the spec counts: steps, tokens or samples
    rows = [("phase", "period", f"first {unit}", f"last {unit}", units, "multiplier")]
    for name, period, first, last in segments(plan):
        m_first, m_last = at(first), at(last)
        span = f"{m_first:.6g}" if m_first == m_last else f"{m_first:.6g} -> {m_last:.6g}"
        rows.append((name, str(period), str(first), str(last), str(last - first + 1), span))
    done = plan.count_range[1]
    rows.append(("done", "-", str(done), "...", "-", f"{at(done):.6g}"))
    widths = [max(len(row[k]) for row in rows) for k in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )


class Pieces:
    """The run cut into phases for ``WSDSpec.multiplier`` on Python floats: ``pieces[k]`` holds for
    steps in ``[starts[k-1], starts[k])``: the constant value there (a constant stable phase, before
    the start, after the end), or the part of the formula that evaluates it (``_WARMUP``, or
    ``(name, Period)``). A C-level bisect replaces the formula's period lookup."""

    def __init__(self, plan: Resolved, ops: PythonBackend, segments: list[Segment]) -> None:
        self.plan, self.ops = plan, ops
        bare = plan._replace(rate_changes=())  # the batch rule's factor is applied in ``value``
        starts: list[int] = []
        pieces: list[Any] = [float(evaluate(plan.start_step, bare, ops))]  # before s0
        for name, index, first, _last in segments:
            starts.append(first)
            period = ops.period(index)
            if name == "stable" and plan.stable_power == 0.0:
                pieces.append(float(period.peak))
            else:
                pieces.append(_WARMUP if name == "warmup" else (name, period))
        end = plan.start_step + plan.ends[-1]
        starts.append(end)  # at and past the end: the final floor
        pieces.append(float(evaluate(end, bare, ops)))
        self.starts, self.pieces = tuple(starts), tuple(pieces)

    def value(self, step: int | float) -> float:
        """m at the spec's own count ``step`` (start_step included)."""
        piece = self.pieces[bisect.bisect_right(self.starts, step)]
        plan = self.plan
        if piece.__class__ is not float:
            u, ops = step - plan.start_step, self.ops
            if piece is _WARMUP:
                m = warmup_value(u, plan, ops)
            else:
                name, period = piece
                m = _PARTS[name](u, period, plan, ops)
            piece = float(ops.clip(m, plan.floor, plan.ceiling))
        if not plan.rate_changes:
            return piece
        # the batch rule's factor (docs/contract.md), at the spec's own step held in [s0, s0 + T]
        return piece * plan.rate_factor(min(max(step - plan.start_step, 0), plan.ends[-1]))
