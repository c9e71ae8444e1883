"""The core's interface for adapters: what ``wsd_jax``, ``wsd_torch`` and ``wsd_plan`` (and a new
backend written outside this project) build on, as ``equinox.internal`` is for equinox's own packages.

Users need none of it: they use ``WSDSpec`` and the adapters. An adapter imports from here and never
from a private ``wsd_core._`` module (``tests/test_layout.py`` checks it), so the core may move its
internals freely behind these names.

* **The formula.** ``evaluate(step, plan, ops)`` is the contract's m and ``stable_fraction`` a
  companion's h, written once on a ``Backend`` ``ops`` (the few array operations the formula needs).
  ``ArrayBackend`` implements it for any numpy-like module (period lookup without branches), and
  ``Resolved`` is the spec resolved to numbers (``resolve(spec)``).
* **The clock.** ``array_clock(spec, where=...)`` gives the range an update count may be clamped into
  exactly and the spec's token ramp, with the largest integer an evaluation forms; ``units_at``
  forms C(step) on any backend; ``require_clock`` refuses a spec in tokens without a clock.
* **Validation.** The checks every constructor of the project uses: each returns the value in its
  canonical type or raises an error naming the parameter, the value and the valid range.
* **Specs.** ``spec_from_args`` (a ``spec=`` or its fields, not both), ``spec_from_absolute``
  (absolute rates such as optax's ``end_value`` and torch's ``min_lr`` as the spec's ratios, the
  one conversion every adapter uses) and ``check_saved_spec`` (the load policy for a state saved
  under another spec).

The ``wsd`` command (``wsd_core.cli``) and the plots (``wsd_core.plot``) are modules of their own.
"""

from wsd_core._absolute import check_absolute as check_absolute
from wsd_core._absolute import spec_from_absolute as spec_from_absolute
from wsd_core._absolute import spec_from_args as spec_from_args
from wsd_core._clock import ArrayClock as ArrayClock
from wsd_core._clock import TokenRamp as TokenRamp
from wsd_core._clock import array_clock as array_clock
from wsd_core._clock import require_clock as require_clock
from wsd_core._clock import units_at as units_at
from wsd_core._formula import ArrayBackend as ArrayBackend
from wsd_core._formula import Backend as Backend
from wsd_core._formula import Resolved as Resolved
from wsd_core._formula import evaluate as evaluate
from wsd_core._formula import stable_fraction as stable_fraction
from wsd_core._spec import resolve as resolve
from wsd_core._spec_change import check_saved_spec as check_saved_spec
from wsd_core._validation import MAX_STEP as MAX_STEP
from wsd_core._validation import as_list as as_list
from wsd_core._validation import as_scalar as as_scalar
from wsd_core._validation import check_bool as check_bool
from wsd_core._validation import check_choice as check_choice
from wsd_core._validation import check_int as check_int
from wsd_core._validation import check_ratio as check_ratio
from wsd_core._validation import check_real as check_real
from wsd_core._validation import check_steps as check_steps
from wsd_core._validation import is_bool as is_bool
from wsd_core._validation import is_sequence as is_sequence

__all__ = [
    "MAX_STEP",
    "ArrayBackend",
    "ArrayClock",
    "Backend",
    "Resolved",
    "TokenRamp",
    "array_clock",
    "as_list",
    "as_scalar",
    "check_absolute",
    "check_bool",
    "check_choice",
    "check_int",
    "check_ratio",
    "check_real",
    "check_saved_spec",
    "check_steps",
    "evaluate",
    "is_bool",
    "is_sequence",
    "require_clock",
    "resolve",
    "spec_from_absolute",
    "spec_from_args",
    "stable_fraction",
    "units_at",
]
