"""Specs that reproduce other libraries' WSD curves, from those libraries' own parameters.

Each function takes the peer's parameter names and defaults and returns the ``WSDSpec`` whose m(s)
equals the peer's factor at the same step, to float rounding (``docs/contract.md``, "The same curves
as the peers"). Where the peer's behaviour cannot be expressed by the contract, the function raises
and says why instead of returning an approximation.

Each field of a preset's spec is given with where it comes from in the peer's own parameters
(``_build``): an error about a field then names what the user gave, not a field they never wrote.

>>> from wsd_core.presets import from_torchtitan
>>> from_torchtitan(1000, warmup_steps=100, decay_ratio=0.2).decay_starts
(800,)
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from typing import Any, Unpack

from wsd_core import _levanter
from wsd_core._olmo_core import NAMES, OLMoCoreFields, spec_fields
from wsd_core._spec import WSDSpec
from wsd_core._validation import check_choice, check_int, check_ratio, check_real, check_steps

__all__ = [
    "from_levanter",
    "from_maxtext",
    "from_megatron",
    "from_olmo_core",
    "from_pytorch_accelerated",
    "from_torchtitan",
    "from_transformers",
]


def _build(preset: str, **fields: tuple[Any, str]) -> WSDSpec:
    """The spec of ``fields``, each given as ``(value, where the preset takes it from)``; an error
    building it is said in the preset's own terms."""
    values = {name: value for name, (value, _) in fields.items()}
    try:
        return WSDSpec(**values)
    except (TypeError, ValueError) as e:  # named in the preset's own parameters, not the spec's
        origins = {name: origin for name, (_, origin) in fields.items()}
        raise type(e)(_in_preset_terms(preset, values, origins, e)) from None


def _in_preset_terms(preset: str, values: dict[str, Any], origins: dict[str, str], error: Exception) -> str:
    """``error`` said in the preset's own terms: which of its parameters gave the field the error
    names, and the value it came to."""
    # the percentage hint of a ratio check is about a value the user typed, not one a preset computed
    message = re.sub(r" \(\w+ is a fraction: [^)]*\)", "", str(error))
    named = message.split(" ", 1)[0].split("[", 1)[0]  # the checks start with the field's name
    if named not in origins:
        return f"{preset}: {message}"
    given = f"{origins[named]} gives the spec's {named} = {values[named]!r}"
    return f"{preset}: {given}, which the contract refuses: {message}"


# --- transformers: get_wsd_schedule ---------------------------------------------------------------

_TRANSFORMERS_SHAPES = {"linear": "linear", "cosine": "cosine", "1-sqrt": "1-sqrt"}


# --- torchtitan: LRSchedulersContainer / build_lr_schedulers ------------------------------------

_TORCHTITAN_SHAPES = {"linear": "linear", "sqrt": "1-sqrt", "cosine": "cosine"}


def _torchtitan_legacy(
    run: int, warmup: int, decay_ratio: float | None, shape: str, min_lr_factor: float
) -> WSDSpec:
    decay = round(run * decay_ratio) if decay_ratio is not None else run - warmup
    if decay == 0:  # the legacy factor is 1 for ever when there is no decay
        spec_decay = 0
    elif decay + 1 > run:
        raise ValueError(
            f"the legacy torchtitan formula with warmup_steps={warmup} and {decay} decay steps "
            f"over {run} steps starts decaying before the first update (its factor at step 0 is "
            f"{1 - 1 / (decay + 1):.6g} of the way down); the contract cannot express that. Use a "
            "warmup or a shorter decay, or the current formula (legacy=False)."
        )
    else:
        spec_decay = decay + 1
    return _build(
        "from_torchtitan",
        total_steps=(run, "total_steps (or training_steps)"),
        warmup_steps=(warmup, "warmup_steps"),
        init_ratio=(1.0 / (warmup + 1), "1 / (warmup_steps + 1)"),
        decay_steps=(spec_decay, "round(decay_ratio * total_steps) + 1"),
        decay_shape=(shape, "decay_type"),
        min_ratio=(min_lr_factor, "min_lr_factor"),
    )


