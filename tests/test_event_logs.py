"""TensorBoard event logs as the planner reads them (``wsd_plan._tensorboard``): event files written
here with TensorBoard's own writer, both scalar encodings, a restarted run, partial rate logs, and
every refusal naming the file."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("jax")
pytest.importorskip("scipy")
pytest.importorskip("tensorboard")

from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.summary.writer.event_file_writer import EventFileWriter
from tensorboard.util import tensor_util

from wsd_core import WSDSpec
from wsd_plan import LogError, learning_rates, load_run
from wsd_plan._logs import read_log

SPEC = WSDSpec(400, warmup_steps=20, decay_steps=100)
PEAK = 1e-3


def _value(tag: str, value: float, tensor: bool) -> summary_pb2.Summary.Value:
    if not tensor:  # torch.utils.tensorboard, Lightning, HF Trainer: simple_value
        return summary_pb2.Summary.Value(tag=tag, simple_value=value)
    # tf.summary.scalar in TF2: a 0-d tensor with the scalars plugin's metadata
    meta = summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars")
    )
    return summary_pb2.Summary.Value(
        tag=tag, tensor=tensor_util.make_tensor_proto(np.float32(value)), metadata=meta
    )


def write_events(
    folder: Path, series: dict[str, dict[int, float]], *, tensor: bool = False, start: float = 0.0
) -> None:
    """One event file in ``folder`` with ``series[tag][step] = value``, events in step order."""
    folder.mkdir(parents=True, exist_ok=True)
    writer = EventFileWriter(str(folder))
    steps = sorted({s for values in series.values() for s in values})
    for k, step in enumerate(steps):
        values = [_value(tag, v[step], tensor) for tag, v in series.items() if step in v]
        writer.add_event(
            event_pb2.Event(step=step, wall_time=start + k, summary=summary_pb2.Summary(value=values))
        )
    writer.close()


def _losses(steps: np.ndarray) -> np.ndarray:
    return 3.0 + 2.0 / np.sqrt(1.0 + steps / 50.0)


def _rates() -> np.ndarray:
    return learning_rates(SPEC, 400, peak=PEAK)


@pytest.mark.parametrize("tensor", [False, True], ids=["simple_value", "tensor"])
def test_a_run_folder_with_loss_and_lr_at_every_step_is_a_run(tmp_path, tensor):
    steps = np.arange(400)
    rates = _rates()
    write_events(
        tmp_path / "run",
        {
            "train/loss": dict(zip(steps.tolist(), _losses(steps).tolist(), strict=True)),
            "train/lr": dict(zip(steps.tolist(), rates.tolist(), strict=True)),
        },
        tensor=tensor,
    )
    run = load_run(tmp_path / "run")  # no schedule: the logged rates cover every update
    np.testing.assert_allclose(run.lrs, rates, rtol=1e-6)  # float32 in the event file
    np.testing.assert_array_equal(run.steps, steps[run.steps[0] :])
    np.testing.assert_allclose(run.losses, _losses(run.steps), rtol=1e-6)
    # the event file itself reads the same as its folder
    (file,) = (tmp_path / "run").iterdir()
    np.testing.assert_array_equal(read_log(file).steps, read_log(tmp_path / "run").steps)


def test_a_restarted_run_keeps_what_was_logged_after_the_restart(tmp_path):
    # The first file logs steps 0..299; the run crashed and restarted from its step-200 checkpoint,
    # logging 200..399 again into a second file. TensorBoard's reader drops the orphaned 200..299.
    first = {s: 10.0 for s in range(300)}
    second = {s: float(_losses(np.array(s))) for s in range(200, 400)}
    write_events(tmp_path / "run", {"loss": first}, start=0.0)
    write_events(tmp_path / "run", {"loss": second}, start=1000.0)
    log = read_log(tmp_path / "run")
    np.testing.assert_array_equal(log.steps, np.arange(400))
    assert (log.losses[:200] == 10.0).all()
    np.testing.assert_allclose(log.losses[200:], _losses(np.arange(200, 400)), rtol=1e-6)


def test_a_rate_logged_less_often_than_the_loss_is_checked_where_it_was_logged(tmp_path):
    steps = np.arange(0, 400, 5)
    rates = _rates()
    loss = dict(zip(steps.tolist(), _losses(steps).tolist(), strict=True))
    write_events(tmp_path / "ok", {"loss": loss, "lr": {s: float(rates[s]) for s in range(0, 400, 50)}})
    log = read_log(tmp_path / "ok")
    assert log.lr_steps is not None and log.lr_steps.tolist() == list(range(0, 400, 50))
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(SPEC.to_dict()))
    run = load_run(tmp_path / "ok", spec_file, peak=PEAK)
    np.testing.assert_allclose(run.lrs, rates[: run.lrs.size])
    with pytest.raises(LogError, match=r"covers 8 of the 396 updates"):
        load_run(tmp_path / "ok")  # the logged rates do not cover every update: a schedule is needed
    # a schedule the logged rates contradict (another peak) is refused, naming the step
    write_events(
        tmp_path / "other", {"loss": loss, "lr": {s: 2 * float(rates[s]) for s in range(0, 400, 50)}}
    )
    with pytest.raises(LogError, match=r"the logged lr at step 50 is 0.002, but .*spec.json gives 0.001"):
        load_run(tmp_path / "other", spec_file, peak=PEAK)


@pytest.mark.parametrize(
    ("series", "kwargs", "message"),
    [
        ({"accuracy": {1: 0.5, 2: 0.6}}, {}, r"which column holds the losses\? none of \['loss'"),
        ({"train/loss": {1: 3.0}, "val/loss": {1: 3.1}}, {"loss_column": "val/loss"}, None),
        ({"loss": {1: 3.0}}, {"loss_column": "val/loss"}, r"no column 'val/loss' \(--loss-column\)"),
        ({"loss": {1: 3.0}}, {"step_column": "step"}, "a TensorBoard log carries its own steps"),
        ({"loss": {1: 3.0, 2: float("nan")}}, {}, r"step 2: the loss \('loss'\) nan must be finite and > 0"),
        ({"loss": {1: 3.0}, "lr": {1: -1.0}}, {}, r"step 1: the lr \('lr'\) -1.0 must be finite and >= 0"),
    ],
)
def test_bad_event_logs_are_refused_naming_the_file(tmp_path, series, kwargs, message):
    write_events(tmp_path / "run", series)
    if message is None:
        assert read_log(tmp_path / "run", **kwargs).losses.tolist() == pytest.approx([3.1])
        return
    with pytest.raises(LogError, match=message) as info:
        read_log(tmp_path / "run", **kwargs)
    assert str(tmp_path / "run") in str(info.value)


def test_an_empty_folder_and_a_missing_reader_are_refused(tmp_path, monkeypatch):
    (tmp_path / "empty").mkdir()
    with pytest.raises(LogError, match="a folder with no TensorBoard event files"):
        read_log(tmp_path / "empty")
    write_events(tmp_path / "run", {"loss": {1: 3.0}})
    monkeypatch.setitem(sys.modules, "tensorboard.backend.event_processing", None)
    with pytest.raises(LogError, match=r"pip install 'wsd-schedule\[tensorboard\]'"):
        read_log(tmp_path / "run")


def test_wsd_plan_reads_tensorboard_runs(tmp_path, capsys):
    # a trunk and one cooldown logged to TensorBoard by a training loop; the plan reads the folders
    from wsd_core.cli import main

    trunk = WSDSpec(3000, warmup_steps=100, decay_steps=0)
    cooldown = trunk.branch_cooldown(2000, 1000, decay_shape="linear")
    rng = np.random.default_rng(0)
    for name, spec in (("trunk", trunk), ("cooldown", cooldown)):
        rates = (
            learning_rates(spec, 3000, peak=PEAK)
            if name == "cooldown"
            else learning_rates(trunk, 3000, peak=PEAK)
        )
        area = np.cumsum(rates)
        drop = np.cumsum(np.maximum(PEAK - rates, 0.0))  # a cooldown lowers the loss
        steps = np.arange(150, 3000, 25)
        loss = (
            2.5
            + 0.8 * area[steps] ** -0.4
            - 0.3 * drop[steps] * (1 + 0.001 * rng.standard_normal(steps.size))
        )
        write_events(
            tmp_path / name,
            {
                "train/loss": dict(zip(steps.tolist(), loss.tolist(), strict=True)),
                "train/lr": {int(s): float(rates[s]) for s in range(3000)},
            },
        )
    np.save(tmp_path / "trunk.npy", learning_rates(trunk, 3000, peak=PEAK))
    main(
        [
            "plan",
            "--run",
            str(tmp_path / "trunk"),
            "--run",
            str(tmp_path / "cooldown"),
            "--law",
            "annealing",
            "--trunk",
            str(tmp_path / "trunk.npy"),
            "--budgets",
            "3000",
            "--lengths",
            "500",
            "1000",
        ]
    )
    out = capsys.readouterr().out
    assert "annealing law fit on 2 run(s)" in out and "-- runs of 3000 updates (2)" in out


def test_a_damaged_event_file_is_refused_and_a_cut_one_read_with_a_warning(tmp_path):
    # before: TensorBoard's reader stopped quietly at the damage, and half the points were used
    steps = np.arange(200)
    write_events(tmp_path / "run", {"loss": dict(zip(steps.tolist(), _losses(steps).tolist(), strict=True))})
    (file,) = (tmp_path / "run").iterdir()
    whole = file.read_bytes()
    middle = len(whole) // 2
    file.write_bytes(whole[:middle] + bytes([whole[middle] ^ 0x01]) + whole[middle + 1 :])
    with pytest.raises(LogError, match=r"damaged: record \d+ \(byte \d+\) fails its (data|length) checksum"):
        read_log(file)
    file.write_bytes(whole[:middle])  # cut inside a record: a writer still running
    with pytest.warns(UserWarning, match=r"ends inside record (\d+) .*read the \1 whole record\(s\)"):
        log = read_log(tmp_path / "run")
    assert 0 < log.steps.size < steps.size and (log.steps == steps[: log.steps.size]).all()
    file.write_bytes(whole)
    assert read_log(file).steps.size == steps.size


def test_every_single_bit_flip_in_an_event_file_is_refused(tmp_path):
    steps = np.arange(5)
    write_events(tmp_path / "run", {"loss": dict(zip(steps.tolist(), _losses(steps).tolist(), strict=True))})
    (file,) = (tmp_path / "run").iterdir()
    whole = file.read_bytes()
    for at in range(0, len(whole), 3):
        file.write_bytes(whole[:at] + bytes([whole[at] ^ 0x10]) + whole[at + 1 :])
        with pytest.raises(LogError):
            read_log(file)
