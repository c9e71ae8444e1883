"""``WSDSpec``: the contract's parameters as one validated, serialisable value."""

from __future__ import annotations

import bisect
import dataclasses
import difflib
import functools
import inspect
import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple, ParamSpec, cast

from wsd_core import _presets as presets
from wsd_core import _validation as v
from wsd_core._fields import normalise_checkpoints, normalise_decay_steps, normalise_peaks, period_ends
from wsd_core._formula import (
    DECAY_SHAPES,
    WARMUP_SHAPES,
    Period,
    PythonBackend,
    Resolved,
    decay_value,
    evaluate,
    rewarmup_value,
    stable_fraction,
    warmup_value,
)
from wsd_core._units import UNITS, TokenRamp, check_clock, check_clock_range, token_ramp

DEFAULT_DECAY_RATIO = 0.1
_log = logging.getLogger("wsd_core")
_WARMUP = "warmup"  # a piece of the run evaluated by warmup_value
_DECAY = "decay"  # (_DECAY, period): a piece evaluated by decay_value
_REWARMUP = "rewarmup"  # (_REWARMUP, period): a piece evaluated by rewarmup_value


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


_P = ParamSpec("_P")


def _preset(fields_of: Callable[_P, dict[str, Any]]) -> Any:
    """A classmethod building the spec whose fields ``fields_of`` maps from a peer's own parameters,
    under that function's name, signature and docstring: each preset is written once, in
    ``_presets``, which needs no ``WSDSpec``."""

    @functools.wraps(fields_of)
    def build(cls: type[WSDSpec], /, *args: _P.args, **kwargs: _P.kwargs) -> WSDSpec:
        fields = fields_of(*args, **kwargs)
        try:
            return cls(**fields)
        except (TypeError, ValueError) as e:  # named in the preset's own parameters, not the spec's
            raise type(e)(presets.in_preset_terms(fields_of.__name__, fields, e)) from None

    # the peer's parameters after cls (which binding drops), returning the spec, for help() and IDEs
    signature = inspect.signature(fields_of)
    cls_parameter = inspect.Parameter("cls", inspect.Parameter.POSITIONAL_ONLY)
    build.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[cls_parameter, *signature.parameters.values()], return_annotation="WSDSpec"
    )
    return classmethod(build)