# --- pytorch_accelerated: WSDLrScheduler ----------------------------------------------------------


def pytorch_accelerated_checkpoints(total_steps: int, num_checkpoints: int) -> list[int]:
    """pytorch_accelerated's ``estimate_checkpoint_steps`` as it computes them.

    Its documentation promises ends T >> (K - i); its code starts at ``T // 4`` and doubles, stopping
    at T, so it can end before T (K = 2) or give fewer than K ends (K >= 4).
    """
    if num_checkpoints == 1:
        return [total_steps]
    first, ends = total_steps // 4, []
    if first == 0:
        return [0]  # every end would be 0 (its loop never reaches total_steps): refused by the caller
    for i in range(num_checkpoints):  # ends after at most total_steps.bit_length() doublings
        ends.append(min(first * 2**i, total_steps))
        if ends[-1] == total_steps:
            break
    return ends


# --- Megatron-LM: OptimizerParamScheduler with lr_decay_style="WSD" --------------------------------

_MEGATRON_SHAPES = {"linear": "linear", "cosine": "cosine", "exponential": "exponential",
                    "minus_sqrt": "1-sqrt"}  # fmt: skip


def from_transformers(
    num_warmup_steps: int,
    num_decay_steps: int,
    num_training_steps: int | None = None,
    num_stable_steps: int | None = None,
    warmup_type: str = "linear",
    decay_type: str = "cosine",
    min_lr_ratio: float = 0.0,
    num_cycles: float = 0.5,
) -> WSDSpec:
    """The curve of ``transformers.get_wsd_schedule`` with the same arguments.

    transformers warms up from ``min_lr_ratio`` and decays to it, so both ``init_ratio`` and
    ``min_ratio`` are ``min_lr_ratio``; every ``warmup_type`` (``1-sqrt`` included) and ``decay_type``
    has its shape. Refused: ``num_cycles`` other than 0.5 (a cosine that turns back up is no WSD
    decay) and a warmup longer than the run. Past the end both give ``min_lr_ratio``, except with
    ``num_decay_steps == 0``, where transformers drops to ``min_lr_ratio`` at the last step and the
    contract stays at the peak.

    Examples:
      >>> from_transformers(100, 200, num_training_steps=1000).decay_starts
      (800,)
    """
    warmup = check_steps("num_warmup_steps", num_warmup_steps, minimum=0)
    decay = check_steps("num_decay_steps", num_decay_steps, minimum=0)
    if check_real("num_cycles", num_cycles) != 0.5:
        raise ValueError(
            f"num_cycles must be 0.5 (a cosine from the peak to min_lr_ratio), got {num_cycles}; "
            "other values make the cosine turn back up, which is not a WSD decay"
        )
    check_choice("warmup_type", warmup_type, ("linear", "cosine", "1-sqrt"))
    check_choice("decay_type", decay_type, _TRANSFORMERS_SHAPES)
    if num_training_steps is None and num_stable_steps is None:
        raise ValueError("Either num_training_steps or num_stable_steps must be specified.")
    if num_training_steps is not None and num_stable_steps is not None:
        warnings.warn(
            "Both num_training_steps and num_stable_steps are specified. num_stable_steps will be used.",
            UserWarning,
            stacklevel=4,
        )
    if num_stable_steps is None:
        total = check_steps("num_training_steps", num_training_steps, minimum=1)
        stable = total - warmup - decay
    else:
        stable = check_int("num_stable_steps", num_stable_steps)
        total = warmup + stable + decay
    if decay > total:
        raise ValueError(
            f"num_decay_steps={decay} is longer than the whole run ({total} steps): transformers would "
            "start decaying before the first update, which the contract cannot express"
        )
    if warmup > total:
        raise ValueError(
            f"num_warmup_steps={warmup} is longer than the whole run ({total} steps = warmup + stable "
            "+ decay); the contract needs the warmup to fit in the run"
        )
    return _build(
        "from_transformers",
        total_steps=(total, "num_training_steps (or num_warmup_steps + num_stable_steps + num_decay_steps)"),
        warmup_steps=(warmup, "num_warmup_steps"),
        decay_steps=(decay, "num_decay_steps"),
        warmup_shape=(warmup_type, "warmup_type"),
        decay_shape=(_TRANSFORMERS_SHAPES[decay_type], "decay_type"),
        init_ratio=(min_lr_ratio, "min_lr_ratio"),
        min_ratio=(min_lr_ratio, "min_lr_ratio"),
    )


