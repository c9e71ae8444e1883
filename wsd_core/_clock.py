"""The clock of a spec counted in tokens or samples: the units a run has consumed before each update,
and everything that turns an update count into them, written once.

A spec with ``units="tokens"`` (or ``"samples"``) counts its lengths in those units, and a schedule
evaluates it at ``C(s)``, the number of units consumed before update ``s``. ``C`` comes from
``tokens_per_step``: a constant, or a ramp of ``(from_step, tokens_per_step)`` pairs (a batch-size
warmup, as Megatron-LM's ``rampup_batch_size``). It is written once here: exactly, in integers, on
Python numbers and on every array backend. A spec in units without a clock describes a curve in
units only; ``require_clock`` is the one refusal of it, wherever an update count must be turned.
"""

from __future__ import annotations

import bisect
import numbers
from typing import Any, NamedTuple, Protocol

from wsd_core._validation import (
    MAX_STEP,
    check_real,
    check_steps,
    check_strictly_increasing,
    is_bool,
    is_sequence,
)

UNITS = ("steps", "tokens", "samples")


class Counted(Protocol):
    """What of a spec its clock needs (``WSDSpec`` is one): what it counts, its clock, its range."""

    @property
    def units(self) -> str: ...

    @property
    def clock(self) -> TokenRamp | None: ...

    @property
    def start_step(self) -> int: ...

    @property
    def end_step(self) -> int: ...


