"""``ForecastCallback`` for the Hugging Face ``Trainer``: the cooled-down loss forecast, logged as the
trunk trains.

The callback observes the training loss the Trainer logs (every ``logging_steps``: their mean) and,
after each evaluation and checkpoint save, logs ``wsd_plan.Forecast.metrics`` with ``Trainer.log``:
through the Trainer's reporting integrations (``report_to``: TensorBoard, W&B, ...) and into
``trainer.state.log_history``. Like transformers' own ``JITCheckpointCallback``, it logs through its
trainer, given with ``set_trainer``. Needs ``transformers`` (``pip install 'wsd-schedule[peers]'``).

Examples:
  ::

      forecast = Forecast(WSDSpec(100_000, warmup_steps=2000, decay_steps=0), peak=3e-4,
                          prior="prior.json")  # saved by wsd fit --save
      callback = ForecastCallback(forecast, lengths=[2000, 8000], budgets=[50_000])
      trainer = Trainer(model=model, args=args, train_dataset=data, callbacks=[callback])
      callback.set_trainer(trainer)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

try:
    from transformers import TrainerCallback
except ImportError as e:  # pragma: no cover - the extra is installed in CI
    raise ImportError(
        f"wsd_plan.transformers needs transformers ({e}): pip install 'wsd-schedule[peers]'"
    ) from None

from wsd_plan._forecast import Forecast, checked_request, forecast_or_warn


class ForecastCallback(TrainerCallback):
    """Feeds a ``Forecast`` with the logged training loss and logs its answer after evaluations and
    checkpoint saves.

    Args:
      forecast: the ``Forecast`` of this run's trunk (its ``trunk`` is the schedule trained with).
      lengths: cooldown lengths to forecast from the current step (``forecast/now_<length>``).
      budgets: run lengths whose best cooldown to log (``forecast/best_<budget>``, ``_branch``,
        ``_length``).
      shapes, min_ratios, level: as for ``Forecast.metrics``.
    """

    def __init__(
        self, forecast: Forecast, *, lengths: Iterable[int], budgets: Iterable[int] = (),
        shapes: Iterable[str] = ("1-sqrt",), min_ratios: Iterable[float] = (0.0,), level: float = 0.9,
    ) -> None:  # fmt: skip
        self.request = checked_request(forecast, lengths, budgets, shapes, min_ratios, level)
        self.forecast = forecast
        self.trainer: Any = None
        self.logged_at = -1  # the step of the last forecast logged

    def set_trainer(self, trainer: Any) -> ForecastCallback:
        """The Trainer to log through (``Trainer.log``); returns the callback."""
        self.trainer = trainer
        return self

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.trainer is None:
            raise ValueError(
                "ForecastCallback logs through its Trainer: call callback.set_trainer(trainer) after "
                "building the Trainer, before trainer.train()"
            )

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
        # the training loss (the mean over the last logging_steps); evaluations and this callback's
        # own logs have no "loss" key
        if logs and "loss" in logs and state.global_step > 0:
            self.forecast.observe(state.global_step, float(logs["loss"]))

    def on_evaluate(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._log(state)

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._log(state)

    def _log(self, state: Any) -> None:
        if state.global_step == self.logged_at:
            return  # logged at this step already (an evaluation and a checkpoint together)
        if not self.forecast.ready:
            return  # too few losses after the warmup to fit yet
        metrics = forecast_or_warn(self.forecast, self.request, state.global_step)
        if metrics is None:
            return
        self.logged_at = state.global_step
        self.trainer.log(metrics)