def from_torchtitan(
    training_steps: int,
    warmup_steps: int = 200,
    decay_ratio: float | None = None,
    decay_type: str = "linear",
    min_lr_factor: float = 0.0,
    total_steps: int | None = None,
    legacy: bool = False,
) -> WSDSpec:
    """The curve of torchtitan's ``linear_warmup_stable_decay`` for the same config.

    ``total_steps`` overrides ``training_steps`` as torchtitan's ``lr_scheduler.total_steps`` does.
    The current torchtitan clamps the warmup to the run and the decay to what the warmup leaves,
    warning (here with ``warnings.warn``) as it does. Its factor at step s is ``(s + 1) / W`` during
    warmup, so the spec has ``warmup_steps = W - 1`` and ``init_ratio = 1 / W``.

    ``legacy=True`` gives the older torchtitan formula (warmup ``(s + 1) / (W + 1)``, decay over
    ``D + 1`` steps, no clamping). Past the end of the run the current torchtitan's factor goes on
    falling (negative for linear decay); the contract holds ``min_lr_factor``.

    Examples:
      >>> spec = from_torchtitan(1000, warmup_steps=100, decay_ratio=0.2)
      >>> spec.multiplier(0), spec.multiplier(99), spec.decay_starts
      (0.01, 1.0, (800,))
    """
    training_steps = check_steps("training_steps", training_steps, minimum=1)
    run = training_steps if total_steps is None else check_steps("total_steps", total_steps, minimum=1)
    warmup = check_steps("warmup_steps", warmup_steps, minimum=0)
    check_choice("decay_type", decay_type, _TORCHTITAN_SHAPES)
    shape = _TORCHTITAN_SHAPES[decay_type]
    if decay_ratio is not None:
        decay_ratio = check_ratio("decay_ratio", decay_ratio)
    if legacy:
        return _torchtitan_legacy(run, warmup, decay_ratio, shape, min_lr_factor)
    if warmup > run:
        warnings.warn(
            f"Warmup steps ({warmup}) exceed total steps ({run}). Adjusting warmup steps to {run}.",
            UserWarning,
            stacklevel=4,
        )
        warmup = run
    if decay_ratio is not None:
        decay = round(run * decay_ratio)
        if warmup + decay > run:
            warnings.warn(
                f"Warmup ({warmup}) + decay ({decay}) steps exceed total steps ({run}). "
                f"Adjusting decay steps to {run - warmup}.",
                UserWarning,
                stacklevel=4,
            )
            decay = run - warmup
    else:
        decay = run - warmup
    # (s + 1) / W for s < W equals a + (1 - a) s / (W - 1) with a = 1 / W; W <= 1 is no warmup.
    return _build(
        "from_torchtitan",
        total_steps=(run, "total_steps (or training_steps)"),
        warmup_steps=(max(warmup - 1, 0), "warmup_steps - 1"),
        init_ratio=(1.0 / warmup if warmup >= 2 else 0.0, "1 / warmup_steps"),
        decay_steps=(decay, "round(decay_ratio * total_steps)"),
        decay_shape=(shape, "decay_type"),
        min_ratio=(min_lr_factor, "min_lr_factor"),
    )


