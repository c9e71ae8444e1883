"""WSD learning-rate schedules for PyTorch (the bridge is being built; see issue 3)."""

from wsd_core import Phase as Phase
from wsd_core import WSDSpec as WSDSpec

__all__ = ["Phase", "WSDSpec"]
