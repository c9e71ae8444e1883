"""``ForecastWatcher``: what both forecast callbacks do, with no framework: feed a ``Forecast`` from a
training loop and answer for logging, never raising into the loop it watches.

A monitor must not end the run it monitors. Every call into the forecast is guarded: whatever it
raises is a warning (once per kind of problem, naming the step; later ones are counted in
``problems``) and the observation or the forecast is skipped. What a loop may log and the
forecast cannot take is filtered first, each kind with its own warning: a loss that is not a finite
number > 0 (a NaN step, or Hugging Face's NaN filter logging 0.0), and steps past the trunk's end (the
run is longer than the trunk the forecast was given: nothing more to forecast). The trunk's last
update itself is the end of a run that trained exactly its trunk: skipped without a word.

The Lightning and Hugging Face callbacks (``wsd_plan.lightning``, ``wsd_plan.transformers``) are
adapters of this class to their framework's hooks.
"""

from __future__ import annotations

import collections
import logging
import warnings
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, Unpack

from wsd_core.backend import as_list, as_scalar, check_real
from wsd_plan._forecast import Forecast
from wsd_plan._grid import CooldownGrid, GridFields, grid_of
from wsd_plan._uncertainty import check_level

T = TypeVar("T")
RATE_CHECKS = 3  # logged rates compared with the trunk's, at the first logs that carry one
RATE_TOLERANCE = 0.01  # relative
TRAINING_LOSS = "the training loss"  # what a watcher forecasts until a callback's monitor is logged
_log = logging.getLogger("wsd_plan")


def checked_request(forecast: Any, grid: CooldownGrid, level: float) -> dict[str, Any]:
    """A callback's request, checked when it is built (not at its first evaluation, hours into a
    run), as ``Forecast.metrics`` takes it: the grid and the level."""
    if not isinstance(forecast, Forecast):
        raise TypeError(f"forecast must be a wsd_plan.Forecast, got {type(forecast).__name__}")
    late = [b for b in grid.budgets or () if b > forecast.end]
    if late:
        raise ValueError(
            f"budgets {late} end after the trunk (it ends at update {forecast.end:,}): a cooldown branches "
            "off the trunk, so a run can be no longer; give the Forecast the whole trunk"
        )
    return {"grid": grid, "level": check_level(level)}