@dataclasses.dataclass(frozen=True)
class WSDSpec:
    """A Warmup-Stable-Decay schedule, exactly as the contract (``docs/contract.md``) defines it.

    The spec is framework-free: ``wsd_jax`` and ``wsd_torch`` evaluate it, and ``multiplier`` evaluates
    it on Python floats. Every field is validated at construction (``dataclasses.replace`` validates
    too); bad values raise ``ValueError`` or ``TypeError`` naming the parameter, the value and the
    valid range.

    Steps given to and returned by the methods are the optimizer's update counts (optax's ``count``,
    torch's ``last_epoch``), with ``start_step`` already added; the fields themselves are in the
    schedule's own time (``checkpoints`` and ``total_steps`` count from ``start_step``).

    Attributes:
      total_steps: T, updates in the run (int >= 1).
      warmup_steps: W, warmup length (0 <= W <= first period end).
      decay_steps: D, the decay length of every period, or one length per period (d_1 .. d_K).
        Exclusive with ``decay_ratio``.
      decay_ratio: rho, each period decays for ``floor(rho * period_length)`` updates. When neither
        ``decay_steps`` nor ``decay_ratio`` is given, rho = 0.1.
      decay_shape: ``"linear"``, ``"cosine"``, ``"1-sqrt"`` (default), ``"inverse"``,
        ``"exponential"`` or ``"geometric"`` (``min_ratio ** p``: log-linear from the peak to the floor).
      warmup_shape: ``"linear"`` (default) or ``"cosine"``.
      init_ratio: m(0) when W > 0, in [0, 1].
      min_ratio: m at the end of each decay, in [0, 1]; > 0 for ``"inverse"`` and ``"geometric"``.
      checkpoints: period ends c_1 < ... < c_K = T (WSD-S), an int K for geometric ends
        ``T >> (K - i)``, or None for a single period.
      start_step: s0; the schedule is m(max(step - s0, 0)).
      period_peaks: P_1 .. P_K, the peak of each period as a ratio (> 0, >= ``min_ratio``); period i
        is stable at P_i and decays from P_i to the floor, the warmup rises to P_1. None: 1 in every
        period. OLMo-core's ``WSDS(period_lr_multipliers=...)``.
      rewarmup_steps: N, the first N updates of every period after the first rise from the previous
        period's last value (the floor) to the period's peak, with ``rewarmup_shape``; 0 (default):
        the rate jumps back to the peak. N <= every later period's length. Levanter's ``rewarmup``.
      rewarmup_shape: the rewarmup's shape, one of the warmup shapes (default ``"linear"``).
      units: what the lengths count: ``"steps"`` (default, optimizer updates), ``"tokens"`` or
        ``"samples"``. A spec in tokens or samples is evaluated at C(s), the units consumed before
        update s, which its clock (``tokens_per_step``) gives. Its fields, ``period_ends``,
        ``decay_starts``, ``end_step`` and ``phase_table`` count units; its methods take update
        counts like everything else, and ``multiplier_in_units`` (``phase_in_units``, ...)
        evaluate it at a unit count.
      tokens_per_step: the clock of a spec in tokens or samples: the units each update consumes,
        an int or ``(from_step, units_per_step)`` pairs for a batch-size ramp (steps from 0,
        strictly increasing). Stored as an int for one constant rate, else as a tuple of pairs.
        None for a spec in steps (which refuses one); a spec in tokens without one describes a curve
        in units only (``wsd table``) and cannot be evaluated at update counts. Every count of the
        run, in updates and in units, must fit an int64.

    Examples:
      >>> spec = WSDSpec(1000, warmup_steps=100, decay_steps=200, decay_shape="linear")
      >>> spec.multiplier(0), spec.multiplier(500), spec.multiplier(900), spec.multiplier(1000)
      (0.0, 1.0, 0.5, 0.0)
      >>> spec.phase(850).name
      'decay'
    """

    total_steps: int
    warmup_steps: int = 0
    decay_steps: int | Sequence[int] | None = None  # an int, or a tuple of one int per period
    decay_ratio: float | None = None
    decay_shape: str = "1-sqrt"
    warmup_shape: str = "linear"
    init_ratio: float = 0.0
    min_ratio: float = 0.0
    checkpoints: int | Sequence[int] | None = None  # stored as a tuple of ints, or K, or None
    start_step: int = 0
    period_peaks: Sequence[float] | None = None  # stored as a tuple of floats, or None
    rewarmup_steps: int = 0
    rewarmup_shape: str = "linear"
    units: str = "steps"
    tokens_per_step: int | Sequence[Sequence[int]] | None = None  # the clock: int, or (step, n) pairs

    def __new__(cls, *args: Any, **fields: Any) -> WSDSpec:
        # Runs before the generated __init__, whose "unexpected keyword" error names no alternative.
        check_field_names(fields, where="WSDSpec")
        return super().__new__(cls)

    def __post_init__(self) -> None:
        set_ = functools.partial(object.__setattr__, self)
        total = v.check_steps("total_steps", self.total_steps, minimum=1)
        set_("total_steps", total)
        set_("warmup_steps", v.check_steps("warmup_steps", self.warmup_steps, minimum=0))
        set_("start_step", v.check_steps("start_step", self.start_step, minimum=0))
        if self.start_step + total > v.MAX_STEP:
            raise ValueError(
                f"start_step + total_steps must be <= 2**63 - 1 (an int64 step count), got "
                f"{self.start_step} + {total}"
            )
        set_("decay_shape", v.check_choice("decay_shape", self.decay_shape, DECAY_SHAPES))
        set_("warmup_shape", v.check_choice("warmup_shape", self.warmup_shape, WARMUP_SHAPES))
        set_("init_ratio", v.check_ratio("init_ratio", self.init_ratio))
        # inverse and geometric divide by, or take the logarithm of, the floor: it must be > 0.
        needs_floor = self.decay_shape in ("inverse", "geometric")
        set_("min_ratio", v.check_ratio("min_ratio", self.min_ratio))
        if needs_floor and self.min_ratio == 0.0:
            raise ValueError(
                f"min_ratio must be > 0 for decay_shape={self.decay_shape!r} (it never reaches 0), got 0.0; "
                "give a floor such as min_ratio=0.01, or use a shape that decays to 0 such as 'linear'"
            )
        if self.decay_steps is not None and self.decay_ratio is not None:
            raise ValueError(
                "give at most one of decay_steps and decay_ratio, got "
                f"decay_steps={self.decay_steps!r} and decay_ratio={self.decay_ratio!r}"
            )
        if self.decay_steps is not None:
            set_("decay_steps", normalise_decay_steps(self.decay_steps))
        if self.decay_ratio is not None:
            set_("decay_ratio", v.check_ratio("decay_ratio", self.decay_ratio))
        set_("checkpoints", normalise_checkpoints(self.checkpoints, total))
        set_("period_peaks", normalise_peaks(self.period_peaks, self.min_ratio))
        set_("rewarmup_steps", v.check_steps("rewarmup_steps", self.rewarmup_steps, minimum=0))
        set_("rewarmup_shape", v.check_choice("rewarmup_shape", self.rewarmup_shape, WARMUP_SHAPES))
        set_("units", v.check_choice("units", self.units, UNITS))
        set_("tokens_per_step", check_clock(self.units, self.tokens_per_step))
        if self.clock is not None:
            check_clock_range(self.clock, self.end_step, self.units)
        plan = self._resolved  # resolve now: periods, decays and warmup are validated at construction
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

    # --- resolution -------------------------------------------------------------------------

    @functools.cached_property
    def _resolved(self) -> Resolved:
        ends = period_ends(self.checkpoints, self.total_steps)
        if self.warmup_steps > ends[0]:
            raise ValueError(
                f"warmup_steps must be <= the first period end ({ends[0]}), got {self.warmup_steps}"
            )
        lengths = []
        previous = 0
        per_period = self.decay_steps if isinstance(self.decay_steps, tuple) else None
        if per_period is not None and len(per_period) != len(ends):
            raise ValueError(
                f"decay_steps must give one length per period: {len(ends)} periods (ends {list(ends)}), "
                f"got {len(per_period)} lengths {list(per_period)}"
            )
        for i, end in enumerate(ends):
            period = end - previous
            if self.decay_steps is not None:
                decay = per_period[i] if per_period is not None else cast(int, self.decay_steps)
                if decay > period:
                    raise ValueError(
                        f"decay_steps must be <= every period's length; got {decay}, but period {i} "
                        f"(steps {previous}..{end - 1}) has {period} steps"
                    )
            else:
                rho = DEFAULT_DECAY_RATIO if self.decay_ratio is None else self.decay_ratio
                decay = math.floor(rho * period)  # in float64, as the contract specifies
            lengths.append(decay)
            previous = end
        peaks = self.period_peaks
        if peaks is not None and len(peaks) != len(ends):
            raise ValueError(
                f"period_peaks must give one peak per period: {len(ends)} periods (ends {list(ends)}), "
                f"got {len(peaks)} peaks {list(peaks)}"
            )
        for i in range(1, len(ends)):
            if self.rewarmup_steps > ends[i] - ends[i - 1]:
                raise ValueError(
                    f"rewarmup_steps must be <= the length of every period after the first; got "
                    f"{self.rewarmup_steps}, but period {i} (steps {ends[i - 1]}..{ends[i] - 1}) has "
                    f"{ends[i] - ends[i - 1]} steps"
                )
        return Resolved(
            start_step=self.start_step,
            warmup_steps=self.warmup_steps,
            init_ratio=self.init_ratio,
            warmup_shape=self.warmup_shape,
            decay_shape=self.decay_shape,
            min_ratio=self.min_ratio,
            ends=ends,
            decay_starts=tuple(e - d for e, d in zip(ends, lengths, strict=True)),
            decay_lengths=tuple(lengths),
            peaks=() if peaks is None else tuple(peaks),
            rewarmup_steps=self.rewarmup_steps,
            rewarmup_shape=self.rewarmup_shape,
        )

    @functools.cached_property
    def _python_backend(self) -> PythonBackend:
        return PythonBackend(self._resolved)

    def resolved(self) -> Resolved:
        """The numbers the backends evaluate: period ends, decay starts and lengths (local steps)."""
        return self._resolved

    # --- the clock: update counts and the units they have consumed ----------------------------

    @functools.cached_property
    def clock(self) -> TokenRamp | None:
        """``tokens_per_step`` as a ``TokenRamp`` (``consumed``, ``first_step_reaching``), or None:
        a spec in steps, or a spec in units without a clock."""
        return None if self.tokens_per_step is None else token_ramp(self.tokens_per_step)

    def units_at(self, step: int | float) -> int | float:
        """C(step): the spec's own count before update ``step``: the step itself for a spec in steps,
        the units consumed by updates ``0 .. step - 1`` for a spec in tokens or samples."""
        if self.units == "steps":
            return step
        clock = self._clock_to_turn(f"update {step!r} into {self.units}")
        return clock.consumed(cast(int, step))  # piecewise linear for a real step

    def step_reaching(self, units: int) -> int:
        """The first update count whose units consumed reach ``units`` (``units`` itself for a spec
        in steps): where a boundary of the spec falls in update counts, e.g. for a ``SavePlan``."""
        units = v.check_int("units", units)
        if self.units == "steps":
            return units
        return self._clock_to_turn(f"{units} {self.units} into an update count").first_step_reaching(units)

    def _clock_to_turn(self, what: str) -> TokenRamp:
        """The clock of a spec in tokens or samples; refused, saying what it was needed for, when the
        spec has none."""
        if self.clock is None:
            raise ValueError(
                f"this spec counts {self.units} and has no clock to turn {what}: give it "
                f"tokens_per_step=, or evaluate at a count of {self.units} with "
                "multiplier_in_units / stable_fraction_in_units / phase_in_units"
            )
        return self.clock

    # --- evaluation on Python numbers --------------------------------------------------------

    def multiplier(self, step: int | float) -> float:
        """m at update count ``step`` as a Python float, for ``LambdaLR`` and logging (well under a
        microsecond in the stable phase and after the end, about a microsecond in warmup and decay).
        For a spec in tokens or samples this is m(C(step)), C from its clock.

        ``step`` is an int, or a real number for the real-valued extension; a bool or NaN is refused
        (array backends, which cannot raise inside ``jit``, return NaN for a NaN step)."""
        if self.units == "steps":
            return self.multiplier_in_units(step)
        if type(step) is not int:
            step = v.check_step_value(step)
        return self.multiplier_in_units(self.units_at(step))

    def multiplier_in_units(self, step: int | float) -> float:
        """m at a count of the spec's own units (update counts for a spec in steps, where it is
        ``multiplier``): the contract's m itself."""
        if type(step) is not int:  # the per-step LambdaLR path passes ints and skips this check
            step = v.check_step_value(step)
        starts, pieces = self._pieces
        piece = pieces[bisect.bisect_right(starts, step)]
        if piece.__class__ is float:
            return piece
        plan, ops = self._resolved, self._python_backend
        u = step - plan.start_step
        if piece is _WARMUP:
            m = warmup_value(u, plan, ops)
        else:
            kind, period = piece
            m = (decay_value if kind is _DECAY else rewarmup_value)(u, period, plan, ops)
        return float(ops.clip(m, plan.floor, plan.ceiling))

    def stable_fraction(self, step: int | float) -> float:
        """h at update count ``step`` of a companion hyperparameter (``docs/contract.md``, "Companion
        hyperparameters"): 1 at the peak (warmup included), 0 at the floor, the rate's own decay
        progress in between. A companion's value is ``cooled + (stable - cooled) * h``.

        Examples:
          >>> spec = WSDSpec(1000, warmup_steps=100, decay_steps=200, decay_shape="linear", min_ratio=0.1)
          >>> [round(spec.stable_fraction(t), 3) for t in (0, 500, 900, 1000)]
          [1.0, 1.0, 0.5, 0.0]
        """
        if type(step) is not int:
            step = v.check_step_value(step)
        return self.stable_fraction_in_units(self.units_at(step))

    def stable_fraction_in_units(self, step: int | float) -> float:
        """h at a count of the spec's own units (``stable_fraction`` for a spec in steps)."""
        if type(step) is not int:
            step = v.check_step_value(step)
        return float(stable_fraction(step, self._resolved, self._python_backend))

    @functools.cached_property
    def _pieces(self) -> tuple[tuple[int, ...], tuple[Any, ...]]:
        """The run cut into phases, for ``multiplier``: ``pieces[k]`` holds for steps in
        ``[starts[k-1], starts[k])`` and is the constant value there (stable phases, before the start,
        after the end) or which part of the formula to evaluate: ``_WARMUP``, or ``(_DECAY, period)``
        or ``(_REWARMUP, period)`` with the period's ``Period`` values.

        A C-level bisect then replaces the formula's period lookup and branch selection; the values
        come from the same functions ``evaluate`` uses (``warmup_value``, ``decay_value``,
        ``rewarmup_value``).
        """
        plan, ops = self._resolved, self._python_backend
        starts: list[int] = []
        pieces: list[Any] = [float(evaluate(self.start_step, plan, ops))]  # before s0
        for name, index, first, _last in self._segments():
            starts.append(first)
            period: Period = ops.period(index)
            if name == "stable":
                pieces.append(float(period.peak))
            elif name == "warmup":
                pieces.append(_WARMUP)
            else:
                pieces.append((_DECAY if name == "decay" else _REWARMUP, period))
        starts.append(self.end_step)  # at and past the end: the final floor
        pieces.append(float(evaluate(self.end_step, plan, self._python_backend)))
        return tuple(starts), tuple(pieces)

    # --- introspection (optimizer steps, start_step included) ---------------------------------

    @property
    def period_ends(self) -> tuple[int, ...]:
        """The optimizer step at which each period ends (its first step at the period's floor)."""
        return tuple(self.start_step + c for c in self._resolved.ends)

    @property
    def decay_starts(self) -> tuple[int, ...]:
        """Each period's first decayed step; a checkpoint saved at this count is pre-decay."""
        return tuple(self.start_step + b for b in self._resolved.decay_starts)

    @property
    def decay_lengths(self) -> tuple[int, ...]:
        """d_i, the number of decayed updates in each period."""
        return self._resolved.decay_lengths

    @property
    def end_step(self) -> int:
        """The first optimizer step past the run (``start_step + total_steps``)."""
        return self.start_step + self.total_steps

    def phase(self, step: int) -> Phase:
        """The phase, period and progress of optimizer step ``step`` (any int, also negative); for a
        spec in tokens or samples, those at C(step), the units consumed before it."""
        step = v.check_int("step", step)
        return self.phase_in_units(cast(int, self.units_at(step)))

    def phase_in_units(self, step: int) -> Phase:
        """The phase at a count of the spec's own units (``phase`` for a spec in steps)."""
        step = v.check_int("step", step)
        plan, m = self._resolved, self.multiplier_in_units(step)
        if step >= self.end_step:
            return Phase("done", len(plan.ends) - 1, 1.0, m)
        step = max(step, self.start_step)  # before the start: as at the start
        firsts, segments = self._segment_index
        name, i, first, last = segments[bisect.bisect_right(firsts, step) - 1]
        if name == "warmup":
            return Phase(name, i, (step - self.start_step) / plan.warmup_steps, m)
        if name == "stable":
            return Phase(name, i, (step - first) / (last - first + 1), m)
        if name == "rewarmup":
            return Phase(name, i, (step - first) / plan.rewarmup_steps, m)
        return Phase(name, i, (step - self.start_step - plan.decay_starts[i]) / plan.decay_lengths[i], m)

    def phase_table(self) -> str:
        """A human-readable table of the phases: steps, lengths and the multiplier at each end."""
        unit = self.units[:-1]  # the columns count what the spec counts: steps, tokens or samples
        rows = [("phase", "period", f"first {unit}", f"last {unit}", self.units, "multiplier")]
        for name, period, first, last in self._segments():
            m_first, m_last = self.multiplier_in_units(first), self.multiplier_in_units(last)
            span = f"{m_first:.6g}" if m_first == m_last else f"{m_first:.6g} -> {m_last:.6g}"
            rows.append((name, str(period), str(first), str(last), str(last - first + 1), span))
        done = self.end_step
        rows.append(("done", "-", str(done), "...", "-", f"{self.multiplier_in_units(done):.6g}"))
        widths = [max(len(row[k]) for row in rows) for k in range(len(rows[0]))]
        lines = [
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows
        ]
        return "\n".join(lines)

    @functools.cached_property
    def _segment_index(self) -> tuple[list[int], list[tuple[str, int, int, int]]]:
        segments = self._segments()
        return [first for _, _, first, _ in segments], segments

    def _segments(self) -> list[tuple[str, int, int, int]]:
        """(name, period, first step, last step) of every non-empty phase, in optimizer steps: the
        one place the Python side cuts a run into phases (``phase``, ``phase_table`` and
        ``multiplier``'s pieces read it; the array backends locate periods branch-free instead)."""
        plan, s0 = self._resolved, self.start_step
        segments = []
        previous = 0
        for i, (end, b) in enumerate(zip(plan.ends, plan.decay_starts, strict=True)):
            # the first W updates of the run warm up, the first N of every later period rewarm
            rising = plan.warmup_steps if i == 0 else plan.rewarmup_steps
            if rising > 0:
                name = "warmup" if i == 0 else "rewarmup"
                segments.append((name, i, s0 + previous, s0 + previous + rising - 1))
            stable_from = previous + rising
            if b > stable_from:
                segments.append(("stable", i, s0 + stable_from, s0 + b - 1))
            decay_from = max(b, stable_from)
            if end > decay_from:
                segments.append(("decay", i, s0 + decay_from, s0 + end - 1))
            previous = end
        return segments

    # --- the peers' curves (``wsd_core._presets``) ----------------------------------------------

    from_transformers = _preset(presets.from_transformers)
    from_torchtitan = _preset(presets.from_torchtitan)
    from_pytorch_accelerated = _preset(presets.from_pytorch_accelerated)
    from_megatron = _preset(presets.from_megatron)
    from_olmo_core = _preset(presets.from_olmo_core)
    from_maxtext = _preset(presets.from_maxtext)

    # --- continuing a trunk and branching cooldowns --------------------------------------------
    # Every operation takes the optimizer step of the checkpoint it starts from (the number of updates
    # the saved state has applied) and returns a validated spec whose ``start_step`` keeps that count
    # running: the optimizer's count is never reset, so optax's ``count`` and torch's ``last_epoch``
    # stay truthful. For a spec in tokens or samples ``at_step`` is an update count too, and the new
    # spec starts at the units it has consumed, with the same clock.

    def extend(self, total_steps: int, *, at_step: int) -> WSDSpec:
        """The same run with its last period ending at ``total_steps`` instead, resumed at ``at_step``.

        The rates of every step up to ``at_step`` are unchanged: earlier periods keep their ends (a
        geometric ``checkpoints=K`` becomes its explicit ends) and only the last period's decay moves.
        The checkpoint's updates must all be warmup or stable ones (``at_step`` at most the pre-decay step
        of its period), and the new last decay must not start before ``at_step``.

        Examples:
          >>> WSDSpec(1000, warmup_steps=50, decay_steps=100).extend(3000, at_step=800).decay_starts
          (2900,)
        """
        spec = self
        total_steps = v.check_steps("total_steps", total_steps, minimum=1)
        at_step, at_units = _checkpoint_units(spec, at_step, minimum=spec.start_step)
        name, period = _last_applied(spec, at_step)
        if name in ("decay", "done"):
            raise ValueError(
                f"cannot extend the trunk from step {at_step}: its last update was in the {name} phase of "
                f"period {period}, so its model has already started cooling down. Extend from a "
                "pre-decay checkpoint "
                f"instead (steps {spec.decay_starts}), or use continue_from({at_step}, ...) to start a "
                "fresh stable phase from this checkpoint (WSD-S)."
            )
        ends = spec.resolved().ends
        new_ends = (*ends[:-1], total_steps)
        checkpoints: Any = None if spec.checkpoints is None else new_ends
        try:
            new = dataclasses.replace(spec, total_steps=total_steps, checkpoints=checkpoints)
        except ValueError as e:
            raise ValueError(f"cannot extend to total_steps={total_steps}: {e}") from e
        if new.decay_starts[-1] < at_units:
            raise ValueError(
                f"cannot extend to total_steps={total_steps} from step {at_step}: the last decay would "
                f"start at step {new.decay_starts[-1]}, before the checkpoint"
            )
        return new

    def continue_from(self, at_step: int, *, total_steps: int, **changes: Any) -> WSDSpec:
        """A new run of ``total_steps`` starting at ``at_step`` at the peak, with no warmup (WSD-S).

        Works from any checkpoint, also a cooled-down one: the rate returns to the peak and the new run
        decays as its own fields say. Decay settings are inherited unless given in ``changes`` (any
        ``WSDSpec`` field except ``start_step`` and ``warmup_steps``; ``checkpoints`` defaults to one period).
        With ``period_peaks``, the peak is that of the period ``at_step`` falls in, in every new
        period, unless ``changes`` gives ``period_peaks``.

        Examples:
          >>> WSDSpec(1000, decay_steps=100).continue_from(1000, total_steps=500).multiplier(1000)
          1.0
        """
        spec = self
        at_step, at_units = _checkpoint_units(spec, at_step, minimum=0)
        for name in ("start_step", "warmup_steps"):
            if name in changes:
                raise TypeError(f"continue_from sets {name} itself; do not pass it")
        fields = spec.to_dict()
        if "decay_steps" in changes or "decay_ratio" in changes:
            fields["decay_steps"] = fields["decay_ratio"] = None
        if isinstance(spec.decay_steps, tuple) and "decay_steps" not in changes:
            # one length per period: the new single period decays like the one at_step falls in
            fields["decay_steps"] = spec.decay_steps[_period_at(spec, at_step)]
        fields.update(total_steps=total_steps, start_step=at_units, warmup_steps=0, checkpoints=None)
        fields.update(changes, period_peaks=changes.get("period_peaks"))
        new = type(spec).from_dict(fields)
        peak = _peak_at(spec, at_step)
        if "period_peaks" in changes or peak == 1.0:
            return new
        return dataclasses.replace(new, period_peaks=(peak,) * len(new.period_ends))

    def branch_cooldown(
        self,
        at_step: int,
        cooldown_steps: int,
        *,
        decay_shape: str | None = None,
        min_ratio: float | None = None,
    ) -> WSDSpec:
        """A cooldown of ``cooldown_steps`` branched off the stable checkpoint at ``at_step``.

        The branch decays from the peak at ``at_step`` to ``min_ratio`` at ``at_step + cooldown_steps``
        with the trunk's decay shape and floor unless given. The checkpoint's last update must be a stable
        one (a pre-decay checkpoint qualifies): after a warmup or decay update the rate is not at the peak
        and would jump back up.

        Examples:
          >>> branch = WSDSpec(10_000, decay_shape="linear").branch_cooldown(4000, 1000)
          >>> branch.multiplier(4000), branch.multiplier(4500), branch.multiplier(5000)
          (1.0, 0.5, 0.0)
        """
        spec = self
        at_step, at_units = _checkpoint_units(spec, at_step, minimum=spec.start_step)
        cooldown_steps = v.check_steps("cooldown_steps", cooldown_steps, minimum=1)
        name, period = _last_applied(spec, at_step)
        if name != "stable":
            raise ValueError(
                f"cannot branch a cooldown from step {at_step}: its last update was in the {name} phase of "
                f"period {period}, not at the peak. Branch from a stable step, e.g. a pre-decay "
                f"checkpoint {spec.decay_starts}."
            )
        peak = _peak_at(spec, at_step)
        return type(spec)(
            total_steps=cooldown_steps,
            decay_steps=cooldown_steps,
            decay_shape=spec.decay_shape if decay_shape is None else decay_shape,
            min_ratio=spec.min_ratio if min_ratio is None else min_ratio,
            start_step=at_units,
            period_peaks=None if peak == 1.0 else (peak,),
            units=spec.units,
            tokens_per_step=spec.tokens_per_step,
        )

    # --- serialisation -----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict (``checkpoints`` as a list); ``from_dict`` inverts it."""
        out = dataclasses.asdict(self)
        if isinstance(self.checkpoints, tuple):
            out["checkpoints"] = list(self.checkpoints)
        for name in ("period_peaks", "decay_steps"):
            if isinstance(out[name], tuple):
                out[name] = list(out[name])
        if isinstance(self.tokens_per_step, tuple):
            out["tokens_per_step"] = [list(pair) for pair in self.tokens_per_step]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WSDSpec:
        """Rebuilds (and validates) a spec from ``to_dict()`` output, e.g. after a JSON round-trip."""
        if not isinstance(data, Mapping):
            raise TypeError(f"from_dict expects a mapping, got {type(data).__name__}")
        try:
            check_field_names(data, where="WSDSpec.from_dict")
        except TypeError as e:
            raise ValueError(str(e)) from None
        if "total_steps" not in data:
            raise ValueError("from_dict needs 'total_steps'")
        return cls(**data)


