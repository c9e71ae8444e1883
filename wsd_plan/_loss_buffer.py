"""``LossBuffer``: a training loop's losses, kept on their device until a forecast needs them.

A callback sees each step's loss as a tensor on the accelerator; turning it into a float there
(``.item()``) would make every step wait for the device. The buffer keeps the detached tensors and
copies them all to the host in one transfer when a forecast is asked for (``flush``). Losses of
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

    def flush(self) -> tuple[list[int], list[float]]:
        """Every kept step and its mean loss as floats (one device-to-host copy), emptying the buffer;
        the buffer is emptied even if the copy fails (a loss that cannot be read is not kept forever)."""
        steps, losses, counts = self._steps, self._losses, self._counts
        self._steps, self._losses, self._counts = [], [], []
        if not steps:
            return [], []
        values = _to_floats(losses)
        return steps, [value / n for value, n in zip(values, counts, strict=True)]


def _to_floats(losses: list[Any]) -> list[float]:
    if any(hasattr(x, "detach") for x in losses):
        import torch

        return torch.stack([torch.as_tensor(x).float() for x in losses]).cpu().tolist()
    return [float(x) for x in losses]
