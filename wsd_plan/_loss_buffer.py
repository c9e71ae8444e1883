"""``LossBuffer``: a training loop's losses, kept on their device until a forecast needs them.

A callback sees each step's loss as a tensor on the accelerator; turning it into a float there
(``.item()``) would make every step wait for the device. The buffer keeps the detached tensors and
copies them all to the host in one transfer when a forecast is asked for (``flush_into``). Losses of
one step (gradient accumulation's micro-batches) are averaged into one observation.
"""

from __future__ import annotations

from typing import Any

from wsd_core.backend import check_int


class LossBuffer:
    """Losses by step, not yet observed by a ``Forecast``.

    Args:
      every: keep one step in ``every`` (1: all); micro-batches of a kept step are all kept.
    """

    def __init__(self, every: int = 1) -> None:
        self.every = check_int("every", every, minimum=1)
        self._steps: list[int] = []
        self._losses: list[Any] = []  # detached tensors or floats
        self._counts: list[int] = []

    def add(self, step: int, loss: Any) -> None:
        """Keeps ``loss`` (a scalar tensor or a number) of ``step`` (updates done before it)."""
        if step % self.every:
            return
        loss = loss.detach() if hasattr(loss, "detach") else float(loss)
        if self._steps and self._steps[-1] == step:  # another micro-batch of the same step
            self._losses[-1] = self._losses[-1] + loss
            self._counts[-1] += 1
            return
        self._steps.append(step)
        self._losses.append(loss)
        self._counts.append(1)

    def flush_into(self, forecast: Any) -> bool:
        """Observes every kept loss (one device-to-host copy) and empties the buffer; whether any was."""
        if not self._steps:
            return False
        values = _to_floats(self._losses)
        means = [v / n for v, n in zip(values, self._counts, strict=True)]
        forecast.observe(self._steps, means)
        self._steps, self._losses, self._counts = [], [], []
        return True


def _to_floats(losses: list[Any]) -> list[float]:
    if any(hasattr(x, "detach") for x in losses):
        import torch

        return torch.stack([torch.as_tensor(x).float() for x in losses]).cpu().tolist()
    return [float(x) for x in losses]
