"""The frameworks people train with, with real code: torch's scheduler API, torchtitan 0.3.0's container
and config, DCP resharding, HF Trainer and Lightning. Each recipe trains a few steps, saves,
resumes in new objects and checks the identical rate sequence."""

from __future__ import annotations

import copy
import pickle
import warnings
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from torch.optim.lr_scheduler import LambdaLR, LRScheduler, SequentialLR  # noqa: E402

from tests import peers  # noqa: E402
from tests.reference import reference_multiplier  # noqa: E402
from wsd_torch import WSDLR, WSDDeviceLR, WSDLRSchedulersConfig, WSDSchedulersContainer, WSDSpec  # noqa: E402

SPEC = WSDSpec(40, warmup_steps=4, decay_steps=10, decay_shape="linear", min_ratio=0.1)


def _opt(lr=0.1, cls=torch.optim.SGD):
    return cls([torch.nn.Parameter(torch.zeros(2))], lr=lr)


def _run(opt, sched, steps):
    used = []
    for _ in range(steps):
        used.append(float(opt.param_groups[0]["lr"]))
        opt.step()
        sched.step()
    return used


# --- WSDDeviceLR is a torch LRScheduler ------------------------------------------------------------


def test_device_lr_is_an_lr_scheduler_that_pickles_and_deep_copies():
    opt = _opt()
    sched = WSDDeviceLR(opt, spec=SPEC)
    assert isinstance(sched, LRScheduler)
    _run(opt, sched, 7)
    for clone in (pickle.loads(pickle.dumps(sched)), copy.deepcopy(sched)):
        assert clone.last_epoch == 7 and clone.spec == SPEC
        clone.optimizer.step()
        clone.step()
        assert float(clone.optimizer.param_groups[0]["lr"]) == pytest.approx(
            0.1 * SPEC.multiplier(8), rel=1e-6
        )
    sched.step(3)  # torch's deprecated step(epoch) sets the count
    assert sched.last_epoch == 3


def test_device_lr_gives_torchs_step_order_warning():
    opt = _opt()
    sched = WSDDeviceLR(opt, spec=SPEC)
    with pytest.warns(UserWarning, match="before `optimizer.step\\(\\)`"):
        sched.step()


def test_sequential_lr_hands_over_between_device_schedulers():
    opt = _opt()
    second = WSDSpec(30, decay_steps=10, decay_shape="linear")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        seq = SequentialLR(opt, [WSDDeviceLR(opt, spec=SPEC), WSDDeviceLR(opt, spec=second)], milestones=[12])
        used = _run(opt, seq, 25)
    want = [0.1 * SPEC.multiplier(s) for s in range(12)] + [0.1 * second.multiplier(s) for s in range(13)]
    assert used == pytest.approx(want, rel=1e-6)


@pytest.mark.parametrize("cls", [WSDLR, WSDDeviceLR])
def test_a_param_group_added_later_follows_the_schedule_from_its_own_lr(cls):
    opt = _opt()
    sched = cls(opt, spec=SPEC)
    _run(opt, sched, 5)
    opt.add_param_group({"params": [torch.nn.Parameter(torch.zeros(1))], "lr": 0.5})
    for step in range(6, 30):
        opt.step()
        sched.step()
        rates = [float(g["lr"]) for g in opt.param_groups]
        assert rates == pytest.approx([0.1 * SPEC.multiplier(step), 0.5 * SPEC.multiplier(step)], rel=1e-6)
    assert sched.state_dict()["base_lrs"] == pytest.approx([0.1, 0.5])


# --- spec changes and adoption, set at construction ------------------------------------------------


@pytest.mark.parametrize("cls", [WSDLR, WSDDeviceLR])
def test_on_spec_change_continue_extends_a_run_through_a_plain_load(cls):
    opt = _opt()
    sched = cls(opt, spec=SPEC)
    _run(opt, sched, 20)
    longer = SPEC.extend(100, at_step=20)
    with pytest.raises(ValueError, match="on_spec_change='continue'"):
        cls(_opt(), spec=longer).load_state_dict(sched.state_dict())
    resumed = cls(opt2 := _opt(), spec=longer, on_spec_change="continue")
    resumed.load_state_dict(sched.state_dict())  # what HF Trainer, Lightning and DCP call
    used = _run(opt2, resumed, 80)
    assert used == pytest.approx([0.1 * longer.multiplier(s) for s in range(20, 100)], rel=1e-6)