def from_pytorch_accelerated(
    total_steps: int | None = None,
    num_epochs: int | None = None,
    num_update_steps_per_epoch: int | None = None,
    num_warmup_steps: int | None = 0,
    decay_phase_ratio: float = 0.1,
    lr_min: float = 1e-6,
    warmup_starting_lr: float = 1e-6,
    use_inverse_sqrt_decay: bool = True,
    num_checkpoints: int = 1,
    *,
    base_lr: float,
) -> WSDSpec:
    """The curve of pytorch_accelerated's ``WSDLrScheduler.get_updated_values(n)``.

    ``base_lr`` is the optimizer's learning rate: ``warmup_starting_lr`` is absolute there and a
    ratio here. The checkpoints are its own ``estimate_checkpoint_steps`` (not the geometric ends its
    documentation describes), and the spec's ``total_steps`` is its last checkpoint, after which it
    holds ``lr_min`` as the contract does. Note the decay names: ``use_inverse_sqrt_decay=True`` is
    its ``1 - sqrt`` decay, ``False`` its inverse-proportional one.

    Its own stepping applies ``get_updated_values(n - 1)`` to update ``n`` and the full base rate to
    the very first update; the spec follows ``get_updated_values`` and the contract's convention.

    Examples:
      >>> from_pytorch_accelerated(200_000, num_checkpoints=3, base_lr=3e-4).period_ends
      (50000, 100000, 200000)
    """
    if num_epochs is not None and num_update_steps_per_epoch is not None and total_steps is not None:
        raise ValueError("Only num_epochs and num_update_steps_per_epoch, or total_steps should be provided")
    if num_epochs is not None and num_update_steps_per_epoch is not None:
        total_steps = check_steps("num_epochs", num_epochs, minimum=1) * check_int(
            "num_update_steps_per_epoch", num_update_steps_per_epoch, minimum=1
        )
    if total_steps is None:
        raise ValueError("give total_steps, or num_epochs and num_update_steps_per_epoch")
    total_steps = check_steps("total_steps", total_steps, minimum=1)
    count = check_steps("num_checkpoints", num_checkpoints, minimum=1)
    base = check_real("base_lr", base_lr)
    if base <= 0:
        raise ValueError(f"base_lr must be > 0, got {base}")
    warmup = int(0.01 * total_steps) if num_warmup_steps is None else num_warmup_steps
    ends = pytorch_accelerated_checkpoints(total_steps, count)
    if ends[0] < 1:
        raise ValueError(
            f"pytorch_accelerated places its first checkpoint at total_steps // 4 = {ends[0]} for "
            f"total_steps={total_steps} and num_checkpoints={count}; the contract needs it >= 1"
        )
    return _build(
        "from_pytorch_accelerated",
        total_steps=(ends[-1], "total_steps (or num_epochs * num_update_steps_per_epoch)"),
        checkpoints=(ends if len(ends) > 1 else None, "num_checkpoints"),
        warmup_steps=(warmup, "num_warmup_steps"),
        init_ratio=(
            check_real("warmup_starting_lr", warmup_starting_lr) / base,
            "warmup_starting_lr / base_lr",
        ),
        decay_ratio=(decay_phase_ratio, "decay_phase_ratio"),
        decay_shape=("1-sqrt" if use_inverse_sqrt_decay else "inverse", "use_inverse_sqrt_decay"),
        min_ratio=(lr_min, "lr_min"),
    )


