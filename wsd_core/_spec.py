"""``WSDSpec``: the contract's parameters as one validated, serialisable value, evaluated on Python
numbers. Its phases, branches, clock and fields' checks have their own modules."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence
from typing import Any, Unpack, cast

from wsd_core import _branching, _phases
from wsd_core._clock import (
    UNITS,
    TokenRamp,
    check_batch_rule,
    check_clock,
    check_clock_range,
    require_clock,
    token_ramp,
)
from wsd_core._fields import (
    NEW_DEFAULTS,
    SpecChanges,
    WSDFields,
    check_field_names,
    check_shape_fields,
    normalise_checkpoints,
    normalise_peaks,
)
from wsd_core._formula import (
    WARMUP_SHAPES,
    PythonBackend,
    Resolved,
    stable_fraction,
)
from wsd_core._phases import Phase
from wsd_core._resolution import resolve_fields, warn_if_rarely_meant
from wsd_core._validation import MAX_STEP, check_choice, check_int, check_step_value, check_steps


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
        ``"exponential"``, ``"geometric"`` (``min_ratio ** p``: log-linear from the peak to the floor)
        or ``"polynomial"`` (``(1 - p) ** decay_power``).
      warmup_shape: ``"linear"`` (default), ``"cosine"`` or ``"1-sqrt"`` (``1 - sqrt(1 - p)``).
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
      stable_power: b <= 0: the stable phase is ``P_i ((u - W) / stable_scale + 1) ** b`` at the
        spec's step u, and each decay starts from the value it has come to (OLMo-core's ``PowerLR``;
        -0.5: an inverse square root). 0 (default): a constant stable phase.
      stable_scale: tau >= 1, the power's time scale (None: the warmup length, or 1 without one).
      decay_power: k > 0 of the ``"polynomial"`` decay shape (default 1: linear).
      rate_batch_exponent: e >= 0: with a batch ramp (``tokens_per_step`` pairs), the rate is also
        multiplied by ``(batch / first batch) ** e`` from each ramp step on (OLMo-core's batch-size
        schedule: 0.5). 0 (default): the rate does not follow the batch.

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
    stable_power: float = 0.0
    stable_scale: int | None = None
    decay_power: float = 1.0
    rate_batch_exponent: float = 0.0

    def __new__(cls, *args: Any, **fields: Any) -> WSDSpec:
        # Runs before the generated __init__, whose "unexpected keyword" error names no alternative.
        check_field_names(fields, where="WSDSpec")
        return super().__new__(cls)

    def __post_init__(self) -> None:
        set_ = functools.partial(object.__setattr__, self)
        total = check_steps("total_steps", self.total_steps, minimum=1)
        set_("total_steps", total)
        set_("warmup_steps", check_steps("warmup_steps", self.warmup_steps, minimum=0))
        set_("start_step", check_steps("start_step", self.start_step, minimum=0))
        if self.start_step + total > MAX_STEP:
            raise ValueError(
                f"start_step + total_steps must be <= 2**63 - 1 (an int64 step count), got "
                f"{self.start_step} + {total}"
            )
        for name, value in check_shape_fields(cast(WSDFields, dataclasses.asdict(self))).items():
            set_(name, value)  # the shapes, their ratios and the decay lengths (``_fields``)
        set_("checkpoints", normalise_checkpoints(self.checkpoints, total))
        set_("period_peaks", normalise_peaks(self.period_peaks, self.min_ratio))
        set_("rewarmup_steps", check_steps("rewarmup_steps", self.rewarmup_steps, minimum=0))
        set_("rewarmup_shape", check_choice("rewarmup_shape", self.rewarmup_shape, WARMUP_SHAPES))
        set_("units", check_choice("units", self.units, UNITS))
        set_("tokens_per_step", check_clock(self.units, self.tokens_per_step))
        set_("rate_batch_exponent", check_batch_rule(self.rate_batch_exponent, self.tokens_per_step))
        if self.clock is not None:
            check_clock_range(self.clock, self.end_step, self.units)
        warn_if_rarely_meant(self._resolved)  # resolved now: periods, decays, warmup are validated

    @functools.cached_property
    def _resolved(self) -> Resolved:
        return resolve_fields(cast(WSDFields, dataclasses.asdict(self)))

    @functools.cached_property
    def _python_backend(self) -> PythonBackend:
        return PythonBackend(self._resolved)

    # --- the clock: update counts and the units they have consumed (``wsd_core._clock``) --------

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
        clock = cast(
            TokenRamp, require_clock(self, where="WSDSpec", to_turn=f"update {step!r} into {self.units}")
        )
        return clock.consumed(cast(int, step))  # piecewise linear for a real step

    def step_reaching(self, units: int) -> int:
        """The first update count whose units consumed reach ``units`` (``units`` itself for a spec
        in steps): where a boundary of the spec falls in update counts, e.g. for a ``SavePlan``."""
        units = check_int("units", units)
        if self.units == "steps":
            return units
        turn = f"{units} {self.units} into an update count"
        return cast(TokenRamp, require_clock(self, where="WSDSpec", to_turn=turn)).first_step_reaching(units)

    # --- evaluation on Python numbers --------------------------------------------------------

    def multiplier(self, step: int | float, *, in_units: bool = False) -> float:
        """m at update count ``step`` as a Python float, for ``LambdaLR`` and logging (well under a
        microsecond in the stable phase and after the end, about a microsecond in warmup and decay).
        For a spec in tokens or samples this is m(C(step)), C from its clock; ``in_units=True`` reads
        ``step`` as a count of the spec's own units instead (the contract's m itself).

        ``step`` is an int, or a real number for the real-valued extension; a bool or NaN is refused
        (array backends, which cannot raise inside ``jit``, return NaN for a NaN step)."""
        if type(step) is not int:  # the per-step LambdaLR path passes ints and skips this check
            step = check_step_value(step)
        if not in_units and self.units != "steps":
            step = self.units_at(step)
        return self._pieces.value(step)

    def stable_fraction(self, step: int | float, *, in_units: bool = False) -> float:
        """h at update count ``step`` (a count of the spec's units with ``in_units=True``) of a
        companion hyperparameter (``docs/contract.md``, "Companion hyperparameters"): 1 at the peak
        (warmup included), 0 at the floor, the rate's own decay progress in between. A companion's
        value is ``cooled + (stable - cooled) * h``.

        Examples:
          >>> spec = WSDSpec(1000, warmup_steps=100, decay_steps=200, decay_shape="linear", min_ratio=0.1)
          >>> [round(spec.stable_fraction(t), 3) for t in (0, 500, 900, 1000)]
          [1.0, 1.0, 0.5, 0.0]
        """
        if type(step) is not int:
            step = check_step_value(step)
        if not in_units and self.units != "steps":
            step = self.units_at(step)
        return float(stable_fraction(step, self._resolved, self._python_backend))

    def phase(self, step: int, *, in_units: bool = False) -> Phase:
        """The phase, period and progress of optimizer step ``step`` (any int, also negative); for a
        spec in tokens or samples, those at C(step), the units consumed before it (at ``step`` itself
        with ``in_units=True``)."""
        step = check_int("step", step)
        if not in_units:
            step = cast(int, self.units_at(step))
        return _phases.phase_at(self._resolved, step, self._segments, self.multiplier(step, in_units=True))

    def phase_table(self) -> str:
        """A human-readable table of the phases: steps, lengths and the multiplier at each end."""
        return _phases.phase_table(
            self._resolved, self.units, functools.partial(self.multiplier, in_units=True)
        )

    @functools.cached_property
    def _segments(self) -> list[_phases.Segment]:
        return _phases.segments(self._resolved)

    @functools.cached_property
    def _pieces(self) -> _phases.Pieces:
        return _phases.Pieces(self._resolved, self._python_backend, self._segments)

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

    # --- continuing a trunk and branching cooldowns (``wsd_core._branching``) ---------------------

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
        return _branching.extend(self, total_steps, at_step, type(self).from_dict)

    def continue_from(self, at_step: int, *, total_steps: int, **changes: Unpack[SpecChanges]) -> WSDSpec:
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
        return _branching.continue_from(self, at_step, total_steps, dict(changes), type(self).from_dict)

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
        return _branching.branch_cooldown(
            self, at_step, cooldown_steps, decay_shape, min_ratio, type(self).from_dict
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
        for name, default in NEW_DEFAULTS.items():  # left out at their defaults: 0.1's fields alone
            if out[name] == default:
                del out[name]
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


def resolve(spec: WSDSpec) -> Resolved:
    """The numbers ``spec`` resolves to (period ends, decay starts and lengths, in local steps),
    computed once per spec: what an array backend evaluates (``wsd_core.backend.evaluate``)."""
    return spec._resolved
