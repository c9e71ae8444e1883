"""The forecast callbacks in real training runs: Lightning's ``Trainer`` and Hugging Face's, each
training a small model under a constant trunk, each logging the forecast through the framework's own
TensorBoard logger, read back from the event files it wrote."""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests import peers
from wsd_core import WSDSpec

pytest.importorskip("jax")
pytest.importorskip("scipy")
pytest.importorskip("tensorboard")
torch = pytest.importorskip("torch")

from wsd_plan import Forecast, LossLawFit  # noqa: E402 (after the skips: wsd_plan needs jax)
from wsd_plan._loss_buffer import LossBuffer  # noqa: E402
from wsd_plan._tensorboard import read_event_log  # noqa: E402

LR, STEPS, WARMUP = 0.02, 160, 10
TRUNK = WSDSpec(10_000, warmup_steps=WARMUP, decay_steps=0)
PRIOR = LossLawFit(
    "multi-power", dict(L0=0.2, A=0.3, alpha=1.5, B=3.0, C=2.0, beta=0.6, gamma=0.6), {}, 0.0,
    fitted_peaks=(LR, LR), covariance=np.eye(7) * 0.01, residual_scale=0.01,
)  # fmt: skip


class _Regression(torch.nn.Module):  # type: ignore[name-defined]
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.linear = torch.nn.Linear(8, 1)

    def forward(self, x, y):
        return torch.nn.functional.mse_loss(self.linear(x).squeeze(-1), y)


def _data(n: int = STEPS * 16) -> list[dict[str, Any]]:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, 8, generator=g)
    y = x @ torch.linspace(-1, 1, 8) + 0.5 * torch.randn(n, generator=g)
    return [{"x": x[i], "y": y[i]} for i in range(n)]


def _rates(spec: WSDSpec) -> Any:
    return lambda step: spec.multiplier(step)


def _logged(folder: Path, tag: str) -> tuple[list[int], list[float]]:
    files = sorted(folder.rglob("events.out.tfevents.*"))
    assert files, f"no event file under {folder}"
    found = [read_event_log(f, loss_column=tag) for f in files if tag in _tags(f)]
    assert found, f"{tag} was not logged"
    return found[0].steps.tolist(), found[0].losses.tolist()


def _tags(path: Path) -> list[str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(path))
    acc.Reload()
    return acc.Tags().get("scalars", [])


def _check_forecast_logged(folder: Path, prefix: str = "") -> None:
    steps, now = _logged(folder, f"{prefix}forecast/now_40")
    _, low = _logged(folder, f"{prefix}forecast/now_40_low")
    _, high = _logged(folder, f"{prefix}forecast/now_40_high")
    assert len(steps) >= 2 and steps == sorted(steps)
    for a, b, c in zip(low, now, high, strict=True):
        assert math.isfinite(b) and a <= b <= c
    _, branch = _logged(folder, f"{prefix}forecast/best_240_branch")
    assert branch and all(b + 40 == 240 or b + 80 == 240 for b in branch)