def _foreign_states():
    opt = _opt()
    plain = LambdaLR(opt, lambda s: 1.0)
    _run(opt, plain, 9)
    states = {"LambdaLR": plain.state_dict(), "torchtitan container": {"last_epoch": 9}}
    if peers.installed("transformers"):
        from transformers import get_wsd_schedule

        opt = _opt()
        hf = get_wsd_schedule(opt, 4, 10, num_training_steps=40)
        _run(opt, hf, 9)
        states["get_wsd_schedule"] = hf.state_dict()
    return states


@pytest.mark.parametrize("cls", [WSDLR, WSDDeviceLR])
def test_a_running_job_switches_to_this_library_keeping_its_step(cls):
    for name, state in _foreign_states().items():
        with pytest.raises(ValueError, match="adopt_foreign_state=True"):
            cls(_opt(), spec=SPEC).load_state_dict(state)
        sched = cls(opt := _opt(), spec=SPEC, adopt_foreign_state=True)
        sched.load_state_dict(state)
        assert sched.last_epoch == 9, name
        assert float(opt.param_groups[0]["lr"]) == pytest.approx(0.1 * SPEC.multiplier(9), rel=1e-6)


def test_a_wsdlr_state_loads_into_a_plain_lambdalr():
    opt = _opt()
    sched = WSDLR(opt, spec=SPEC)
    _run(opt, sched, 11)
    plain = LambdaLR(_opt(), SPEC.multiplier)
    plain.load_state_dict(sched.state_dict())
    assert plain.last_epoch == 11 and plain.base_lrs == [0.1]


# --- torchtitan 0.3.0 --------------------------------------------------------------------------------

titan = peers.torchtitan_lr_scheduler()
needs_titan = pytest.mark.skipif(titan is None, reason="torchtitan wheel not downloaded (see tests/peers.py)")
TITAN: dict[str, Any] = dict(warmup_steps=5, decay_ratio=0.3, decay_type="sqrt", min_lr_factor=0.1)


def _titan_config():
    config = titan.LRSchedulersContainer.Config.__new__(titan.LRSchedulersContainer.Config)
    for k, v in {**TITAN, "total_steps": None}.items():
        object.__setattr__(config, k, v)
    return config


def _trainer_steps(optimizers, lr_schedulers, steps):
    """What torchtitan's trainer does each step: optimizers, then schedulers, then get_metrics."""
    metrics = []
    for _ in range(steps):
        for o in optimizers:
            o.step()
        lr_schedulers.step()
        metrics.append(lr_schedulers.get_metrics())
    return metrics


@needs_titan
def test_torchtitan_config_builds_a_container_the_trainer_runs_with_torchtitans_curve():
    ours_opts = [_opt(0.1, torch.optim.AdamW), _opt(0.2, torch.optim.SGD)]
    titan_opts = [_opt(0.1, torch.optim.AdamW), _opt(0.2, torch.optim.SGD)]
    ours = WSDLRSchedulersConfig(**TITAN).build(optimizers=ours_opts, training_steps=60)
    theirs = _titan_config().build(optimizers=titan_opts, training_steps=60)
    got, want = _trainer_steps(ours_opts, ours, 70), _trainer_steps(titan_opts, theirs, 60)
    assert [sorted(m) for m in got[:60]] == [sorted(m) for m in want] == [["lr/AdamW", "lr/SGD"]] * 60
    for g, w in zip(got, want, strict=False):
        assert g == pytest.approx(w, rel=1e-12)
    assert got[-1]["lr/SGD"] == pytest.approx(0.2 * 0.1)  # past the end: min_lr_factor, not negative


