"""A drop-in for torchtitan's ``LRSchedulersContainer.Config``: the same fields, our container.

torchtitan's trainer builds its schedulers with ``config.lr_scheduler.build(optimizers=...,
training_steps=...)``; this config builds a ``WSDSchedulersContainer`` whose curve is torchtitan's
(``wsd_core.presets.from_torchtitan``) and which torchtitan's trainer runs unchanged. torchtitan itself is not
imported here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from torch.optim import Optimizer

from wsd_core import WSDSpec
from wsd_core.presets import from_torchtitan
from wsd_torch._container import WSDSchedulersContainer


@dataclasses.dataclass(kw_only=True)
class WSDLRSchedulersConfig:
    """torchtitan's ``[lr_scheduler]`` fields, building a ``WSDSchedulersContainer``.

    Set it as the trainer config's ``lr_scheduler`` (``config.lr_scheduler = WSDLRSchedulersConfig(
    warmup_steps=..., decay_ratio=...)``). The fields mean what they mean in torchtitan 0.3.0; the
    extra ones are ours.

    Attributes:
      warmup_steps: as in torchtitan.
      total_steps: as in torchtitan.
      decay_ratio: as in torchtitan.
      decay_type: as in torchtitan.
      min_lr_factor: as in torchtitan.
      legacy: torchtitan's older formula (see ``wsd_core.presets.from_torchtitan``).
      device_resident: ``WSDDeviceLR`` schedulers (no host sync) instead of ``WSDLR``.
      on_spec_change: ``"continue"`` to resume a checkpoint saved under another spec (a longer run).
      adopt_foreign_state: resume from a checkpoint of torchtitan's own container (its step count).

    Examples:
      >>> import torch
      >>> opts = [torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)]
      >>> container = WSDLRSchedulersConfig(warmup_steps=2, decay_ratio=0.5).build(
      ...     optimizers=opts, training_steps=10)
      >>> container.schedulers[0].spec.decay_starts
      (5,)
    """

    warmup_steps: int = 200
    total_steps: int | None = None
    decay_ratio: float | None = None
    decay_type: str = "linear"
    min_lr_factor: float = 0.0
    legacy: bool = False
    device_resident: bool = False
    on_spec_change: str = "refuse"
    adopt_foreign_state: bool = False

    def spec(self, training_steps: int) -> WSDSpec:
        """The spec of torchtitan's curve for a run of ``training_steps``."""
        return from_torchtitan(
            training_steps,
            warmup_steps=self.warmup_steps,
            decay_ratio=self.decay_ratio,
            decay_type=self.decay_type,
            min_lr_factor=self.min_lr_factor,
            total_steps=self.total_steps,
            legacy=self.legacy,
        )

    def build(
        self, *, optimizers: Iterable[Optimizer], training_steps: int, **_: object
    ) -> WSDSchedulersContainer:
        """What torchtitan's trainer calls: one scheduler per optimizer of its ``OptimizersContainer``."""
        return WSDSchedulersContainer.for_optimizers(
            optimizers,
            spec=self.spec(training_steps),
            device_resident=self.device_resident,
            on_spec_change=self.on_spec_change,
            adopt_foreign_state=self.adopt_foreign_state,
        )
