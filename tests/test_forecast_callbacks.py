"""The forecast callbacks in real training runs: Lightning's ``Trainer`` and Hugging Face's, each
training a small model under a constant trunk, each logging the forecast through the framework's own
TensorBoard logger, read back from the event files it wrote."""

from __future__ import annotations

import logging
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


def _trunk_module() -> Any:
    """A Lightning module of the regression trained on the trunk's schedule, logging ``val_loss``."""
    import lightning as L

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

    return Module()


@pytest.mark.slow
@pytest.mark.skipif(not peers.installed("lightning"), reason="lightning not installed (integrations extra)")
def test_lightning_logs_the_forecast_through_its_tensorboard_logger(tmp_path):
    import lightning as L
    from lightning.pytorch.loggers import TensorBoardLogger

    from wsd_plan.lightning import ForecastCallback

    callback = ForecastCallback(
        Forecast(TRUNK, peak=LR, prior=PRIOR), lengths=[40, 80], budgets=[240], monitor=None
    )  # the training loss: every batch's
    trainer = L.Trainer(
        max_steps=STEPS, accelerator="cpu", logger=TensorBoardLogger(tmp_path, name="run"),
        callbacks=[callback], val_check_interval=40, limit_val_batches=1, enable_progress_bar=False,
        enable_model_summary=False, enable_checkpointing=False, log_every_n_steps=10,
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lightning's notes on workers and dataloader sizes
        trainer.fit(_trunk_module())
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
    callback = ForecastCallback(
        Forecast(TRUNK, peak=LR, prior=PRIOR), lengths=[40, 80], budgets=[240], monitor=None
    )  # the training loss the Trainer logs
    trainer = Trainer(
        model=Model(), args=args, train_dataset=data, eval_dataset=data[:64], callbacks=[callback]
    )
    callback.set_trainer(trainer)
    trainer.train()
    _check_forecast_logged(tmp_path / "tb", prefix="train/")  # (the Trainer prefixes what it logs)
    logged = [h for h in trainer.state.log_history if "forecast/now_40" in h]
    assert [h["step"] for h in logged] == [40, 80, 120, 160]
    assert callback.forecast.state_dict()["steps"] == list(range(4, STEPS + 1, 4))


@pytest.mark.slow
@pytest.mark.skipif(not peers.installed("lightning"), reason="lightning not installed (integrations extra)")
def test_lightning_forecasts_the_validation_loss_and_logs_beside_it(tmp_path, caplog):
    # before: the per-batch training loss was forecast, logged at update 40 where validation logs at 39
    import lightning as L
    from lightning.pytorch.loggers import TensorBoardLogger

    from wsd_plan.lightning import ForecastCallback

    callback = ForecastCallback(Forecast(TRUNK, peak=LR, prior=PRIOR), lengths=[40, 80])
    trainer = L.Trainer(
        max_steps=STEPS, accelerator="cpu", logger=TensorBoardLogger(tmp_path, name="run"),
        callbacks=[callback], val_check_interval=10, limit_val_batches=1, enable_progress_bar=False,
        enable_model_summary=False, enable_checkpointing=False, log_every_n_steps=10,
    )  # fmt: skip
    with warnings.catch_warnings(), caplog.at_level(logging.INFO, logger="wsd_plan"):
        warnings.simplefilter("ignore")
        trainer.fit(_trunk_module())
    assert callback.watcher.source == "val_loss"
    assert any("forecasting val_loss instead of the training loss" in r.getMessage() for r in caplog.records)
    assert callback.forecast.state_dict()["steps"] == list(range(10, STEPS + 1, 10))  # validations only
    val_steps, _ = _logged(tmp_path / "run", "val_loss")
    forecast_steps, _ = _logged(tmp_path / "run", "forecast/now_40")
    assert forecast_steps and set(forecast_steps) <= set(val_steps)  # each beside the loss it forecasts


@pytest.mark.slow
@pytest.mark.skipif(not peers.installed("transformers"), reason="transformers not installed")
def test_hf_forecasts_the_evaluation_loss_once_an_evaluation_reports_it(tmp_path):
    from transformers import Trainer, TrainingArguments

    from wsd_plan.transformers import ForecastCallback

    class Model(_Regression):
        def forward(self, x, y):
            return {"loss": super().forward(x, y)}

    args = TrainingArguments(
        output_dir=str(tmp_path / "out"), max_steps=STEPS, per_device_train_batch_size=16, logging_steps=4,
        eval_strategy="steps", eval_steps=10, save_strategy="no", report_to=[], use_cpu=True,
        learning_rate=LR, lr_scheduler_type="constant_with_warmup", warmup_steps=WARMUP, disable_tqdm=True,
        optim="sgd", label_names=["y"],  # (the evaluation reports eval_loss where it knows the labels)
    )  # fmt: skip
    data = _data()
    callback = ForecastCallback(Forecast(TRUNK, peak=LR, prior=PRIOR), lengths=[40])
    trainer = Trainer(
        model=Model(), args=args, train_dataset=data, eval_dataset=data[:64], callbacks=[callback]
    )
    callback.set_trainer(trainer)
    trainer.train()
    assert callback.watcher.source == "eval_loss"
    assert callback.forecast.state_dict()["steps"] == list(range(10, STEPS + 1, 10))
    evaluated = {h["step"] for h in trainer.state.log_history if "eval_loss" in h}
    forecast = [h["step"] for h in trainer.state.log_history if "forecast/now_40" in h]
    assert forecast and set(forecast) <= evaluated


@pytest.mark.skipif(not peers.installed("transformers"), reason="transformers not installed")
def test_the_hf_callback_says_it_needs_its_trainer():
    from wsd_plan.transformers import ForecastCallback

    callback = ForecastCallback(Forecast(TRUNK, peak=LR, prior=PRIOR), lengths=[40])
    with pytest.raises(ValueError, match=r"call callback.set_trainer\(trainer\)"):
        callback.on_train_begin(None, None, None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"forecast must be a wsd_plan\.Forecast"):
        ForecastCallback(PRIOR, lengths=[40])  # type: ignore[arg-type]


def test_the_loss_buffer_averages_micro_batches_and_copies_once():
    buffer = LossBuffer(every=2)
    for step, loss in ((10, 1.0), (10, 3.0), (11, 5.0), (12, torch.tensor(4.0)), (12, torch.tensor(6.0))):
        buffer.add(step, loss)
    assert buffer.flush() == ([10, 12], [2.0, 5.0]) and buffer.flush() == ([], [])
    with pytest.raises(ValueError, match="every"):
        LossBuffer(every=0)


def test_a_failing_fit_warns_and_the_run_goes_on(monkeypatch):
    from wsd_plan import ForecastWatcher

    forecast = Forecast(TRUNK, peak=LR, prior=PRIOR)
    watcher = ForecastWatcher(forecast, lengths=[40])
    watcher.observe(list(range(20, 40)), [1.0] * 20)

    def fails(**kwargs):
        raise RuntimeError("the fit diverged\nwith a long second line")

    monkeypatch.setattr(forecast, "metrics", fails)
    with pytest.warns(
        UserWarning, match=r"at step 39 skipped: the forecast failed \(RuntimeError: the fit diverged\)"
    ):
        assert watcher.metrics(39) is None


def test_observations_saved_before_the_monitor_existed_load_as_the_training_losses():
    from wsd_plan import ForecastWatcher

    watcher = ForecastWatcher(Forecast(TRUNK, peak=LR, prior=PRIOR), lengths=[100])
    watcher.use("val_loss", 40)
    watcher.load_state_dict({"steps": [20, 30], "losses": [3.0, 2.9]})  # as 0.2's first callbacks saved
    assert watcher.source == "the training loss" and watcher.forecast.state_dict()["steps"] == [20, 30]
    with pytest.warns(UserWarning, match="restoring the saved observations"):
        watcher.load_state_dict({"steps": [20, 30], "losses": [3.0], "source": "val_loss"})  # damaged
    assert watcher.source == "the training loss" and watcher.forecast.state_dict()["steps"] == [20, 30]
    watcher.load_state_dict(watcher.state_dict() | {"source": "val_loss"})
    assert watcher.source == "val_loss"


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(lengths=[]), "lengths must hold at least one value"),
        (dict(lengths=[0]), "lengths"),
        (dict(lengths=[100], shapes=["square"]), "shapes"),
        (dict(lengths=[100], min_ratios=[10]), r"min_ratios must satisfy 0 <= value <= 1, got 10"),
        (dict(lengths=[100], level=90), "level must be a probability"),
    ],
)
def test_a_callback_refuses_bad_arguments_when_built_not_hours_later(kwargs, match):
    from wsd_plan import ForecastWatcher

    args = dict(lengths=[100], budgets=[], shapes=["1-sqrt"], min_ratios=[0.0], level=0.9) | kwargs
    with pytest.raises(ValueError, match=match):
        ForecastWatcher(Forecast(TRUNK, peak=LR, prior=PRIOR), **args)