def _dcp_roundtrip(tmp_path, saved, loader, name):
    import torch.distributed.checkpoint as dcp

    dcp.save({"lr_scheduler": saved}, checkpoint_id=tmp_path / name)
    dcp.load({"lr_scheduler": loader}, checkpoint_id=tmp_path / name)


@pytest.mark.parametrize(("before", "after"), [(2, 1), (1, 2)])
def test_dcp_resharding_between_numbers_of_optimizers(tmp_path, before, after):
    opts = [_opt(0.1 * (i + 1)) for i in range(before)]
    container = WSDSchedulersContainer.for_optimizers(opts, spec=SPEC)
    _trainer_steps(opts, container, 17)
    new_opts = [_opt(0.1 * (i + 1)) for i in range(after)]
    resumed = WSDSchedulersContainer.for_optimizers(new_opts, spec=SPEC)
    _dcp_roundtrip(tmp_path, container, resumed, "ckpt")
    assert [s.last_epoch for s in resumed] == [17] * after
    for i, o in enumerate(new_opts):  # each optimizer's rate from its own base rate
        assert float(o.param_groups[0]["lr"]) == pytest.approx(0.1 * (i + 1) * SPEC.multiplier(17), rel=1e-12)


@needs_titan
def test_dcp_checkpoints_move_between_torchtitans_container_and_ours(tmp_path):
    spec = WSDLRSchedulersConfig(**TITAN).spec(60)
    titan_opts = [_opt()]
    theirs = _titan_config().build(optimizers=titan_opts, training_steps=60)
    _trainer_steps(titan_opts, theirs, 23)
    refusing = WSDSchedulersContainer.for_optimizers([_opt()], spec=spec)
    # refused with the container's own reason (before: DCP's "Missing key ... spec", no reason given)
    with pytest.raises(ValueError, match=r"no 'spec' entry.*adopt_foreign_state=True"):
        _dcp_roundtrip(tmp_path, theirs, refusing, "theirs")
    assert refusing.schedulers[0].last_epoch == 0  # nothing adopted
    adopting = WSDSchedulersContainer.for_optimizers([o := _opt()], spec=spec, adopt_foreign_state=True)
    _dcp_roundtrip(tmp_path, theirs, adopting, "theirs2")
    assert adopting.schedulers[0].last_epoch == 23
    assert float(o.param_groups[0]["lr"]) == pytest.approx(0.1 * spec.multiplier(23), rel=1e-12)
    # and back: torchtitan's container reads the step count of ours
    back = _titan_config().build(optimizers=[_opt()], training_steps=60)
    _dcp_roundtrip(tmp_path, adopting, back, "ours")
    assert back.schedulers[0].last_epoch == 23


# --- HF Trainer ------------------------------------------------------------------------------------


class _Regression(torch.nn.Module):  # type: ignore[name-defined]
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.linear = torch.nn.Linear(4, 1)

    def forward(self, x, y):
        return {"loss": torch.nn.functional.mse_loss(self.linear(x).squeeze(-1), y)}


def _dataset(n=64):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, 4, generator=g)
    return [{"x": x[i], "y": x[i].sum()} for i in range(n)]