@pytest.mark.slow
@pytest.mark.skipif(not peers.installed("lightning"), reason="lightning not installed (integrations extra)")
def test_lightning_logs_the_forecast_through_its_tensorboard_logger(tmp_path):
    import lightning as L
    from lightning.pytorch.loggers import TensorBoardLogger

    from wsd_plan.lightning import ForecastCallback

    data = _data()

    class Module(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = _Regression()

        def training_step(self, batch, _):
            return self.net(batch["x"], batch["y"])

        def validation_step(self, batch, _):
            self.log("val_loss", self.net(batch["x"], batch["y"]))

        def configure_optimizers(self):
            opt = torch.optim.SGD(self.parameters(), lr=LR)
            sched = torch.optim.lr_scheduler.LambdaLR(opt, _rates(TRUNK))
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

        def train_dataloader(self):
            return torch.utils.data.DataLoader(data, batch_size=16)

        def val_dataloader(self):
            return torch.utils.data.DataLoader(data[:64], batch_size=64)

    callback = ForecastCallback(Forecast(TRUNK, peak=LR, prior=PRIOR), lengths=[40, 80], budgets=[240])
    trainer = L.Trainer(
        max_steps=STEPS, accelerator="cpu", logger=TensorBoardLogger(tmp_path, name="run"),
        callbacks=[callback], val_check_interval=40, limit_val_batches=1, enable_progress_bar=False,
        enable_model_summary=False, enable_checkpointing=False, log_every_n_steps=10,
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lightning's notes on workers and dataloader sizes
        trainer.fit(Module())
    _check_forecast_logged(tmp_path / "run")
    # every training batch was observed once, at the updates done before it
    observed = callback.forecast.state_dict()["steps"]
    assert observed == list(range(STEPS - 1)) or observed == list(range(STEPS))
    # the observations go into Lightning's checkpoints and come back
    again = ForecastCallback(Forecast(TRUNK, peak=LR, prior=PRIOR), lengths=[40])
    again.load_state_dict(callback.state_dict())
    assert again.forecast.state_dict() == callback.forecast.state_dict()


@pytest.mark.slow
@pytest.mark.skipif(not peers.installed("transformers"), reason="transformers not installed")
def test_hf_trainer_logs_the_forecast_through_its_tensorboard_integration(tmp_path, monkeypatch):
    from transformers import Trainer, TrainingArguments

    from wsd_plan.transformers import ForecastCallback

    class Model(_Regression):
        def forward(self, x, y):
            return {"loss": super().forward(x, y)}

    monkeypatch.setenv("TENSORBOARD_LOGGING_DIR", str(tmp_path / "tb"))
    args = TrainingArguments(
        output_dir=str(tmp_path / "out"), max_steps=STEPS, per_device_train_batch_size=16, logging_steps=4,
        eval_strategy="steps", eval_steps=40, save_strategy="no", report_to=["tensorboard"], use_cpu=True,
        learning_rate=LR, lr_scheduler_type="constant_with_warmup", warmup_steps=WARMUP, disable_tqdm=True,
        optim="sgd",
    )  # fmt: skip
    data = _data()
    callback = ForecastCallback(Forecast(TRUNK, peak=LR, prior=PRIOR), lengths=[40, 80], budgets=[240])
    trainer = Trainer(
        model=Model(), args=args, train_dataset=data, eval_dataset=data[:64], callbacks=[callback]
    )
    callback.set_trainer(trainer)
    trainer.train()
    _check_forecast_logged(tmp_path / "tb", prefix="train/")  # (the Trainer prefixes what it logs)
    logged = [h for h in trainer.state.log_history if "forecast/now_40" in h]
    assert [h["step"] for h in logged] == [40, 80, 120, 160]
    assert callback.forecast.state_dict()["steps"] == list(range(4, STEPS + 1, 4))


@pytest.mark.skipif(not peers.installed("transformers"), reason="transformers not installed")
def test_the_hf_callback_says_it_needs_its_trainer():
    from wsd_plan.transformers import ForecastCallback

    callback = ForecastCallback(Forecast(TRUNK, peak=LR, prior=PRIOR), lengths=[40])
    with pytest.raises(ValueError, match=r"call callback.set_trainer\(trainer\)"):
        callback.on_train_begin(None, None, None)
    with pytest.raises(TypeError, match=r"forecast must be a wsd_plan\.Forecast"):
        ForecastCallback(PRIOR, lengths=[40])  # type: ignore[arg-type]


def test_the_loss_buffer_averages_micro_batches_and_copies_once():
    forecast = Forecast(TRUNK, peak=LR, prior=PRIOR)
    buffer = LossBuffer(every=2)
    for step, loss in ((10, 1.0), (10, 3.0), (11, 5.0), (12, torch.tensor(4.0)), (12, torch.tensor(6.0))):
        buffer.add(step, loss)
    assert buffer.flush_into(forecast) and not buffer.flush_into(forecast)
    assert forecast.state_dict() == {"steps": [10, 12], "losses": [2.0, 5.0]}
    with pytest.raises(ValueError, match="every"):
        LossBuffer(every=0)


def test_a_failing_fit_warns_and_the_run_goes_on():
    from wsd_plan._forecast import forecast_or_warn

    forecast = Forecast(TRUNK, peak=LR, prior=PRIOR)
    forecast.observe(list(range(20, 40)), [1.0] * 20)
    with pytest.warns(UserWarning, match="wsd_plan forecast at step 39 skipped: .*lengths"):
        assert forecast_or_warn(forecast, {"lengths": [-5]}, 39) is None


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(lengths=[]), "lengths must name at least one value"),
        (dict(lengths=[0]), "lengths"),
        (dict(lengths=[100], shapes=["square"]), "shapes"),
        (dict(lengths=[100], min_ratios=[10]), r"min_ratios must satisfy 0 <= value <= 1, got 10"),
        (dict(lengths=[100], level=90), "level must be a probability"),
    ],
)
def test_a_callback_refuses_bad_arguments_when_built_not_hours_later(kwargs, match):
    from wsd_plan._forecast import checked_request

    args = dict(lengths=[100], budgets=[], shapes=["1-sqrt"], min_ratios=[0.0], level=0.9) | kwargs
    with pytest.raises(ValueError, match=match):
        checked_request(Forecast(TRUNK, peak=LR, prior=PRIOR), **args)