# --- the callbacks never stop training ----------------------------------------------------------

# the loss a model reports at these updates (its gradient is the true loss's): NaN, inf, 0, negative
BAD_LOSSES = {30: float("nan"), 41: float("inf"), 57: 0.0, 66: -100.0, 90: float("nan")}


def _reported(loss: Any, step: int) -> Any:
    """``loss`` with its value replaced by ``BAD_LOSSES[step]`` and its gradient kept."""
    if step not in BAD_LOSSES:
        return loss
    return loss + (torch.tensor(BAD_LOSSES[step]) - loss).detach()


# the validation loss a model logs at these updates: NaN and 0
BAD_VALIDATIONS = {40: float("nan"), 100: 0.0}


def _lightning_run(
    tmp_path: Path, trunk: WSDSpec, steps: int, *, resume: bool = False, monitor: str | None = None
) -> Any:
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint

    from wsd_plan.lightning import ForecastCallback

    data = _data()

    class Module(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = _Regression()

        def training_step(self, batch, _):
            return _reported(self.net(batch["x"], batch["y"]), self.trainer.global_step)

        def validation_step(self, batch, _):
            loss = self.net(batch["x"], batch["y"])
            bad = BAD_VALIDATIONS.get(self.trainer.global_step) if monitor else None
            self.log("val_loss", loss if bad is None else torch.tensor(bad))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=LR)

        def train_dataloader(self):
            return torch.utils.data.DataLoader(data, batch_size=16)

        def val_dataloader(self):
            return torch.utils.data.DataLoader(data[:64], batch_size=64)

    callback = ForecastCallback(  # bad values included
        Forecast(trunk, peak=LR, prior=PRIOR), lengths=[20], budgets=[100], monitor=monitor
    )
    checkpoints = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=40, save_top_k=-1)
    trainer = L.Trainer(
        max_steps=steps, accelerator="cpu", logger=False, callbacks=[callback, checkpoints],
        val_check_interval=20, limit_val_batches=1, enable_progress_bar=False,
        enable_model_summary=False,
    )  # fmt: skip
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ckpt = str(tmp_path / "ckpt" / "epoch=0-step=80.ckpt") if resume else None
        trainer.fit(Module(), ckpt_path=ckpt)
    assert trainer.global_step == steps  # every step trained
    return callback, [str(w.message) for w in caught if "wsd_plan" in str(w.message)]