class TokenRamp(NamedTuple):
    """``tokens_per_step``, validated: from step ``starts[j]`` on, each update consumes ``rates[j]``
    units (``starts[0] == 0``); ``consumed_at[j]`` is C(starts[j]), the units consumed before it."""

    starts: tuple[int, ...]
    rates: tuple[int, ...]
    consumed_at: tuple[int, ...]

    def consumed(self, step: int) -> int:
        """C(step): the units consumed by updates ``0 .. step - 1`` (0 for ``step <= 0``), exactly."""
        j = bisect.bisect_right(self.starts, step) - 1  # -1 before step 0 (starts[0] == 0)
        return 0 if j < 0 else self.consumed_at[j] + (step - self.starts[j]) * self.rates[j]

    def first_step_reaching(self, units: int) -> int:
        """The smallest step s with C(s) >= units."""
        if units <= 0:
            return 0
        j = bisect.bisect_right(self.consumed_at, units) - 1
        return self.starts[j] + -(-(units - self.consumed_at[j]) // self.rates[j])  # ceil division

    def last_step_within(self, units: int) -> int:
        """The largest step s with C(s) <= units (units >= 0)."""
        j = bisect.bisect_right(self.consumed_at, units) - 1
        return self.starts[j] + (units - self.consumed_at[j]) // self.rates[j]

    def to_list(self) -> list[list[int]]:
        """The ramp as ``[[from_step, tokens_per_step], ...]``, for a saved state."""
        return [[s, r] for s, r in zip(self.starts, self.rates, strict=True)]


def token_ramp(value: Any) -> TokenRamp:
    """Validates ``tokens_per_step``: an int >= 1, or a sequence of ``(from_step, tokens_per_step)``
    pairs whose steps start at 0 and increase strictly, each rate an int >= 1."""
    if isinstance(value, TokenRamp):
        return value
    if isinstance(value, numbers.Integral) and not is_bool(value):
        return TokenRamp((0,), (check_steps("tokens_per_step", value, minimum=1),), (0,))
    if not is_sequence(value):
        raise TypeError(
            "tokens_per_step must be an int >= 1 or a sequence of (from_step, tokens_per_step) pairs, "
            f"got {value!r} (type {type(value).__name__})"
        )
    starts: list[int] = []
    rates: list[int] = []
    for i, pair in enumerate(value):
        if not is_sequence(pair) or len(pair := tuple(pair)) != 2:
            raise TypeError(f"tokens_per_step[{i}] must be a (from_step, tokens_per_step) pair, got {pair!r}")
        step, rate = pair
        starts.append(check_steps(f"tokens_per_step[{i}][0] (from_step)", step))
        rates.append(check_steps(f"tokens_per_step[{i}][1] (tokens_per_step)", rate, minimum=1))
    if not starts:
        raise ValueError("tokens_per_step must not be empty")
    if starts[0] != 0:
        raise ValueError(f"tokens_per_step's first pair must start at step 0, got {starts[0]}")
    check_strictly_increasing("tokens_per_step's from_steps", starts, lambda i: f"tokens_per_step[{i}][0]")
    consumed = [0]
    for j in range(1, len(starts)):
        consumed.append(consumed[-1] + (starts[j] - starts[j - 1]) * rates[j - 1])
    return TokenRamp(tuple(starts), tuple(rates), tuple(consumed))


def below(ramp: TokenRamp, step: int) -> TokenRamp:
    """The segments of ``ramp`` that start before ``step`` (the first one always): what an array
    backend needs for counts clamped to at most ``step``, without constants it never reaches."""
    keep = max(1, bisect.bisect_left(ramp.starts, step))
    return TokenRamp(ramp.starts[:keep], ramp.rates[:keep], ramp.consumed_at[:keep])


def check_clock(units: str, value: Any) -> int | tuple[tuple[int, int], ...] | None:
    """The ``tokens_per_step`` field of a spec counted in ``units``, in its stored form: None, an
    int (one constant rate, however it was given) or a tuple of ``(from_step, rate)`` pairs.

    A spec in steps refuses a clock (a step is a step); a spec in tokens or samples may leave it
    out for a curve read in its own units (``wsd table``), and then cannot be evaluated at an
    update count."""
    if value is None:
        return None
    if units == "steps":
        raise ValueError(
            f"tokens_per_step is for a spec counted in tokens or samples; this spec has units='steps', "
            f"got tokens_per_step={value!r}. Give WSDSpec(..., units='tokens') with its lengths in tokens."
        )
    ramp = token_ramp(value)
    if len(ramp.rates) == 1:
        return ramp.rates[0]
    return tuple(zip(ramp.starts, ramp.rates, strict=True))


def check_batch_rule(exponent: Any, tokens_per_step: Any) -> float:
    """``rate_batch_exponent`` checked: a finite e >= 0, and one that is not 0 only with a batch ramp
    (``tokens_per_step`` pairs: a constant batch has nothing for the rate to follow)."""
    e = check_real("rate_batch_exponent", exponent, minimum=0.0)
    if e != 0.0 and not isinstance(tokens_per_step, tuple):
        raise ValueError(
            f"rate_batch_exponent={e} scales the rate with a batch ramp: give tokens_per_step as "
            f"(from_step, tokens_per_step) pairs (a spec in tokens or samples), got {tokens_per_step!r}"
        )
    return e


def check_clock_range(ramp: TokenRamp, end: int, units: str) -> None:
    """Refuses a clock under which a count of the run is not an int64: the step that first reaches
    the run's end (``end`` units), and the units consumed there, must both be <= 2**63 - 1. Every
    count a schedule forms is clamped into that range, so this one check covers the whole run."""
    last = ramp.first_step_reaching(end)
    if last > MAX_STEP or ramp.consumed(last) > MAX_STEP:
        raise ValueError(
            f"tokens_per_step={ramp.to_list()} consumes {ramp.consumed(last)} {units} by update {last}, "
            f"the first to reach the run's end at {end} {units}: past 2**63 - 1, an int64 count. "
            f"Give a smaller tokens_per_step or a shorter run."
        )


def consumed(step: Any, ramp: TokenRamp, ops: Any) -> Any:
    """C(step) on any backend: ``sum_j rate_j * clip(step - from_j, 0, length_j)``, a static sum over
    the ramp's segments (no lookup); exact for integer steps, piecewise linear for real ones. ``step``
    must be >= 0 (the backends clamp counts first)."""
    total: Any = 0
    for j, (start, rate) in enumerate(zip(ramp.starts, ramp.rates, strict=True)):
        since = step - start
        if j + 1 < len(ramp.starts):
            part = ops.clip(since, 0, ramp.starts[j + 1] - start)
        else:
            part = ops.maximum(since, 0)
        total = total + part * rate
    return total


def units_at(step: Any, ramp: TokenRamp | None, ops: Any = None) -> Any:
    """The spec's own count at update count ``step``: the step itself for a spec in steps (no ramp),
    else C(step), on Python ints or, given a backend ``ops``, on arrays (``step >= 0`` there)."""
    if ramp is None:
        return step
    return ramp.consumed(step) if ops is None else consumed(step, ramp, ops)


def require_clock(spec: Counted, *, where: str, to_turn: str = "") -> TokenRamp | None:
    """The clock a schedule of ``spec`` evaluates through, or None for a spec counted in steps; a
    spec in tokens or samples without one is refused, naming the field to give and how to evaluate
    it in its own units instead (``to_turn``: what the clock was needed for). The one refusal of a
    missing clock."""
    if spec.units == "steps":
        return None
    clock = spec.clock
    if clock is None:
        purpose = f" to turn {to_turn}" if to_turn else ""
        raise ValueError(
            f"{where}: this spec counts {spec.units} (units={spec.units!r}) but has no clock{purpose}; "
            f"give it tokens_per_step= (the {spec.units} each update consumes: an int, or (from_step, "
            f"{spec.units}) pairs), e.g. dataclasses.replace(spec, tokens_per_step=...), or evaluate "
            f"it at a count of {spec.units} (multiplier(..., in_units=True))"
        )
    return clock


def step_range(spec: Counted, ramp: TokenRamp) -> tuple[int, int]:
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


def array_clock(spec: Counted, *, where: str) -> ArrayClock:
    """The clamp range and clock of ``spec`` for an array backend (``wsd_jax``, ``WSDDeviceLR``)."""
    ramp = require_clock(spec, where=where)
    if ramp is None:
        lo, hi = spec.start_step, spec.end_step  # the contract's clamp range (s0, s0 + T)
        return ArrayClock(lo, hi, None, hi)
    lo, hi = step_range(spec, ramp)
    used = below(ramp, hi)
    return ArrayClock(lo, hi, used, max(hi, ramp.consumed(hi), *used.rates, *used.starts))
