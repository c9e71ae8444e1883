"""``ForecastCallback`` for the Hugging Face ``Trainer``: the cooled-down loss forecast, logged as the
trunk trains.

The callback forecasts the evaluation loss ``monitor`` (default ``"eval_loss"``, what the Trainer's
evaluation reports) once an evaluation reports it; until then (or with ``monitor=None``) the training
loss the Trainer logs (every ``logging_steps``: their mean). ``callback.watcher.source`` says which
loss is forecast; the switch is said once on the ``wsd_plan`` logger. After each evaluation and
checkpoint save it logs ``wsd_plan.Forecast.metrics`` with ``Trainer.log`` (at the step of the
evaluation):
through the Trainer's reporting integrations (``report_to``: TensorBoard, W&B, ...) and into
``trainer.state.log_history``. Like transformers' own ``JITCheckpointCallback``, it logs through its
trainer, given with ``set_trainer``. Needs ``transformers``
(``pip install 'wsd-schedule[plan,transformers]'``).

It never stops training (``wsd_plan._watch``): a logged loss that is not finite or not > 0 (the
Trainer's NaN filter logs 0.0), a step past the trunk, or a forecast that fails is a warning. At the
first logs it compares the Trainer's learning rate with the trunk's and warns when they differ (the
Trainer's default schedule is a linear decay from 5e-5, not the trunk). Its observations are saved in
each checkpoint's ``trainer_state.json`` and restored when training resumes from it.

Examples:
  ::

      forecast = Forecast(WSDSpec(100_000, warmup_steps=2000, decay_steps=0), peak=3e-4,
                          prior="prior.json")  # saved by wsd fit --save
      optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)
      callback = ForecastCallback(forecast, lengths=[2000, 8000], budgets=[50_000])
      trainer = Trainer(model=model, args=args, train_dataset=data, callbacks=[callback],
                        optimizers=(optimizer, WSDLR(optimizer, spec=forecast.trunk)))
      callback.set_trainer(trainer)
"""

from __future__ import annotations

from typing import Unpack

try:
    from transformers import Trainer, TrainerCallback, TrainerControl, TrainerState, TrainingArguments
except ImportError as e:  # pragma: no cover - the extra is installed in CI
    raise ImportError(
        f"wsd_plan.transformers needs transformers ({e}): pip install 'wsd-schedule[plan,transformers]'"
    ) from None

from wsd_plan._forecast import Forecast
from wsd_plan._grid import CooldownGrid, GridFields
from wsd_plan._watch import TRAINING_LOSS, ForecastWatcher

# Where the observations ride in a checkpoint: an entry of TrainerState.stateful_callbacks, which the
# Trainer writes into every checkpoint's trainer_state.json and reads back on resume. (Not the
# callback's class name: with restore_callback_states_from_checkpoint=True the Trainer would rebuild
# a callback of that name from saved arguments, which a Forecast is not.)
STATE_KEY = "wsd_plan.ForecastCallback"


class ForecastCallback(TrainerCallback):
    """Feeds a ``Forecast`` with the logged training loss and logs its answer after evaluations and
    checkpoint saves.

    Args:
      forecast: the ``Forecast`` of this run's trunk (its ``trunk`` is the schedule trained with).
      grid: what to forecast: a ``CooldownGrid`` or its fields as keywords (``lengths=``, ``budgets=``,
        ...), and ``level``: as for ``ForecastWatcher``, which does the work (checked now).
      monitor: the evaluation metric to forecast once an evaluation reports it; None: the
        training loss throughout.
    """

    def __init__(
        self, forecast: Forecast, grid: CooldownGrid | None = None, *, level: float = 0.9,
        monitor: str | None = "eval_loss", **fields: Unpack[GridFields],
    ) -> None:  # fmt: skip
        self.watcher = ForecastWatcher(forecast, grid, level=level, **fields)
        if monitor is not None and not isinstance(monitor, str):
            raise TypeError(f"monitor must be the name of an evaluation metric or None, got {monitor!r}")
        self.monitor = monitor
        self.forecast = forecast
        self.trainer: Trainer | None = None
        self.logged_at = -1  # the step of the last forecast logged

    def set_trainer(self, trainer: Trainer) -> ForecastCallback:
        """The Trainer to log through (``Trainer.log``); returns the callback."""
        self.trainer = trainer
        return self

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: object
    ) -> None:
        if self.trainer is None:
            raise ValueError(
                "ForecastCallback logs through its Trainer: call callback.set_trainer(trainer) after "
                "building the Trainer, before trainer.train()"
            )
        saved = (getattr(state, "stateful_callbacks", None) or {}).get(STATE_KEY)
        if saved is not None and state.global_step > 0:  # resumed from a checkpoint that has them
            self.watcher.load_state_dict(saved, state.global_step)

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: object
    ) -> None:
        if control.should_save:
            self._keep_in(state)

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, float] | None = None,
        **kwargs: object,
    ) -> None:
        # the training loss (the mean over the last logging_steps); evaluations and this callback's
        # own logs have no "loss" key
        if logs and "loss" in logs and state.global_step > 0:
            if "learning_rate" in logs:
                self.watcher.check_rate(state.global_step, logs["learning_rate"])
            if self.watcher.source == TRAINING_LOSS:
                self.watcher.observe([state.global_step], [logs["loss"]])
            if control.should_save:  # this log comes before the checkpoint it belongs to
                self._keep_in(state)

    def _keep_in(self, state: TrainerState) -> None:
        """The observations into the TrainerState, which the checkpoint about to be written saves."""
        stateful = getattr(state, "stateful_callbacks", None)
        if isinstance(stateful, dict):
            stateful[STATE_KEY] = self.watcher.state_dict()

    def on_evaluate(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: object
    ) -> None:
        metrics = kwargs.get("metrics")
        value = metrics.get(self.monitor) if isinstance(metrics, dict) and self.monitor else None
        if value is not None and state.global_step > 0:
            self.watcher.use(str(self.monitor), state.global_step)
            self.watcher.observe([state.global_step], [value])
        self._log(state)

    def on_save(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: object
    ) -> None:
        self._log(state)

    def _log(self, state: TrainerState) -> None:
        if state.global_step == self.logged_at:
            return  # logged at this step already (an evaluation and a checkpoint together)
        metrics = self.watcher.metrics(state.global_step)
        if not metrics:
            return
        self.logged_at = state.global_step
        trainer = self.trainer
        if trainer is not None:  # (on_train_begin made sure)
            self.watcher.guarded("logging", state.global_step, lambda: trainer.log(metrics))
