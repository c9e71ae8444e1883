"""Section 9, the forecast callbacks' cost: a training step with the callback on against off.

The callbacks do no fitting on a training step's path: Lightning's keeps each step's loss tensor
(detached, no device-to-host copy), Hugging Face's reads the loss the Trainer already logs. What a
step pays is measured as whole training runs side by side, the callback on and off, with no
validation or checkpoint (where the forecast itself runs, and which both runs would pay alike but
for the forecast): the paired ratio of their times. The forecast's own cost at an evaluation (a warm
refit and the ``metrics`` of two lengths and one budget) is reported beside it, in seconds.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np

from benchmarks._timing import Row
from wsd_core import WSDSpec
from wsd_plan import Forecast, LossLawFit, ModelLadder, fit_loss_law, published_runs

LR, WARMUP = 0.01, 20
TRUNK = WSDSpec(100_000, warmup_steps=WARMUP, decay_steps=0)
PRIOR = LossLawFit(
    "multi-power", dict(L0=0.2, A=0.3, alpha=1.5, B=3.0, C=2.0, beta=0.6, gamma=0.6), {}, 0.0,
    fitted_peaks=(LR, LR), covariance=np.eye(7) * 0.01, residual_scale=0.01,
)  # fmt: skip


def _lightning_step_times(steps: int) -> tuple[list[float], list[float]]:
    """One training run whose steps alternate, in blocks of 10, between the callback on and off:
    each step's time (from its batch's start to the next), by arm. Side by side in one run, so the
    machine's drift between runs does not enter the ratio."""
    import lightning as L
    import torch

    from wsd_plan.lightning import ForecastCallback

    torch.manual_seed(0)
    data = torch.utils.data.TensorDataset(torch.randn(steps * 128, 512), torch.randn(steps * 128))

    class Module(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = torch.nn.Sequential(
                torch.nn.Linear(512, 1024), torch.nn.ReLU(), torch.nn.Linear(1024, 1)
            )

        def training_step(self, batch: Any, _: int) -> Any:
            x, y = batch
            return torch.nn.functional.mse_loss(self.net(x).squeeze(-1), y)

        def configure_optimizers(self) -> Any:
            return torch.optim.SGD(self.parameters(), lr=LR)

        def train_dataloader(self) -> Any:
            return torch.utils.data.DataLoader(data, batch_size=128)

    inner = ForecastCallback(Forecast(TRUNK, peak=LR, prior=PRIOR), lengths=[100])
    times: dict[bool, list[float]] = {True: [], False: []}

    class Alternating(L.Callback):
        def __init__(self) -> None:
            self.last: tuple[float, bool] | None = None

        def on_train_batch_start(self, trainer: Any, module: Any, batch: Any, i: int) -> None:
            now, on = time.perf_counter(), (i // 10) % 2 == 0
            if self.last is not None:
                times[self.last[1]].append(now - self.last[0])
            self.last = (now, on)
            if on:
                inner.on_train_batch_start(trainer, module, batch, i)

        def on_train_batch_end(self, trainer: Any, module: Any, outputs: Any, batch: Any, i: int) -> None:
            if (i // 10) % 2 == 0:
                inner.on_train_batch_end(trainer, module, outputs, batch, i)

    trainer = L.Trainer(
        max_steps=steps, accelerator="cpu", logger=False, enable_progress_bar=False,
        enable_model_summary=False, enable_checkpointing=False, callbacks=[Alternating()],
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(Module())
    return times[True], times[False]


def callback_overhead(repeats: int, steps: int = 400) -> list[Row]:
    """The Lightning step with the callback on / off, its hooks' own cost, and a forecast's cost at
    an evaluation."""
    try:
        runs = [_lightning_step_times(steps) for _ in range(repeats)]
    except ImportError as e:
        return [Row("9 forecast", f"skipped: {e}", "-")]
    ratios = sorted(float(np.median(on) / np.median(off)) for on, off in runs)
    median, step_ms = float(np.median(ratios)), 1e3 * float(np.median([np.median(off) for _, off in runs]))
    return [
        Row("9 forecast", f"Lightning training step ({step_ms:.1f} ms), ForecastCallback on / off",
            f"{median:.4f} (runs {ratios[0]:.3f}-{ratios[-1]:.3f})", "<= 1.01",
            "met" if median <= 1.01 else "missed", "a monitor must not slow the run it monitors"),
        Row("9 forecast", "the callback's hooks per training step", f"{_hook_microseconds():.1f} us"),
        Row("9 forecast", "a warm forecast at an evaluation (refit + now + plan)",
            f"{_forecast_seconds():.3f} s"),
        Row("9 forecast", "a warm Forecast.now() on the shipped curves (lm-100M trunk, lm-25M prior)",
            f"{(now := _now_seconds()):.3f} s", "<= 0.05 s", "met" if now <= 0.05 else "missed",
            "an answer at every evaluation must cost less than the evaluation"),
        Row("9 forecast", "the same with a ModelLadder prior (of the lm-25M fit, for 100M parameters)",
            f"{(now := _now_seconds(ladder=True)):.3f} s", "<= 0.05 s", "met" if now <= 0.05 else "missed",
            "an answer at every evaluation must cost less than the evaluation"),
    ]  # fmt: skip


def _hook_microseconds(calls: int = 20_000) -> float:
    """Lightning's two per-step hooks of the callback, called directly: microseconds per step."""
    import torch

    from wsd_plan.lightning import ForecastCallback

    callback = ForecastCallback(Forecast(TRUNK, peak=LR, prior=PRIOR), lengths=[100])
    loss = torch.tensor(1.0, requires_grad=True) * 2.0

    class Trainer:
        global_step = 0

    trainer, outputs = Trainer(), {"loss": loss}
    start = time.perf_counter()
    for step in range(calls):
        trainer.global_step = step
        callback.on_train_batch_start(trainer, None, None, step)  # type: ignore[arg-type]
        callback.on_train_batch_end(trainer, None, outputs, None, step)  # type: ignore[arg-type]
    return (time.perf_counter() - start) / calls * 1e6


def _forecast_seconds() -> float:
    """The median time of ``metrics`` after 20 more observations, once compiled."""
    forecast = Forecast(TRUNK, peak=LR, prior=PRIOR)
    steps = np.arange(WARMUP + 10, 20_000, 10)
    losses = 0.2 + 0.3 * (LR * steps) ** -1.5
    times = []
    forecast.observe(steps[:180], losses[:180])
    for i in range(200, steps.size, 20):
        forecast.observe(steps[i - 20 : i], losses[i - 20 : i])
        start = time.perf_counter()
        forecast.metrics(lengths=[1000, 4000], budgets=[50_000])
        times.append(time.perf_counter() - start)
    return float(np.median(times[3:]))


def _now_seconds(ladder: bool = False) -> float:
    """The median time of ``now`` on a real trunk (the published 100M model's constant run, the
    published 25M model's runs as the prior, or a ``ModelLadder`` of them), four new logged points
    before each, once compiled."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prior: Any = fit_loss_law(list(published_runs("lm-25M").values()))
    if ladder:
        prior = ModelLadder({25e6: prior}, parameters=100e6)
    trunk = published_runs("lm-100M")["constant_72000"]
    forecast = Forecast(WSDSpec(72_000, warmup_steps=2160, decay_steps=0), peak=3e-4, prior=prior)
    first = trunk.steps.size // 4
    forecast.observe(trunk.steps[:first], trunk.losses[:first])
    forecast.now(lengths=[2000, 4000])  # compiles
    times = []
    for i in range(first, trunk.steps.size, 4):
        forecast.observe(trunk.steps[i : i + 4], trunk.losses[i : i + 4])
        start = time.perf_counter()
        forecast.now(lengths=[2000, 4000])
        times.append(time.perf_counter() - start)
    return float(np.median(times))