# Names the peers use for our fields, and what to write instead.
_ALIASES = {
    "min_lr": "min_ratio (a fraction of the peak: min_lr / peak)",
    "min_lr_ratio": "min_ratio",
    "min_lr_factor": "min_ratio",
    "lr_min": "min_ratio (a fraction of the peak)",
    "warmup_ratio": "warmup_steps (a number of updates: 0.1 of 10000 steps is warmup_steps=1000)",
    "num_warmup_steps": "warmup_steps",
    "num_training_steps": "total_steps",
    "training_steps": "total_steps",
    "max_steps": "total_steps",
    "num_decay_steps": "decay_steps",
    "cooldown_steps": "decay_steps",
    "decay_type": "decay_shape",
    "warmup_type": "warmup_shape",
    "num_checkpoints": "checkpoints",
    "init_lr_ratio": "init_ratio",
}


def check_field_names(fields: Iterable[Any], *, where: str) -> None:
    """Refuses names that are not ``WSDSpec`` fields, suggesting the closest valid one for each."""
    valid = [f.name for f in dataclasses.fields(WSDSpec)]
    unknown = [name for name in fields if name not in valid]
    if not unknown:
        return
    hints = []
    for name in unknown:
        suggestion = _ALIASES.get(name) if isinstance(name, str) else None
        if suggestion is None and isinstance(name, str):
            close = difflib.get_close_matches(name, valid, n=1, cutoff=0.6)
            suggestion = close[0] if close else None
        if suggestion:
            hints.append(f"for {name!r} did you mean {suggestion}?")
    hint = f" ({'; '.join(hints)})" if hints else ""
    raise TypeError(f"{where}: unknown WSDSpec fields {unknown}{hint}. Valid fields: {', '.join(valid)}")