def _StopAfter(step):  # a class factory, so that transformers is imported only here
    from transformers import TrainerCallback

    class StopAfter(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step >= step:
                control.should_training_stop = True

    return StopAfter()


def _hf_rates(trainer):
    from transformers import TrainerCallback

    rates: list[float] = []

    class Record(TrainerCallback):
        def on_step_begin(self, args, state, control, optimizer=None, **kw):
            rates.append(float(trainer.optimizer.param_groups[0]["lr"]))

    trainer.add_callback(Record())
    return rates


@pytest.mark.skipif(not peers.installed("transformers"), reason="transformers not installed")
@pytest.mark.parametrize("how", ["optimizers", "create_scheduler"])
def test_hf_trainer_resumes_with_the_identical_rate_sequence(tmp_path, how):
    from transformers import Trainer, TrainingArguments

    class WSDTrainer(Trainer):  # the override recipe: total_steps from the Trainer
        def create_scheduler(self, num_training_steps, optimizer=None):
            if self.lr_scheduler is None:
                self.lr_scheduler = WSDLR(
                    optimizer or self.optimizer,  # type: ignore[arg-type]
                    total_steps=num_training_steps,
                    warmup_steps=2,
                    decay_steps=4,
                )
            return self.lr_scheduler

    def make(max_steps, out):
        args = TrainingArguments(
            output_dir=str(out), max_steps=max_steps, per_device_train_batch_size=8, save_steps=5,
            logging_steps=100, report_to=[], use_cpu=True, learning_rate=0.05, disable_tqdm=True,
        )  # fmt: skip
        model = _Regression()
        if how == "optimizers":
            opt = torch.optim.SGD(model.parameters(), lr=0.05)
            sched = WSDLR(opt, total_steps=12, warmup_steps=2, decay_steps=4)
            trainer = Trainer(model=model, args=args, train_dataset=_dataset(), optimizers=(opt, sched))
        else:
            trainer = WSDTrainer(model=model, args=args, train_dataset=_dataset())
        return trainer, _hf_rates(trainer)

    full, full_rates = make(12, tmp_path / "full")
    full.train()
    first, _ = make(12, tmp_path / "run")
    first.add_callback(_StopAfter(5))  # a job killed after its step-5 checkpoint
    first.train()
    resumed, rates = make(12, tmp_path / "run")
    resumed.train(resume_from_checkpoint=str(tmp_path / "run" / "checkpoint-5"))
    assert rates == pytest.approx(full_rates[5:], rel=1e-12)
    assert full_rates == pytest.approx(
        [0.05 * WSDSpec(12, warmup_steps=2, decay_steps=4).multiplier(s) for s in range(12)]
    )


# --- Lightning ---------------------------------------------------------------------------------------


@pytest.mark.skipif(
    not peers.installed("lightning"), reason="lightning not installed (the integrations extra)"
)
@pytest.mark.parametrize("cls", [WSDLR, WSDDeviceLR])
def test_lightning_step_interval_resumes_with_the_identical_rate_sequence(tmp_path, cls):
    import lightning as L

    data = _dataset()
    rates: list[float] = []

    class Module(L.LightningModule):
        def __init__(self, spec):
            super().__init__()
            self.net = _Regression()
            self.spec = spec

        def training_step(self, batch, _):
            rates.append(float(self.optimizers().param_groups[0]["lr"]))  # type: ignore[union-attr]
            return self.net(batch["x"], batch["y"])["loss"]

        def configure_optimizers(self):
            opt = torch.optim.SGD(self.parameters(), lr=0.05)
            kwargs = {"on_spec_change": "continue"}
            return {
                "optimizer": opt,
                "lr_scheduler": {"scheduler": cls(opt, spec=self.spec, **kwargs), "interval": "step"},
            }

        def train_dataloader(self):
            return torch.utils.data.DataLoader(data, batch_size=8)

    def fit(spec, max_steps, ckpt=None):
        quiet: dict[str, Any] = dict(
            logger=False, enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False
        )
        trainer = L.Trainer(max_steps=max_steps, accelerator="cpu", default_root_dir=tmp_path, **quiet)
        trainer.fit(Module(spec), ckpt_path=ckpt)
        return trainer

    spec = WSDSpec(14, warmup_steps=2, decay_steps=4)
    fit(spec, 14)
    full = list(rates)
    rates.clear()
    fit(spec, 6).save_checkpoint(tmp_path / "six.ckpt")
    rates.clear()
    fit(spec, 14, tmp_path / "six.ckpt")
    assert rates == pytest.approx(full[6:], rel=1e-6)
    assert full == pytest.approx(
        [0.05 * reference_multiplier(s, **spec.to_dict()) for s in range(14)], rel=1e-6
    )
    rates.clear()  # and once with an extended spec: the count goes on under the longer trunk
    longer = spec.extend(30, at_step=6)
    fit(longer, 30, tmp_path / "six.ckpt")
    assert rates == pytest.approx([0.05 * longer.multiplier(s) for s in range(6, 30)], rel=1e-6)


def test_chained_scheduler_applies_the_other_factor_once_as_documented():
    from torch.optim.lr_scheduler import ChainedScheduler, ExponentialLR

    opt = _opt(1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        chained = ChainedScheduler([WSDLR(opt, spec=SPEC), ExponentialLR(opt, gamma=0.5)])
        used = _run(opt, chained, 12)
    # WSDLR sets base * m(step) outright; ExponentialLR then multiplies that by gamma once per step
    assert used[1:] == pytest.approx([0.5 * SPEC.multiplier(s) for s in range(1, 12)], rel=1e-12)


# --- DCP checks a state exactly as load_state_dict does ---------------------------------------------


def _companion(opt, stable=0.95):
    from wsd_torch import WSDCompanion

    return WSDCompanion(opt, key="betas", index=1, stable_value=stable, cooled_value=0.999, spec=SPEC)


def _adam(lr=1e-3):
    return torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))], lr=lr, betas=(0.9, 0.95))


