"""A spec's update counts as an array backend evaluates them: the range a count may be clamped into
exactly, and the spec's clock, checked for the backend's integer type (``wsd_core.backend``)."""

from __future__ import annotations

from typing import NamedTuple

from wsd_core._spec import WSDSpec
from wsd_core._units import TokenRamp, below


def require_clock(spec: WSDSpec, *, where: str) -> TokenRamp | None:
    """The clock a schedule of ``spec`` evaluates through, or None for a spec counted in steps; a
    spec in tokens or samples without one is refused, naming the field to give."""
    if spec.units == "steps":
        return None
    clock = spec.clock
    if clock is None:
        raise ValueError(
            f"{where}: this spec counts {spec.units} (units={spec.units!r}) but has no clock; give it "
            f"tokens_per_step= (the {spec.units} each update consumes: an int, or (from_step, "
            f"{spec.units}) pairs), e.g. dataclasses.replace(spec, tokens_per_step=...)"
        )
    return clock


def step_range(spec: WSDSpec, ramp: TokenRamp) -> tuple[int, int]:
    """(lo, hi) in steps: every step below lo has consumed at most s0 units (m is constant there) and
    every step above hi at least s0 + T (constant again), so a count may be clamped into it exactly."""
    s0, end = spec.start_step, spec.end_step
    return ramp.last_step_within(s0), ramp.first_step_reaching(end)


class ArrayClock(NamedTuple):
    """What an array backend needs to evaluate a spec at update counts: clamp each count into
    ``[lo, hi]`` (exact: the value is constant outside), then form the units consumed through
    ``ramp`` (None for a spec in steps), whose segments past ``hi`` are dropped; ``largest`` is the
    largest integer that forms (the bound, the units consumed at ``hi``, or a rate constant)."""

    lo: int
    hi: int
    ramp: TokenRamp | None
    largest: int


def array_clock(spec: WSDSpec, *, where: str) -> ArrayClock:
    """The clamp range and clock of ``spec`` for an array backend (``wsd_jax``, ``WSDDeviceLR``)."""
    ramp = require_clock(spec, where=where)
    if ramp is None:
        lo, hi = spec.resolved().count_range
        return ArrayClock(lo, hi, None, hi)
    lo, hi = step_range(spec, ramp)
    used = below(ramp, hi)
    return ArrayClock(lo, hi, used, max(hi, ramp.consumed(hi), *used.rates, *used.starts))
