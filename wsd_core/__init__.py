"""Framework-free core of the WSD schedule: the spec, its validation and the formula, written once.

Neither jax nor torch is imported here; ``wsd_jax`` and ``wsd_torch`` evaluate the same formula
(``docs/contract.md``). The formula's backend interface (``wsd_core._formula``) is internal.
"""

from wsd_core._checkpoint_steps import SavePlan as SavePlan
from wsd_core._formula import DECAY_SHAPES as DECAY_SHAPES
from wsd_core._formula import WARMUP_SHAPES as WARMUP_SHAPES
from wsd_core._spec import Phase as Phase
from wsd_core._spec import WSDSpec as WSDSpec
from wsd_core._version import __version__ as __version__

__all__ = [
    "DECAY_SHAPES",
    "WARMUP_SHAPES",
    "Phase",
    "SavePlan",
    "WSDSpec",
    "__version__",
]