@pytest.mark.slow
@pytest.mark.skipif(not peers.installed("lightning"), reason="lightning not installed (integrations extra)")
def test_lightning_trains_every_step_through_bad_losses_a_short_trunk_and_a_resume(tmp_path):
    # before: the first NaN, inf, 0 or negative loss raised out of trainer.fit at the next validation
    callback, said = _lightning_run(tmp_path / "a", WSDSpec(120, warmup_steps=WARMUP, decay_steps=0), 160)
    observed = callback.forecast.state_dict()["steps"]
    assert not set(BAD_LOSSES) & set(observed) and 29 in observed and 31 in observed
    assert max(observed) == 119  # the trunk's last update; the run went on past it
    assert any("the loss at step 30 is nan: skipped" in m for m in said)
    assert any("step 121 is past the trunk's end (update 120" in m for m in said)
    assert sum("past the trunk's end" in m for m in said) == 1  # once per kind, not once per step
    assert callback.logged  # and it forecast what it could
    # a resume from the checkpoint at step 80: the observations come back with it
    resumed, _ = _lightning_run(tmp_path / "a", WSDSpec(200, warmup_steps=WARMUP, decay_steps=0), 160,
                                resume=True)  # fmt: skip
    steps = resumed.forecast.state_dict()["steps"]
    assert steps[0] < 80 and max(steps) == 159 and not set(BAD_LOSSES) & set(steps)


