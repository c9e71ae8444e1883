"""``ForecastCallback`` for Lightning: the cooled-down loss forecast, logged as the trunk trains.

It forecasts the validation loss ``monitor`` (default ``"val_loss"``, what ``self.log("val_loss",
...)`` in ``validation_step`` logs) once one is logged: at each validation end it feeds that value,
at the updates done, to a ``wsd_plan.Forecast`` and logs its ``metrics`` through the trainer's
loggers (TensorBoard, W&B, CSV...) at the step Lightning logs validation metrics at. Until then
(or with ``monitor=None``) it forecasts the training loss: each training batch's loss is kept as a
detached tensor (no device-to-host copy on the step's path) and the kept losses are copied to the
host at once at each validation end and checkpoint save. ``callback.watcher.source`` says which
loss is forecast; the switch is said once on the ``wsd_plan`` logger. The callback never stops
training: a loss that is not finite or not > 0, a step past the trunk, or a forecast that fails is a
warning, and training goes on (``wsd_plan._watch``). Needs ``lightning``
(``pip install 'wsd-schedule[plan,lightning]'``).

Examples:
  A trunk of 100,000 updates at 3e-4, a prior from the published 100M model's runs::

      prior = fit_loss_law(list(published_runs("lm-100M").values()))  # or a path: "prior.json"
      forecast = Forecast(WSDSpec(100_000, warmup_steps=2000, decay_steps=0), peak=3e-4, prior=prior)
      trainer = L.Trainer(callbacks=[ForecastCallback(forecast, lengths=[2000, 8000], budgets=[50_000])])
"""

from __future__ import annotations

import functools
from typing import Any, Unpack

try:
    import lightning as L
except ImportError as e:  # pragma: no cover - the extra is installed in CI
    raise ImportError(
        f"wsd_plan.lightning needs lightning ({e}): pip install 'wsd-schedule[plan,lightning]'"
    ) from None

from wsd_plan._forecast import Forecast
from wsd_plan._grid import CooldownGrid, GridFields
from wsd_plan._loss_buffer import LossBuffer
from wsd_plan._watch import TRAINING_LOSS, ForecastWatcher


class ForecastCallback(L.Callback):
    """Feeds a ``Forecast`` with the training loss and logs its answer at validation and checkpoints.

    Args:
      forecast: the ``Forecast`` of this run's trunk (its ``trunk`` is the schedule trained with).
      grid: what to forecast: a ``CooldownGrid`` or its fields as keywords (``lengths=``, ``budgets=``,
        ...), and ``level``: as for ``ForecastWatcher``, which does the work (checked now).
      every: observe one training batch in ``every`` (1: all).
      monitor: the logged validation loss to forecast once it is logged (``trainer.callback_metrics``);
        None: the training loss throughout.
    """

    def __init__(
        self, forecast: Forecast, grid: CooldownGrid | None = None, *, level: float = 0.9,
        every: int = 1, monitor: str | None = "val_loss", **fields: Unpack[GridFields],
    ) -> None:  # fmt: skip
        self.watcher = ForecastWatcher(forecast, grid, level=level, **fields)
        if monitor is not None and not isinstance(monitor, str):
            raise TypeError(f"monitor must be the name of a logged metric or None, got {monitor!r}")
        self.monitor = monitor
        self.forecast = forecast
        self.buffer = LossBuffer(every)
        self.logged: dict[str, float] = {}  # the last metrics logged
        self._step = 0

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: object, batch_idx: int
    ) -> None:
        self._step = trainer.global_step  # the updates done before this batch's loss

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: object, batch_idx: int
    ) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if loss is not None and self.watcher.source == TRAINING_LOSS:
            self.watcher.guarded("keeping the loss", self._step, lambda: self.buffer.add(self._step, loss))

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        value = trainer.callback_metrics.get(self.monitor) if self.monitor is not None else None
        if value is not None:  # the validation loss: the model after global_step updates
            step = trainer.global_step
            self.watcher.guarded("switching to the monitored loss", step, lambda: self._use_monitor(step))
            self.watcher.observe([step], [self.watcher.guarded("reading it", step, lambda: float(value))])
        self._log(trainer)

    def _use_monitor(self, step: int) -> None:
        if self.watcher.source != self.monitor:
            self.buffer.flush()  # the training losses kept so far are of another curve
            self.watcher.use(str(self.monitor), step)

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        self._log(trainer)

    def _flush(self, step: int) -> None:
        """The kept losses, copied to the host at once and observed (what cannot be observed is left
        out with a warning)."""
        kept = self.watcher.guarded("copying the losses to the host", step, self.buffer.flush)
        if kept:
            self.watcher.observe(*kept)

    def _log(self, trainer: L.Trainer) -> None:
        step = trainer.global_step
        if self.watcher.source == TRAINING_LOSS:
            self._flush(step)
        metrics = self.watcher.metrics(step)
        if not metrics or metrics == self.logged:
            return  # nothing yet, or already logged at this step (validation and a checkpoint together)
        self.logged = metrics
        at = _logging_step(trainer)
        for logger in trainer.loggers:
            log = functools.partial(logger.log_metrics, metrics, step=at)
            self.watcher.guarded("logging", step, log)

    def state_dict(self) -> dict[str, Any]:
        """The forecast's observations (saved in Lightning's checkpoints, restored on resume)."""
        if self.watcher.source == TRAINING_LOSS:
            self._flush(self._step)
        return self.watcher.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.watcher.load_state_dict(state_dict)


def _logging_step(trainer: L.Trainer) -> int:
    """The step Lightning logs metrics at now: validation metrics at the count of batches that
    stepped (one less than ``global_step`` at a validation inside an epoch), so that a forecast sits
    beside the validation loss it forecasts; ``global_step`` where that count is not there."""
    stepped = getattr(
        getattr(getattr(trainer, "fit_loop", None), "epoch_loop", None), "_batches_that_stepped", None
    )
    return stepped if isinstance(stepped, int) else trainer.global_step