def spec_from_args(spec: WSDSpec | None, fields: Mapping[str, Any]) -> WSDSpec:
    """The spec of a ``f(..., spec=None, **fields)`` call: the given spec, or one built from fields."""
    if spec is not None and fields:
        raise TypeError(f"give either spec or WSDSpec fields, not both (got fields {sorted(fields)})")
    if spec is None:
        check_field_names(fields, where="the schedule")
        return WSDSpec(**fields)
    if not isinstance(spec, WSDSpec):
        raise TypeError(f"spec must be a WSDSpec, got {type(spec).__name__}")
    return spec


def _last_applied(spec: WSDSpec, step: int) -> tuple[str, int]:
    """The phase and period of the last update a checkpoint saved at ``step`` has applied.

    A checkpoint at step ``s`` holds the state after updates ``0 .. s-1``: the pre-decay checkpoint
    ``s = b_i`` has applied only stable updates, although update ``b_i`` itself decays.
    """
    after = spec.units_at(step) > spec.start_step
    phase = spec.phase(step - 1 if after and step > 0 else step)
    return phase.name, phase.period


def _checkpoint_units(spec: WSDSpec, at_step: Any, *, minimum: int) -> tuple[int, int]:
    """``at_step`` (an update count) checked, with the spec's own count there (the units it has
    consumed, for a spec in tokens or samples), which must be at least ``minimum``."""
    at_step = v.check_steps("at_step", at_step, minimum=0)
    units = int(spec.units_at(at_step))
    if units < minimum:
        shown = f"{units} {spec.units} ({at_step} updates)" if spec.units != "steps" else str(at_step)
        raise ValueError(f"at_step must be >= {minimum} (the spec's start_step), got {shown}")
    return at_step, units


def _peak_at(spec: WSDSpec, step: int) -> float:
    """The peak of the period whose updates a checkpoint at ``step`` has applied (1.0 without
    ``period_peaks``)."""
    return 1.0 if spec.period_peaks is None else spec.period_peaks[_period_at(spec, step)]


def _period_at(spec: WSDSpec, step: int) -> int:
    return _last_applied(spec, step)[1]