@pytest.mark.slow
@pytest.mark.skipif(not peers.installed("lightning"), reason="lightning not installed (integrations extra)")
def test_lightning_trains_every_step_through_bad_validation_losses_a_short_trunk_and_a_resume(tmp_path):
    # the validation loss forecast (monitor=): a NaN and a 0 logged, validations past the trunk's end
    trunk = WSDSpec(120, warmup_steps=WARMUP, decay_steps=0)
    callback, said = _lightning_run(tmp_path / "a", trunk, 160, monitor="val_loss")
    observed = callback.forecast.state_dict()["steps"]
    assert callback.watcher.source == "val_loss"
    # 40 (NaN) and 100 (0) skipped; 120 the trunk's end (nothing to forecast), 140 and 160 past it
    assert observed == [20, 60, 80]
    assert any("the loss at step 40 is nan: skipped" in m for m in said)
    assert any("past the trunk's end" in m for m in said)
    resumed, _ = _lightning_run(tmp_path / "a", WSDSpec(200, warmup_steps=WARMUP, decay_steps=0), 160,
                                resume=True, monitor="val_loss")  # fmt: skip
    # the checkpoint at update 80 was written before that update's validation: it holds 20 and 60
    state = resumed.watcher.state_dict()
    assert state["source"] == "val_loss" and state["steps"] == [20, 60, 120, 140, 160]


@pytest.mark.slow
@pytest.mark.skipif(not peers.installed("lightning"), reason="lightning not installed (integrations extra)")
def test_lightning_forecasts_a_trunk_counted_in_tokens(tmp_path):
    # before: a trunk in tokens was refused at its first observation ("the planner reads one rate per
    # update"), which ended the run
    tokens = WSDSpec(10_000 * 16, warmup_steps=WARMUP * 16, decay_steps=0, units="tokens", tokens_per_step=16)
    callback, _ = _lightning_run(tmp_path, tokens, 120)
    steps = WSDSpec(10_000, warmup_steps=WARMUP, decay_steps=0)
    assert callback.forecast.state_dict()["steps"][-1] == 119 and callback.logged
    same = Forecast(steps, peak=LR, prior=PRIOR)
    same.load_state_dict(callback.forecast.state_dict())
    expected = same.metrics(lengths=[20], budgets=[100])
    assert callback.logged == pytest.approx({k: v for k, v in expected.items()}, rel=1e-9)


