"""OLMo-core's schedulers as spec fields (``olmo_core.optim.scheduler``, 3.0): ``WSD``, ``WSDS``,
``PowerLR`` and ``ComposableScheduler`` (``wsd_core.presets.from_olmo_core`` documents each). Each
function returns the spec's fields as ``(value, where it comes from in OLMo-core's terms)``."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any, TypedDict

from wsd_core._validation import check_choice, check_ratio, check_real, check_steps, is_sequence

Fields = dict[str, tuple[Any, str]]
NAMES = ("WSD", "WSDS", "PowerLR", "ComposableScheduler")


def spec_fields(name: str, t_max: int, lr: float, given: Mapping[str, Any]) -> Fields:
    """The spec's fields of OLMo-core's scheduler ``name`` with its fields ``given``."""
    valid = _OLMO_CORE_FIELDS[name]
    unknown = sorted(set(given) - set(valid))
    if unknown:
        raise TypeError(f"OLMo-core's {name} has no fields {unknown}; its fields are {list(valid)}")
    f: dict[str, Any] = {**valid, **given}
    units = check_choice("units", str(f["units"]), ("steps", "tokens"))  # its StrEnum, or a str
    if name == "ComposableScheduler":
        return {**_composable(f, lr), "units": (units, "units")}
    if (f["warmup"] is None) == (f["warmup_fraction"] is None):
        raise ValueError(f"give exactly one of warmup and warmup_fraction (OLMo-core's {name} requires it)")
    if f["decay"] is not None and f["decay_fraction"] is not None and "decay_fraction" in given:
        raise ValueError(f"give at most one of decay and decay_fraction, got both ({name})")
    if f["decay"] is not None:
        f["decay_fraction"] = None  # the default of 0.1 yields to an explicit decay
    warmup_min = check_real("warmup_min_lr", f["warmup_min_lr"], minimum=0.0)
    decay_min = check_real("decay_min_lr", f["decay_min_lr"], minimum=0.0)
    if name == "WSDS":
        fields = _wsds(f, lr, warmup_min, decay_min)
    else:
        fields = _wsd(f, t_max, lr, warmup_min, decay_min)
        if name == "PowerLR":
            fields = _power(f, fields, lr, decay_min)
    return {**fields, "units": (units, "units")}


class OLMoCoreFields(TypedDict, total=False):
    """OLMo-core's ``WSD``, ``WSDS``, ``PowerLR`` and ``ComposableScheduler`` fields, as OLMo-core
    spells them (``from_olmo_core``)."""

    units: str
    warmup: int | None
    warmup_fraction: float | None
    decay: int | None
    decay_fraction: float | None
    warmup_min_lr: float
    decay_min_lr: float
    period_lengths: Sequence[int] | None
    period_lr_multipliers: Sequence[float] | None
    b: float
    stages: Sequence[Any]
    override_decay: Any


_OLMO_CORE_COMMON: dict[str, Any] = {
    "units": "steps",
    "warmup": None,
    "warmup_fraction": None,
    "decay": None,
    "warmup_min_lr": 0.0,
    "decay_min_lr": 0.0,
}
_OLMO_CORE_FIELDS: dict[str, dict[str, Any]] = {
    "WSD": {**_OLMO_CORE_COMMON, "decay_fraction": 0.1},
    "PowerLR": {**_OLMO_CORE_COMMON, "decay_fraction": 0.1, "b": -0.51},
    "ComposableScheduler": {"units": "steps", "stages": None, "override_decay": None},
    "WSDS": {
        **_OLMO_CORE_COMMON,
        "decay_fraction": None,
        "period_lengths": None,
        "period_lr_multipliers": None,
    },
}


def _length(name: str, value: Any, fraction_name: str, fraction: Any, of: int) -> int:
    """A length given as steps, or as a fraction of ``of`` rounded with Python's ``round``."""
    if value is not None:
        return check_steps(name, value, minimum=0)
    return round(of * check_ratio(fraction_name, fraction))


def _check_below(name: str, value: float, peak: float, what: str) -> None:
    # OLMo-core asserts 0 <= min_lr < the rate it warms up or decays to/from
    if not value < peak:
        raise ValueError(f"{name} must be < {what} ({peak!r}), as OLMo-core asserts, got {value!r}")