def from_megatron(
    max_lr: float,
    lr_warmup_steps: int,
    lr_decay_steps: int,
    wsd_decay_steps: int,
    lr_wsd_decay_style: str = "exponential",
    min_lr: float = 0.0,
    init_lr: float = 0.0,
    lr_decay_style: str = "WSD",
) -> WSDSpec:
    """The curve of Megatron-LM's ``OptimizerParamScheduler`` with ``lr_decay_style='WSD'``.

    Steps are counted as Megatron counts them (its ``num_steps``; iterations or samples, as the job
    is configured). ``min_lr`` and ``init_lr`` are absolute, hence ``max_lr``; the schedule's rate is
    ``max_lr * m(s)``. Megatron's warmup wins up to and including step ``lr_warmup_steps``, so the
    warmup must end before the anneal starts (``lr_warmup_steps <= lr_decay_steps - wsd_decay_steps``).

    Examples:
      >>> from_megatron(3e-4, 100, 10_000, 2_000, min_lr=3e-5).decay_starts
      (8000,)
    """
    if lr_decay_style != "WSD":
        raise ValueError(f"lr_decay_style must be 'WSD' for a WSD schedule, got {lr_decay_style!r}")
    peak = check_real("max_lr", max_lr)
    if peak <= 0:
        raise ValueError(f"max_lr must be > 0, got {peak}")
    total = check_steps("lr_decay_steps", lr_decay_steps, minimum=1)
    warmup = check_steps("lr_warmup_steps", lr_warmup_steps, minimum=0)
    decay = check_steps("wsd_decay_steps", wsd_decay_steps, minimum=0)
    check_choice("lr_wsd_decay_style", lr_wsd_decay_style, _MEGATRON_SHAPES)
    if decay > total:
        raise ValueError(f"wsd_decay_steps must be <= lr_decay_steps={total}, got {decay}")
    if warmup > total - decay:
        raise ValueError(
            f"lr_warmup_steps={warmup} must be <= lr_decay_steps - wsd_decay_steps = {total - decay}: "
            "Megatron's warmup overrides the anneal up to its last step, which the contract's "
            "'warmup wins' reproduces only when the two do not overlap"
        )
    for name, value in (("min_lr", min_lr), ("init_lr", init_lr)):
        value = check_real(name, value)
        if not 0 <= value <= peak:
            raise ValueError(f"{name} must satisfy 0 <= {name} <= max_lr={peak}, got {value}")
    return _build(
        "from_megatron",
        total_steps=(total, "lr_decay_steps"),
        warmup_steps=(warmup, "lr_warmup_steps"),
        decay_steps=(decay, "wsd_decay_steps"),
        decay_shape=(_MEGATRON_SHAPES[lr_wsd_decay_style], "lr_wsd_decay_style"),
        init_ratio=(init_lr / peak, "init_lr / max_lr"),
        min_ratio=(min_lr / peak, "min_lr / max_lr"),
    )