def _hf_run(tmp_path: Path, trunk: WSDSpec, steps: int, *, resume: bool = False, scheduler: bool = True,
            save_steps: int = 20) -> tuple[Any, Any, list[str]]:  # fmt: skip
    from transformers import Trainer, TrainingArguments

    from wsd_plan.transformers import ForecastCallback
    from wsd_torch import WSDLR

    class Model(_Regression):
        updates = 0

        def forward(self, x, y):
            loss = super().forward(x, y)
            if self.training:
                loss, self.updates = _reported(loss, self.updates), self.updates + 1
            return {"loss": loss}

    args = TrainingArguments(
        output_dir=str(tmp_path / "out"), max_steps=steps, per_device_train_batch_size=16, logging_steps=4,
        eval_strategy="no", save_strategy="steps", save_steps=save_steps, report_to=[], use_cpu=True,
        learning_rate=LR, disable_tqdm=True, optim="sgd",
    )  # fmt: skip
    model = Model()
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    optimizers = (optimizer, WSDLR(optimizer, spec=trunk)) if scheduler else (None, None)
    callback = ForecastCallback(Forecast(trunk, peak=LR, prior=PRIOR), lengths=[20], budgets=[100])
    trainer = Trainer(
        model=model, args=args, train_dataset=_data(), callbacks=[callback], optimizers=optimizers
    )
    callback.set_trainer(trainer)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.train(resume_from_checkpoint=str(tmp_path / "out" / "checkpoint-40") if resume else None)
    assert trainer.state.global_step == steps  # every step trained
    return callback, trainer, [str(w.message) for w in caught if "wsd_plan" in str(w.message)]


@pytest.mark.slow
@pytest.mark.skipif(not peers.installed("transformers"), reason="transformers not installed")
def test_hf_trains_every_step_through_bad_losses_to_the_trunks_end_and_writes_its_last_checkpoint(tmp_path):
    # before: a bad loss raised at the next log, and with max_steps == the trunk's length the
    # callback raised at the last step, so the final checkpoint was never written
    callback, trainer, said = _hf_run(tmp_path, WSDSpec(100, warmup_steps=WARMUP, decay_steps=0), 100)
    assert (tmp_path / "out" / "checkpoint-100").is_dir()
    observed = callback.forecast.state_dict()["steps"]
    logged = {h["step"]: h["loss"] for h in trainer.state.log_history if "loss" in h}
    assert observed == [s for s, x in logged.items() if 0 < x < math.inf and s < 100]
    assert 68 not in observed  # (the window of the -100: the Trainer's NaN filter lets it through)
    assert any("skipped (a loss to forecast from must be a finite number > 0)" in m for m in said)
    assert not any("past the trunk" in m for m in said)  # the trunk's last update is its end: no word
    assert [h["step"] for h in trainer.state.log_history if "forecast/now_20" in h]


@pytest.mark.slow
@pytest.mark.skipif(not peers.installed("transformers"), reason="transformers not installed")
def test_hf_keeps_its_observations_across_a_resume(tmp_path):
    trunk = WSDSpec(1000, warmup_steps=WARMUP, decay_steps=0)
    first, _, _ = _hf_run(tmp_path, trunk, 60)
    resumed, _, _ = _hf_run(tmp_path, trunk, 80, resume=True)  # from checkpoint-40
    before = first.forecast.state_dict()["steps"]
    assert resumed.forecast.state_dict()["steps"] == [s for s in before if s <= 40] + list(range(44, 81, 4))


@pytest.mark.slow
@pytest.mark.skipif(not peers.installed("transformers"), reason="transformers not installed")
def test_hf_warns_once_when_the_trainers_rate_is_not_the_trunks(tmp_path):
    # before: the Trainer's own linear decay from 5e-5 ran while the forecast assumed the trunk
    trunk = WSDSpec(1000, warmup_steps=WARMUP, decay_steps=0)
    _, _, said = _hf_run(tmp_path, trunk, 40, scheduler=False)
    assert sum("the learning rate logged at step 4 is" in m for m in said) == 1
    _, _, said = _hf_run(tmp_path / "b", trunk, 40)
    assert not any("learning rate logged" in m for m in said)
