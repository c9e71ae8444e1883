"""Framework-free core of the WSD schedule: the spec, its validation and the formula, written once.

Neither jax nor torch is imported here; ``wsd_jax`` and ``wsd_torch`` evaluate the same formula
(``docs/contract.md``). The peers' curves are the functions of ``wsd_core.presets``; the adapters'
interface is ``wsd_core.backend``.
"""

from wsd_core import _deprecated  # noqa: F401 (the spellings of 0.1, with a warning, until 0.3)
from wsd_core import presets as presets
from wsd_core._checkpoint_steps import SavePlan as SavePlan
from wsd_core._fields import WSDFields as WSDFields
from wsd_core._formula import DECAY_SHAPES as DECAY_SHAPES
from wsd_core._formula import WARMUP_SHAPES as WARMUP_SHAPES
from wsd_core._phases import Phase as Phase
from wsd_core._spec import WSDSpec as WSDSpec
from wsd_core._version import __version__ as __version__

__all__ = [
    "DECAY_SHAPES",
    "WARMUP_SHAPES",
    "Phase",
    "SavePlan",
    "WSDFields",
    "WSDSpec",
    "__version__",
    "presets",
]