def from_olmo_core(name: str, *, t_max: int, initial_lr: float, **fields: Unpack[OLMoCoreFields]) -> WSDSpec:
    """The curve of OLMo-core's ``WSD``, ``WSDS``, ``PowerLR`` or ``ComposableScheduler`` scheduler
    (``olmo_core.optim.scheduler``, 3.0).

    ``initial_lr * spec.multiplier(t)`` equals OLMo-core's ``get_lr(initial_lr, t, t_max)`` at every
    ``t`` in [0, t_max] where OLMo-core returns a rate. ``fields`` are the scheduler's own, as
    OLMo-core spells them: ``warmup`` or ``warmup_fraction`` (exactly one), ``decay`` or
    ``decay_fraction`` (at most one; neither means OLMo-core's ``decay_fraction=0.1`` for ``WSD``,
    and is refused for ``WSDS`` as OLMo-core refuses it), ``warmup_min_lr`` and ``decay_min_lr``
    (absolute rates, as ratios of ``initial_lr`` here), and for ``WSDS`` ``period_lengths`` and
    ``period_lr_multipliers``. Fractions are rounded with Python's ``round``, as OLMo-core does.
    ``units="tokens"`` (OLMo-core's ``SchedulerUnits``) gives a spec counted in tokens, with
    ``t_max`` its ``max_tokens``; give it its clock (``tokens_per_step=``) with
    ``dataclasses.replace`` before evaluating it at update counts.

    * ``WSD``: a linear warmup over ``warmup`` steps, a linear decay over the last ``decay`` steps of
      ``t_max``. Past ``t_max`` OLMo-core's rate keeps falling (below ``decay_min_lr``, then below 0);
      the contract holds the floor. Its warmup of 0 and decay of 0 divide by zero at steps 0 and
      ``t_max``; the spec has no warmup or no decay there.
    * ``WSDS``: periods of ``period_lengths`` (the warmup inside the first), each at its
      multiplier and decaying over ``decay`` (or ``round(decay_fraction * L_i)``) steps. OLMo-core
      reaches the floor *at* each period's end and starts the next period one step later: the
      spec's ``rewarmup_steps=1`` (the floor at the first update of each later period). Its curve
      does not depend on ``t_max``.
    * ``PowerLR``: WSD's warmup and linear tail (``decay_fraction`` 0.1 by default) around
      ``initial_lr * (t / warmup) ** b``: the spec's ``stable_power=b`` (``stable_scale`` the
      warmup). It needs ``warmup >= 1`` and ``b < 0``; past ``t_max`` the contract holds the floor.
    * ``ComposableScheduler``: ``stages`` (OLMo-core's ``ComposableSchedulerStage`` objects, or
      mappings of their fields) that form a WSD curve: a first stage rising to ``initial_lr`` (the
      warmup, optional), stages holding it, and a last stage falling from it (the decay, optional),
      linear or cosine; and ``override_decay`` (an ``OverrideDecay``, or a mapping) from a step at
      the peak: a cooldown branched there, the run ending with it. ``t_max`` is ignored, as
      OLMo-core ignores it. Any other layout is refused, naming the stage.

    Examples:
      >>> spec = from_olmo_core("WSDS", t_max=3000, initial_lr=1e-3, warmup=100, decay=200,
      ...                               period_lengths=[1000, 2000], period_lr_multipliers=[1.0, 0.5])
      >>> spec.period_ends, spec.period_peaks, spec.rewarmup_steps
      ((1000, 3000), (1.0, 0.5), 1)
    """
    check_choice("name", name, NAMES)
    t_max = check_steps("t_max", t_max, minimum=1)
    lr = check_real("initial_lr", initial_lr, positive=True)
    return _build("from_olmo_core", **spec_fields(name, t_max, lr, fields))


def from_levanter(
    num_train_steps: int,
    *,
    lr_schedule: str = "cosine",
    warmup: int | float = 0.01,
    decay: int | float | None = None,
    min_lr_ratio: float = 0.1,
    rewarmup: int | float = 0.0,
    cycle_length: int | float | Sequence[int] | None = None,
    cycles: int | Sequence[int] | None = None,
    power: float | None = None,
) -> WSDSpec:
    """The curve of levanter's optimizer config (``OptimizerConfig.lr_scheduler(num_train_steps)``,
    marin-levanter 0.2), from its fields as levanter spells them and with its defaults.

    ``learning_rate * spec.multiplier(t)`` equals levanter's schedule at every step, also past the
    end. levanter splits the run into cycles (``cycles``: a count or the cycle ends;
    ``cycle_length``: a length, a fraction of the run, or a list of lengths), each with a warmup
    (``warmup`` in the first, ``rewarmup`` in the later ones, rising from where the last cycle
    ended), a stable phase and a decay of ``decay`` steps (None: the rest of the cycle) to
    ``min_lr_ratio``; a fraction (<= 1) counts in its cycle's steps. The cycles are the spec's
    periods (WSD-S), the rewarmup its ``rewarmup_steps``.

    ``lr_schedule``: ``"linear"``, ``"cosine"`` (exponent 1), ``"polynomial"`` with ``power``
    (levanter's ``PolynomialLrSchedule``, default power 2.0 there: give it) and ``"constant"``
    (no decay). Refused, as the contract has no such decay: ``"inv"`` (its first decayed step
    repeats the second), ``"inv_sqrt"``, ``"inv_sqrt_decay"`` and ``"power"`` (not decays to the
    floor); and a fractional ``rewarmup`` that gives cycles of different lengths different
    rewarmups (the contract has one length). The deprecated ``cooldown`` and ``haps`` are not taken.

    Examples:
      >>> spec = from_levanter(10_000, lr_schedule="linear", warmup=0.01, decay=0.2, min_lr_ratio=0.0)
      >>> spec.warmup_steps, spec.decay_starts, spec.decay_shape
      (100, (8000,), 'linear')
    """
    total = check_steps("num_train_steps", num_train_steps, minimum=1)
    ends = _levanter.cycle_ends(total, cycle_length, cycles)
    fields = _levanter.spec_fields(total, lr_schedule, warmup, decay, min_lr_ratio, rewarmup, ends, power)
    return _build("from_levanter", **fields)