def _wsd(
    f: dict[str, Any], t_max: int, lr: float, warmup_min: float, decay_min: float
) -> dict[str, tuple[Any, str]]:
    warmup = _length("warmup", f["warmup"], "warmup_fraction", f["warmup_fraction"], t_max)
    if f["decay"] is None and f["decay_fraction"] is None:
        raise ValueError("give decay or decay_fraction (OLMo-core's WSD requires one)")
    decay = _length("decay", f["decay"], "decay_fraction", f["decay_fraction"], t_max)
    if decay > t_max:
        raise ValueError(f"decay ({decay}) must be <= t_max ({t_max})")
    if warmup > t_max - decay:
        raise ValueError(
            f"warmup ({warmup}) must be <= t_max - decay ({t_max - decay}): OLMo-core's warmup reaches its "
            "peak at its last step even inside the decay, which the contract cannot express"
        )
    _check_below("warmup_min_lr", warmup_min, lr, "initial_lr")
    _check_below("decay_min_lr", decay_min, lr, "initial_lr")
    return dict(
        total_steps=(t_max, "t_max"),
        warmup_steps=(warmup, "warmup (or warmup_fraction)"),
        init_ratio=(warmup_min / lr, "warmup_min_lr / initial_lr"),
        decay_steps=(decay, "decay (or decay_fraction)"),
        decay_shape=("linear", "OLMo-core's linear decay"),
        min_ratio=(decay_min / lr, "decay_min_lr / initial_lr"),
    )


def _wsds(f: dict[str, Any], lr: float, warmup_min: float, decay_min: float) -> dict[str, tuple[Any, str]]:
    raw = f["period_lengths"]
    if not is_sequence(raw) or not list(raw):
        raise ValueError(f"period_lengths must be a non-empty list of period lengths, got {raw!r}")
    lengths = [check_steps(f"period_lengths[{i}]", x, minimum=1) for i, x in enumerate(raw)]
    multipliers = f["period_lr_multipliers"]
    if multipliers is not None:
        multipliers = [
            check_real(f"period_lr_multipliers[{i}]", m, positive=True) for i, m in enumerate(multipliers)
        ]
        if len(multipliers) != len(lengths):
            raise ValueError(
                f"period_lr_multipliers must have one entry per period ({len(lengths)}), "
                f"got {len(multipliers)}"
            )
    if (f["decay"] is None) == (f["decay_fraction"] is None):
        raise ValueError("give exactly one of decay and decay_fraction (OLMo-core's WSDS requires it)")
    warmup = _length("warmup", f["warmup"], "warmup_fraction", f["warmup_fraction"], lengths[0])
    decays = [_length("decay", f["decay"], "decay_fraction", f["decay_fraction"], n) for n in lengths]
    if warmup + decays[0] > lengths[0]:
        raise ValueError(
            f"first period: warmup ({warmup}) + decay ({decays[0]}) exceeds its length ({lengths[0]})"
        )
    for i, (n, d) in enumerate(zip(lengths, decays, strict=True)):
        if d > n:
            raise ValueError(f"period {i}: decay ({d}) exceeds its length ({n})")
        if d == 0:
            raise ValueError(
                f"period {i} has no decay; OLMo-core's WSDS divides by zero at the end of such a period"
            )
    peaks = multipliers or [1.0] * len(lengths)
    _check_below("warmup_min_lr", warmup_min, lr * peaks[0], "the first period's peak")
    for i, m in enumerate(peaks):
        _check_below("decay_min_lr", decay_min, lr * m, f"period {i}'s peak")
    ends = list(itertools.accumulate(lengths))
    return dict(
        total_steps=(ends[-1], "the sum of period_lengths"),
        checkpoints=(ends if len(ends) > 1 else None, "period_lengths"),
        warmup_steps=(warmup, "warmup (or warmup_fraction)"),
        init_ratio=(warmup_min / lr, "warmup_min_lr / initial_lr"),
        decay_steps=(decays[0] if len(set(decays)) == 1 else decays, "decay (or decay_fraction)"),
        decay_shape=("linear", "OLMo-core's linear decay"),
        min_ratio=(decay_min / lr, "decay_min_lr / initial_lr"),
        period_peaks=(multipliers, "period_lr_multipliers"),
        rewarmup_steps=(1 if len(ends) > 1 else 0, "OLMo-core's floor at each WSDS period's end"),
    )


def _power(f: dict[str, Any], fields: Fields, lr: float, decay_min: float) -> Fields:
    """PowerLR: WSD's warmup and linear tail around ``initial_lr * (t / warmup) ** b`` (tau = W)."""
    b = check_real("b", f["b"])
    if b >= 0:
        raise ValueError(f"b must be negative (OLMo-core's PowerLR refuses b >= 0), got {b}")
    if fields["warmup_steps"][0] == 0:
        raise ValueError(
            "PowerLR needs warmup >= 1: OLMo-core divides the step by the warmup (t / warmup) ** b"
        )
    return {**fields, "stable_power": (b, "b")}


def _stage_value(stage: Any, name: str) -> Any:
    """A field of a ``ComposableSchedulerStage`` or ``OverrideDecay``, given as OLMo-core's object or
    as a mapping of its fields (e.g. from a YAML config)."""
    if isinstance(stage, Mapping):
        return stage.get(name)
    return getattr(stage, name, None)