class ForecastWatcher:
    """A ``Forecast`` fed from a training loop, answering with the metrics to log.

    Args:
      forecast: the ``Forecast`` of the run's trunk.
      grid: what to forecast (checked now): a ``CooldownGrid``, or its fields as keywords. Its
        ``lengths`` (and ``shapes``, ``min_ratios``) are the cooldowns from the current step
        (``forecast/now_<length>``); its ``budgets`` the run lengths whose best cooldown to log
        (``forecast/best_<budget>``, ``_branch``, ``_length``).
      level: the probability of the intervals.
    """

    def __init__(
        self, forecast: Forecast, grid: CooldownGrid | None = None, *, level: float = 0.9,
        **fields: Unpack[GridFields],
    ) -> None:  # fmt: skip
        if "budgets" in fields and not as_list(fields["budgets"]):  # budgets=(): no run to plan
            fields = {k: v for k, v in fields.items() if k != "budgets"}  # type: ignore[assignment]
        self.request = checked_request(forecast, grid_of(grid, fields), level)
        self.forecast = forecast
        self.problems: collections.Counter[str] = collections.Counter()  # occurrences by kind
        self._rates_checked = 0
        self.source = TRAINING_LOSS  # the loss the forecast is fed (``use``)

    def use(self, source: str, step: int) -> None:
        """Forecasts the loss named ``source`` from now on (a callback's ``monitor``, once it is
        logged): the observations of another loss are dropped, as the two are not one curve, and the
        switch is said once (the ``wsd_plan`` logger, at INFO)."""
        if source == self.source:
            return
        self.guarded(
            "starting afresh", step, lambda: self.forecast.load_state_dict({"steps": [], "losses": []})
        )
        _log.info("wsd_plan forecast: from step %d, forecasting %s instead of %s", step, source, self.source)
        self.source = source

    def warn(self, kind: str, message: str) -> None:
        """Warns of a problem of ``kind`` the first time; later ones are counted (``problems``)."""
        self.problems[kind] += 1
        if self.problems[kind] == 1:
            warnings.warn(
                f"wsd_plan forecast: {message} (later problems of this kind are counted in "
                "watcher.problems, not reported)",
                UserWarning,
                stacklevel=3,
            )

    def guarded(self, what: str, step: int, call: Callable[[], T]) -> T | None:
        """``call()``, or None with a warning when it raises anything (``what`` says what failed)."""
        try:
            return call()
        except Exception as e:  # a monitor never raises into the loop it watches
            text = str(e).splitlines()[0] if str(e) else ""
            reason = f"{type(e).__name__}: {text[:300]}"
            self.warn(f"{what}:{type(e).__name__}", f"at step {step} skipped: {what} failed ({reason})")
            return None

    def observe(self, steps: Sequence[Any], losses: Sequence[Any]) -> None:
        """Observes the losses logged at ``steps``, leaving out (with a warning) what the forecast
        cannot take; never raises."""
        kept_steps, kept_losses = [], []
        end = self.forecast.end
        for step, loss in zip(steps, losses, strict=True):
            step, loss = as_scalar(step), as_scalar(loss)
            if not _is_positive_number(loss):
                self.warn(
                    "loss",
                    f"the loss at step {step} is {loss!r}: skipped (a loss to forecast from must be a "
                    "finite number > 0)",
                )
            elif isinstance(step, int) and step >= end:
                if step > end:
                    self.warn(
                        "past the end",
                        f"step {step} is past the trunk's end (update {end:,}): nothing more to forecast; "
                        "the Forecast's trunk is shorter than the run",
                    )
            else:
                kept_steps.append(step)
                kept_losses.append(loss)
        if kept_steps:
            self.guarded("observing", kept_steps[-1], lambda: self.forecast.observe(kept_steps, kept_losses))

    def check_rate(self, step: int, rate: Any) -> None:
        """Compares the rate the loop logged at ``step`` (the rate of the next update) with the
        trunk's, at the first ``RATE_CHECKS`` logs: a forecast of another schedule than the one
        trained says nothing. Warns once when they differ by more than 1%."""
        if self._rates_checked >= RATE_CHECKS or self.problems["rate"]:
            return
        try:
            rate = check_real("rate", rate)  # a rate that is no finite number says nothing to compare
        except (TypeError, ValueError):
            return
        trunk, peak = self.forecast.trunk, self.forecast.peak
        expected = self.guarded(
            "reading the trunk's rate", step, lambda: [peak * trunk.multiplier(s) for s in (step, step - 1)]
        )
        if not expected:
            return
        self._rates_checked += 1
        if any(abs(rate - e) <= RATE_TOLERANCE * max(abs(e), 1e-300) or rate == e for e in expected):
            return
        self.warn(
            "rate",
            f"the learning rate logged at step {step} is {rate:.6g}, but the Forecast's trunk has "
            f"{expected[0]:.6g} there: a forecast assumes the trunk's rates. Train with the trunk's "
            "schedule (for the Hugging Face Trainer, optimizers=(optimizer, WSDLR(optimizer, "
            "spec=trunk))), or give the Forecast the schedule trained with",
        )

    def metrics(self, step: int) -> dict[str, float] | None:
        """``forecast.metrics`` of the request, or None: not enough observations yet, or (with a
        warning) the forecast failed."""
        if not self.guarded("checking the observations", step, lambda: self.forecast.ready):
            return None
        return self.guarded("the forecast", step, lambda: self.forecast.metrics(**self.request))

    def state_dict(self) -> dict[str, Any]:
        """The forecast's observations and the loss they are of (empty, with a warning, if they
        cannot be read)."""
        state = self.guarded("saving the observations", -1, self.forecast.state_dict)
        return {**(state if state is not None else {"steps": [], "losses": []}), "source": self.source}

    def load_state_dict(self, state: Any, step: int = -1) -> None:
        """Restores observations saved by ``state_dict`` (one saved before ``source`` existed is of
        the training loss); a state that is refused leaves the forecast as it was, with a warning."""
        source = state.get("source", TRAINING_LOSS) if isinstance(state, dict) else TRAINING_LOSS
        observations = {k: v for k, v in state.items() if k != "source"} if isinstance(state, dict) else state

        def restore() -> bool:
            self.forecast.load_state_dict(observations)
            return True

        if self.guarded("restoring the saved observations", step, restore):
            self.source = source if isinstance(source, str) else TRAINING_LOSS


def _is_positive_number(value: Any) -> bool:
    """Whether the core's number check takes ``value`` as a finite number > 0 (a watcher skips what
    it does not take, with a warning, instead of raising)."""
    try:
        check_real("value", value, positive=True)
    except (TypeError, ValueError):
        return False
    return True