def from_maxtext(
    learning_rate_schedule_steps: int,
    *,
    warmup_steps_fraction: float = 0.1,
    wsd_decay_steps_fraction: float = 0.1,
    wsd_decay_style: str = "linear",
    learning_rate_final_fraction: float = 0.1,
) -> WSDSpec:
    """The curve of MaxText's ``create_learning_rate_schedule`` with ``lr_schedule_type="wsd"``.

    MaxText (``maxtext/utils/maxtext_utils.py``) warms up linearly from 0 over
    ``int(S * warmup_steps_fraction)`` steps (S the schedule steps), holds the rate, and decays over
    the last ``D = int(S * wsd_decay_steps_fraction)`` of them, reaching its floor *at* the last
    step of the schedule (step S - 1), one step earlier than the contract's convention: the spec is
    a run of S - 1 steps with a decay of D - 1. Both agree at every step below S. Past S MaxText's
    rate is 0 when the run is longer than its schedule; the contract holds the floor. A cosine
    decay of a single step (MaxText drops straight to its floor) is refused.

    Examples:
      >>> spec = from_maxtext(1000, warmup_steps_fraction=0.05, wsd_decay_steps_fraction=0.2)
      >>> spec.total_steps, spec.warmup_steps, spec.decay_lengths
      (999, 50, (199,))
    """
    steps = check_steps("learning_rate_schedule_steps", learning_rate_schedule_steps, minimum=1)
    warmup_fraction = check_ratio("warmup_steps_fraction", warmup_steps_fraction)
    decay_fraction = check_ratio("wsd_decay_steps_fraction", wsd_decay_steps_fraction)
    shape = check_choice("wsd_decay_style", wsd_decay_style, ("linear", "cosine"))
    final = check_ratio("learning_rate_final_fraction", learning_rate_final_fraction)
    if warmup_fraction + decay_fraction > 1.0:
        raise ValueError(
            f"warmup_steps_fraction ({warmup_fraction}) + wsd_decay_steps_fraction ({decay_fraction}) "
            "must not exceed 1.0 (MaxText refuses it too)"
        )
    warmup, decay = int(steps * warmup_fraction), int(steps * decay_fraction)
    if decay <= 1:
        if decay == 1 and shape == "cosine":
            raise ValueError(
                f"a cosine decay of one step (int({steps} * {decay_fraction}) = 1) drops MaxText's rate "
                "to its floor at the schedule's last step with no decay before it; the contract "
                "cannot express that. Use a longer decay or the linear style."
            )
        # no decay (a linear one of one step stays at the peak: optax's 0-step linear schedule)
        return _build(
            "from_maxtext",
            total_steps=(steps, "learning_rate_schedule_steps"),
            warmup_steps=(warmup, "int(learning_rate_schedule_steps * warmup_steps_fraction)"),
            decay_steps=(0, "int(learning_rate_schedule_steps * wsd_decay_steps_fraction)"),
            min_ratio=(final, "learning_rate_final_fraction"),
        )
    return _build(
        "from_maxtext",
        total_steps=(steps - 1, "learning_rate_schedule_steps - 1"),
        warmup_steps=(warmup, "int(learning_rate_schedule_steps * warmup_steps_fraction)"),
        decay_steps=(decay - 1, "int(learning_rate_schedule_steps * wsd_decay_steps_fraction) - 1"),
        decay_shape=(shape, "wsd_decay_style"),
        min_ratio=(final, "learning_rate_final_fraction"),
    )
