"""WSD learning-rate schedules for PyTorch, on the same formula as ``wsd_jax`` (jax not needed;
``pip install 'wsd-schedule[torch]'``).

>>> import torch
>>> from wsd_torch import WSDLR
>>> opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(3))], lr=3e-4)
>>> scheduler = WSDLR(opt, total_steps=10_000, warmup_steps=500, decay_ratio=0.2)
"""

try:
    import torch as _torch  # noqa: F401
except ImportError as _missing:
    raise ImportError("wsd_torch needs PyTorch: pip install 'wsd-schedule[torch]'") from _missing

from wsd_core import Phase as Phase
from wsd_core import WSDSpec as WSDSpec
from wsd_core import __version__ as __version__
from wsd_torch._backend import multiplier_tensor as multiplier_tensor
from wsd_torch._companion import WSDCompanion as WSDCompanion
from wsd_torch._container import WSDSchedulersContainer as WSDSchedulersContainer
from wsd_torch._device_lr import WSDDeviceLR as WSDDeviceLR
from wsd_torch._lambda_lr import WSDLR as WSDLR
from wsd_torch._torchtitan import WSDLRSchedulersConfig as WSDLRSchedulersConfig

__all__ = [
    "WSDLR",
    "Phase",
    "WSDCompanion",
    "WSDDeviceLR",
    "WSDLRSchedulersConfig",
    "WSDSchedulersContainer",
    "WSDSpec",
    "__version__",
    "multiplier_tensor",
]