def test_dcp_loads_into_an_adopting_container_as_load_state_dict_does(tmp_path):
    # before: a fresh adopting container named only last_epoch, so DCP never read the saved spec and
    # it loaded any; load_state_dict of the same state refused it
    other = WSDSpec(SPEC.total_steps + 50, warmup_steps=10, decay_steps=20)
    saved = WSDSchedulersContainer.for_optimizers([o := _opt()], spec=other)
    _trainer_steps([o], saved, 13)
    adopting = WSDSchedulersContainer.for_optimizers([_opt()], spec=SPEC, adopt_foreign_state=True)
    with pytest.raises(ValueError, match="scheduler 0: the saved state was made with a different spec"):
        adopting.load_state_dict(saved.state_dict())
    with pytest.raises(ValueError, match="scheduler 0: the saved state was made with a different spec"):
        _dcp_roundtrip(tmp_path, saved, adopting, "other-spec")
    assert adopting.schedulers[0].last_epoch == 0
    same = WSDSchedulersContainer.for_optimizers([o2 := _opt()], spec=other, adopt_foreign_state=True)
    _dcp_roundtrip(tmp_path, saved, same, "same-spec")  # our own checkpoint of its spec: loads
    assert same.schedulers[0].last_epoch == 13
    assert float(o2.param_groups[0]["lr"]) == pytest.approx(0.1 * other.multiplier(13), rel=1e-12)


@pytest.mark.parametrize(
    ("saved_parts", "loading_parts", "match"),
    [
        ((1, 2), (1, 1), r"holds 2 companion state\(s\), this one has 1 companion"),
        ((3, 0), (2, 0), r"holds schedulers \['0', '1', '2'\], this one has 2"),
    ],
    ids=["2 companions into 1", "3 schedulers into 2"],
)
def test_dcp_refuses_what_load_state_dict_refuses_with_the_containers_reason(
    tmp_path, saved_parts, loading_parts, match
):
    # before: 2 saved companions loaded silently into 1, and 3 schedulers' states into 2
    def build(schedulers: int, companions: int) -> WSDSchedulersContainer:
        opts = [_adam(1e-3 * (i + 1)) for i in range(schedulers)]
        specs = [WSDSpec(SPEC.total_steps + i, warmup_steps=10, decay_steps=20) for i in range(schedulers)]
        return WSDSchedulersContainer(
            [WSDLR(o, spec=s) for o, s in zip(opts, specs, strict=True)],
            companions=[_companion(opts[0], 0.95 - 0.01 * i) for i in range(companions)],
        )

    saved, loading = build(*saved_parts), build(*loading_parts)
    for _ in range(5):
        for s in saved.schedulers:
            s.optimizer.step()
        saved.step()
    before = [s.last_epoch for s in loading.schedulers]
    with pytest.raises(ValueError, match=match):
        loading.load_state_dict(saved.state_dict())
    with pytest.raises(ValueError, match=match):
        _dcp_roundtrip(tmp_path, saved, loading, "parts")
    assert [s.last_epoch for s in loading.schedulers] == before
