"""Specs counted in tokens or samples: the units a run has consumed before each update.

A spec with ``units="tokens"`` (or ``"samples"``) counts its lengths in those units, and a schedule
evaluates it at ``C(s)``, the number of units consumed before update ``s``. ``C`` comes from
``tokens_per_step``: a constant, or a ramp of ``(from_step, tokens_per_step)`` pairs (a batch-size
warmup, as Megatron-LM's ``rampup_batch_size``). It is written once here: exactly, in integers, on
Python numbers and on every array backend.
"""

from __future__ import annotations

import bisect
import numbers
from typing import TYPE_CHECKING, Any, NamedTuple

from wsd_core import _validation as v

if TYPE_CHECKING:
    from wsd_core._spec import WSDSpec

UNITS = ("steps", "tokens", "samples")


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
    if isinstance(value, numbers.Integral) and not v.is_bool(value):
        return TokenRamp((0,), (v.check_int("tokens_per_step", value, minimum=1),), (0,))
    if not v.is_sequence(value):
        raise TypeError(
            "tokens_per_step must be an int >= 1 or a sequence of (from_step, tokens_per_step) pairs, "
            f"got {value!r} (type {type(value).__name__})"
        )
    starts: list[int] = []
    rates: list[int] = []
    for i, pair in enumerate(value):
        if not v.is_sequence(pair) or len(pair := tuple(pair)) != 2:
            raise TypeError(f"tokens_per_step[{i}] must be a (from_step, tokens_per_step) pair, got {pair!r}")
        step, rate = pair
        starts.append(v.check_steps(f"tokens_per_step[{i}][0] (from_step)", step))
        rates.append(v.check_int(f"tokens_per_step[{i}][1] (tokens_per_step)", rate, minimum=1))
    if not starts:
        raise ValueError("tokens_per_step must not be empty")
    if starts[0] != 0:
        raise ValueError(f"tokens_per_step's first pair must start at step 0, got {starts[0]}")
    v.check_strictly_increasing("tokens_per_step's from_steps", starts, lambda i: f"tokens_per_step[{i}][0]")
    consumed = [0]
    for j in range(1, len(starts)):
        consumed.append(consumed[-1] + (starts[j] - starts[j - 1]) * rates[j - 1])
    return TokenRamp(tuple(starts), tuple(rates), tuple(consumed))


def check_units(spec: WSDSpec, tokens_per_step: Any, *, where: str) -> TokenRamp | None:
    """The ramp a schedule of ``spec`` evaluates through, or None for a spec counted in steps.

    A spec in tokens or samples needs ``tokens_per_step``; a spec in steps refuses it (it would
    mean nothing: a step is a step)."""
    if spec.units == "steps":
        if tokens_per_step is not None:
            raise ValueError(
                f"{where}: tokens_per_step is for a spec counted in tokens or samples; this spec has "
                "units='steps'. Give WSDSpec(..., units='tokens') with its lengths in tokens."
            )
        return None
    if tokens_per_step is None:
        raise ValueError(
            f"{where}: this spec counts {spec.units} (units={spec.units!r}); give tokens_per_step= "
            f"(the {spec.units} each update consumes: an int, or (from_step, {spec.units}) pairs)"
        )
    return token_ramp(tokens_per_step)


def step_range(spec: WSDSpec, ramp: TokenRamp) -> tuple[int, int]:
    """(lo, hi) in steps: every step below lo has consumed at most s0 units (m is constant there) and
    every step above hi at least s0 + T (constant again), so a count may be clamped into it exactly."""
    s0, end = spec.start_step, spec.end_step
    return ramp.last_step_within(s0), ramp.first_step_reaching(end)


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


class InUnits:
    """``f(C(step))`` for a Python-number function ``f`` of a spec's units (``WSDSpec.multiplier``):
    data, not a closure, so a ``LambdaLR`` holding it pickles."""

    def __init__(self, function: Any, ramp: TokenRamp) -> None:
        self.function = function
        self.ramp = ramp

    def __call__(self, step: int) -> float:
        return float(self.function(self.ramp.consumed(step)))