def _rate(stage: Any, what: str, lr: float, label: str, *, default: float | None = None) -> float:
    """A stage's ``start`` or ``end`` rate: ``<what>_lr`` or ``<what>_lr_fraction`` of ``lr``."""
    value, fraction = _stage_value(stage, f"{what}_lr"), _stage_value(stage, f"{what}_lr_fraction")
    if value is not None and fraction is not None:
        raise ValueError(f"{label}: give at most one of {what}_lr and {what}_lr_fraction, got both")
    if value is not None:
        return check_real(f"{label}.{what}_lr", value, minimum=0.0)
    if fraction is not None:
        return lr * check_real(f"{label}.{what}_lr_fraction", fraction, minimum=0.0)
    if default is None:
        raise ValueError(f"{label}: give {what}_lr or {what}_lr_fraction (OLMo-core requires one)")
    return default


def _stages(raw: Any, lr: float) -> list[tuple[int, str, float, float]]:
    """(duration, shape, start rate, end rate) of each stage; a start defaults to the previous end."""
    if not is_sequence(raw) or not list(raw):
        raise ValueError(f"stages must be a non-empty list of ComposableSchedulerStage, got {raw!r:.80}")
    out, previous = [], lr
    for i, stage in enumerate(raw):
        label = f"stages[{i}]"
        duration = check_steps(f"{label}.duration", _stage_value(stage, "duration"), minimum=1)
        shape = check_choice(
            f"{label}.shape", str(_stage_value(stage, "shape") or "linear"), ("linear", "cosine")
        )
        start = _rate(stage, "start", lr, label, default=previous)
        previous = _rate(stage, "end", lr, label)
        out.append((duration, shape, start, previous))
    return out


def _composable(f: dict[str, Any], lr: float) -> Fields:
    """ComposableScheduler: stages that form a warmup to ``initial_lr`` (optional), stages at it, and a
    decay from it (optional, last); and an ``override_decay`` from a step at the peak (a branched
    cooldown in OLMo-core's terms). Any other layout has no WSD spec and is refused, naming the stage."""
    stages = _stages(f["stages"], lr)
    warmup = init = 0.0
    warmup_shape, kept = "linear", list(stages)
    if kept[0][2] != lr and kept[0][3] == lr:  # a first stage that rises to the peak: the warmup
        duration, warmup_shape, start, _ = kept.pop(0)
        if start > lr:
            raise ValueError(f"stages[0] falls from {start!r} to initial_lr: a warmup must rise to it")
        warmup, init = duration, start / lr
    decay, decay_shape, floor = 0, "linear", lr
    if kept and kept[-1][2] == lr and kept[-1][3] < lr:  # a last stage that falls from the peak
        decay, decay_shape, _, floor = kept.pop()
    for duration, _, start, end in kept:
        if start != lr or end != lr:
            i = stages.index((duration, _, start, end))
            raise ValueError(
                f"stages[{i}] goes from {start!r} to {end!r}: between the warmup and the last stage's decay "
                f"every stage must hold initial_lr ({lr!r}) for the curve to be a WSD one"
            )
    total = sum(s[0] for s in stages)
    fields: Fields = {
        "total_steps": (total, "the sum of the stages' durations"),
        "warmup_steps": (int(warmup), "the first stage's duration (a rise to initial_lr)"),
        "warmup_shape": (warmup_shape, "the first stage's shape"),
        "init_ratio": (init, "the first stage's start / initial_lr"),
        "decay_steps": (decay, "the last stage's duration (a fall from initial_lr)"),
        "decay_shape": (decay_shape, "the last stage's shape"),
        "min_ratio": (floor / lr, "the last stage's end / initial_lr"),
    }
    if f["override_decay"] is not None:
        fields.update(_override(f["override_decay"], lr, int(warmup), total - decay))
    return fields


def _override(override: Any, lr: float, warmup: int, decay_start: int) -> Fields:
    """OverrideDecay(start, duration, shape, end): from the main schedule's rate at ``start``, which
    must be its peak (after the warmup, before its own decay), down to ``end`` over ``duration``."""
    start = check_steps("override_decay.start", _stage_value(override, "start"), minimum=0)
    duration = check_steps("override_decay.duration", _stage_value(override, "duration"), minimum=1)
    shape = str(_stage_value(override, "shape") or "linear")
    shape = check_choice("override_decay.shape", shape, ("linear", "cosine"))
    end = _rate(override, "end", lr, "override_decay")
    if not warmup <= start <= decay_start:
        raise ValueError(
            f"override_decay.start={start} is not at the peak of the main stages (steps {warmup}.."
            f"{decay_start}): a WSD cooldown branches from the stable phase"
        )
    if end > lr:
        raise ValueError(f"override_decay ends at {end!r}, above initial_lr ({lr!r}): a decay must fall")
    return {
        "total_steps": (start + duration, "override_decay.start + override_decay.duration"),
        "decay_steps": (duration, "override_decay.duration"),
        "decay_shape": (shape, "override_decay.shape"),
        "min_ratio": (end / lr, "override_decay's end / initial_lr"),
    }
