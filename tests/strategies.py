"""Hypothesis strategies that draw valid WSDSpec fields over every option of the contract."""

from __future__ import annotations

import os
from typing import Any

from hypothesis import strategies as st

DECAY_SHAPES = ["linear", "cosine", "1-sqrt", "inverse", "exponential", "geometric", "polynomial"]
WARMUP_SHAPES = ["linear", "cosine", "1-sqrt"]


def examples(n: int) -> int:
    """``n`` hypothesis examples, scaled by ``WSD_HYPOTHESIS_SCALE`` (default 1; at least 1).

    For a run on a lent GPU, where jax compiles a new GPU program for every drawn spec (hundreds of
    milliseconds each) and device time is short: ``.ci/gpu-check`` draws a quarter as many specs per
    GPU backend. The CPU suite always draws ``n``."""
    scale = float(os.environ.get("WSD_HYPOTHESIS_SCALE", "1"))
    if not scale > 0:
        raise ValueError(f"WSD_HYPOTHESIS_SCALE must be a number > 0, got {scale!r}")
    return max(1, round(n * scale))


ratios = st.one_of(
    st.sampled_from([0.0, 1.0, 0.5, 0.1]),
    st.floats(0.0, 1.0, allow_nan=False, allow_subnormal=False),
)


@st.composite
def spec_fields(draw: Any, max_total: int = 3000) -> dict[str, Any]:
    """A dict of valid WSDSpec fields (checkpoints explicit, geometric or None)."""
    total = draw(st.integers(1, max_total))
    kind = draw(st.sampled_from(["none", "explicit", "geometric"]))
    checkpoints: Any = None
    if kind == "explicit" and total >= 2:
        inner = draw(st.lists(st.integers(1, total - 1), max_size=6, unique=True))
        checkpoints = [*sorted(inner), total]
        ends = checkpoints
    elif kind == "geometric":
        k = draw(st.integers(1, min(6, total.bit_length())))
        checkpoints = k
        ends = [total >> (k - i) for i in range(1, k + 1)]
    else:
        ends = [total]
    lengths = [e - s for s, e in zip([0, *ends[:-1]], ends, strict=True)]
    decay_kind = draw(st.sampled_from(["steps", "per period", "ratio", "default"]))
    fields: dict[str, Any] = {"total_steps": total, "checkpoints": checkpoints}
    if decay_kind == "steps":
        fields["decay_steps"] = draw(st.integers(0, min(lengths)))
    elif decay_kind == "per period":
        fields["decay_steps"] = [draw(st.integers(0, length)) for length in lengths]
    elif decay_kind == "ratio":
        fields["decay_ratio"] = draw(ratios)
    fields["warmup_steps"] = draw(st.integers(0, ends[0]))
    fields["decay_shape"] = shape = draw(st.sampled_from(DECAY_SHAPES))
    fields["warmup_shape"] = draw(st.sampled_from(WARMUP_SHAPES))
    fields["init_ratio"] = draw(ratios)
    if shape in ("inverse", "geometric"):
        fields["min_ratio"] = draw(st.floats(1e-4, 1.0))
    else:
        fields["min_ratio"] = draw(ratios)
    if shape == "polynomial":
        fields["decay_power"] = draw(st.one_of(st.sampled_from([2.0, 0.5, 1.0, 3.0]), st.floats(0.1, 4.0)))
    fields["start_step"] = draw(st.sampled_from([0, 0, 1, 7, 1000]))
    if draw(st.booleans()):  # a peak per period (WSD-S), at or above the floor, also above 1
        r = fields["min_ratio"]
        peak = st.one_of(st.just(r), st.just(1.0), st.floats(r, 2.0, allow_subnormal=False))
        fields["period_peaks"] = draw(st.lists(peak.filter(lambda x: x > 0), min_size=len(ends),
                                               max_size=len(ends)))  # fmt: skip
    if len(ends) > 1 and draw(st.booleans()):
        fields["rewarmup_steps"] = draw(st.integers(0, min(lengths[1:])))
        fields["rewarmup_shape"] = draw(st.sampled_from(WARMUP_SHAPES))
    if draw(st.booleans()):  # a power stable phase (OLMo-core's PowerLR; -0.5: inverse square root)
        _power_stable(draw, fields)
    return fields


def _power_stable(draw: Any, fields: dict[str, Any]) -> None:
    """A stable power and scale, with the floor lowered below where the stable phase ends, so that
    every decay falls (the spec refuses one that would rise)."""
    b = draw(st.one_of(st.sampled_from([-0.5, -0.51, -1.0, -0.1]), st.floats(-2.0, -1e-3)))
    fields["stable_power"] = b
    scale = draw(st.one_of(st.none(), st.integers(1, 2000)))
    if scale is not None:
        fields["stable_scale"] = scale
    tau = scale or max(fields["warmup_steps"], 1)
    lowest = min(fields.get("period_peaks") or [1.0])
    fields["min_ratio"] *= min(
        1.0, lowest * ((fields["total_steps"] - fields["warmup_steps"]) / tau + 1) ** b
    )


def probe_steps(fields: dict[str, Any]) -> list[int]:
    """Every step of the run plus edges before and far after it."""
    s0, total = fields["start_step"], fields["total_steps"]
    return [-3, 0, *range(s0, s0 + total + 3), s0 + 10 * total, 2**31 - 1]
