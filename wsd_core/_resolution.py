"""A spec resolved to the numbers the backends evaluate (``Resolved``): its period ends, decay starts
and lengths, peaks and warmup, checked against each other (the checks no single field can make)."""

from __future__ import annotations

import logging
import math
from typing import cast

from wsd_core._clock import token_ramp
from wsd_core._fields import WSDFields, period_ends
from wsd_core._formula import Resolved

DEFAULT_DECAY_RATIO = 0.1
_log = logging.getLogger("wsd_core")


def resolve_fields(fields: WSDFields) -> Resolved:
    """The numbers a spec of ``fields`` evaluates to (local steps: ``start_step`` not added), checked."""
    plan = _resolve(fields)
    _check_decays_fall(plan)
    return plan


def _check_decays_fall(plan: Resolved) -> None:
    """With a power stable phase, each decay starts where the phase has come to: it must not be below
    the floor (the decay would rise; OLMo-core's PowerLR refuses it too)."""
    if plan.stable_power == 0.0:
        return
    for i, (top, d, b) in enumerate(
        zip(plan.period_columns()["decay_from"], plan.decay_lengths, plan.decay_starts, strict=True)
    ):
        if d > 0 and top < plan.min_ratio:
            raise ValueError(
                f"min_ratio={plan.min_ratio} is above the value the stable phase has come to where period "
                f"{i}'s decay starts ({top:.6g} at step {b}): the decay would rise; give a lower "
                "min_ratio, a stable_power nearer 0 or a larger stable_scale"
            )


def _resolve(fields: WSDFields) -> Resolved:
    ends = period_ends(fields["checkpoints"], fields["total_steps"])
    if fields["warmup_steps"] > ends[0]:
        raise ValueError(
            f"warmup_steps must be <= the first period end ({ends[0]}), got {fields['warmup_steps']}"
        )
    lengths = []
    previous = 0
    per_period = fields["decay_steps"] if isinstance(fields["decay_steps"], tuple) else None
    if per_period is not None and len(per_period) != len(ends):
        raise ValueError(
            f"decay_steps must give one length per period: {len(ends)} periods (ends {list(ends)}), "
            f"got {len(per_period)} lengths {list(per_period)}"
        )
    for i, end in enumerate(ends):
        period = end - previous
        if fields["decay_steps"] is not None:
            decay = per_period[i] if per_period is not None else cast(int, fields["decay_steps"])
            if decay > period:
                raise ValueError(
                    f"decay_steps must be <= every period's length; got {decay}, but period {i} "
                    f"(steps {previous}..{end - 1}) has {period} steps"
                )
        else:
            rho = DEFAULT_DECAY_RATIO if fields["decay_ratio"] is None else fields["decay_ratio"]
            decay = math.floor(rho * period)  # in float64, as the contract specifies
        lengths.append(decay)
        previous = end
    peaks = fields["period_peaks"]
    if peaks is not None and len(peaks) != len(ends):
        raise ValueError(
            f"period_peaks must give one peak per period: {len(ends)} periods (ends {list(ends)}), "
            f"got {len(peaks)} peaks {list(peaks)}"
        )
    for i in range(1, len(ends)):
        if fields["rewarmup_steps"] > ends[i] - ends[i - 1]:
            raise ValueError(
                f"rewarmup_steps must be <= the length of every period after the first; got "
                f"{fields['rewarmup_steps']}, but period {i} (steps {ends[i - 1]}..{ends[i] - 1}) has "
                f"{ends[i] - ends[i - 1]} steps"
            )
    return Resolved(
        start_step=fields["start_step"],
        warmup_steps=fields["warmup_steps"],
        init_ratio=fields["init_ratio"],
        warmup_shape=fields["warmup_shape"],
        decay_shape=fields["decay_shape"],
        min_ratio=fields["min_ratio"],
        ends=ends,
        decay_starts=tuple(e - d for e, d in zip(ends, lengths, strict=True)),
        decay_lengths=tuple(lengths),
        peaks=() if peaks is None else tuple(peaks),
        rewarmup_steps=fields["rewarmup_steps"],
        rewarmup_shape=fields["rewarmup_shape"],
        stable_power=fields["stable_power"],
        stable_scale=fields["stable_scale"] or max(fields["warmup_steps"], 1),
        decay_power=fields["decay_power"],
        rate_changes=_rate_changes(fields),
    )


def _rate_changes(fields: WSDFields) -> tuple[tuple[int, float], ...]:
    """Where the batch rule's factor changes, in local units (C(from_step) - s0), and to what:
    ``(batch / first batch) ** e`` from each ramp step on."""
    e = fields["rate_batch_exponent"]
    if e == 0.0:
        return ()
    ramp = token_ramp(fields["tokens_per_step"])
    first = ramp.rates[0]
    return tuple(
        (since - fields["start_step"], (rate / first) ** e)
        for since, rate in zip(ramp.consumed_at[1:], ramp.rates[1:], strict=True)
    )


def warn_if_rarely_meant(plan: Resolved) -> None:
    """Valid specs that are rarely meant, said once at construction."""
    if 0 < plan.warmup_steps >= plan.decay_starts[0]:
        _log.warning(
            "warmup_steps=%d leaves no stable phase before the first decay (it starts at step %d); "
            "valid, but rarely meant",
            plan.warmup_steps,
            plan.decay_starts[0],
        )
    if plan.rewarms and any(
        plan.rewarmup_steps >= b - start
        for start, b, d in zip(plan.ends[:-1], plan.decay_starts[1:], plan.decay_lengths[1:], strict=True)
        if d > 0
    ):
        _log.warning(
            "rewarmup_steps=%d leaves a period with no stable phase before its decay; valid, but "
            "rarely meant",
            plan.rewarmup_steps,
        )
