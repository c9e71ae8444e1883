"""``min_lr``: the torch schedulers' floor as an absolute rate, the same in every param group or one
per group (Megatron-LM's per-group ``min_lr``).

Group g follows the spec with ``min_ratio = min_lr_g / base_lr_g`` (``docs/contract.md``, "Absolute
values"): checked against the 340-digit reference, against torch's own ``CosineAnnealingLR`` with
``eta_min``, and through saving, loading and groups added later.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tests.reference import reference_multiplier  # noqa: E402
from wsd_torch import WSDLR, WSDDeviceLR  # noqa: E402

SCHEDULERS = [WSDLR, WSDDeviceLR]
BASES = [1e-3, 3e-2, 1e-3, 5e-4]


def _optimizer(bases: list[float] = BASES) -> Any:
    groups = [{"params": [torch.nn.Parameter(torch.zeros(2))], "lr": lr} for lr in bases]
    return torch.optim.AdamW(groups, foreach=False)


def _run(scheduler: Any, steps: int) -> np.ndarray:
    rates = []
    for _ in range(steps):
        rates.append([float(lr) for lr in scheduler.get_last_lr()])
        scheduler.optimizer.step()
        scheduler.step()
    return np.asarray(rates)


@pytest.mark.parametrize("cls", SCHEDULERS)
@pytest.mark.parametrize("shape", ["linear", "1-sqrt", "geometric", "inverse"])
def test_every_group_follows_the_reference_and_ends_at_the_same_absolute_floor(cls, shape):
    fields = {"total_steps": 60, "warmup_steps": 5, "decay_steps": 20, "decay_shape": shape,
              "checkpoints": [30, 60]}  # fmt: skip
    min_lr = 2e-4
    scheduler = cls(_optimizer(), min_lr=min_lr, **fields)
    rates = _run(scheduler, 64)
    rtol = 1e-12 if cls is WSDLR else 2e-6
    for g, base in enumerate(BASES):
        expected = [base * reference_multiplier(s, **fields, min_ratio=min_lr / base) for s in range(64)]
        np.testing.assert_allclose(rates[:, g], expected, rtol=rtol)
    np.testing.assert_allclose(rates[60:], min_lr, rtol=rtol)  # one absolute floor in every group


@pytest.mark.parametrize("cls", SCHEDULERS)
def test_a_whole_run_cosine_decay_equals_torchs_cosine_annealing_with_eta_min(cls):
    total, eta_min = 50, 1e-4
    theirs = torch.optim.lr_scheduler.CosineAnnealingLR(_optimizer(), T_max=total, eta_min=eta_min)
    ours = cls(_optimizer(), total_steps=total, decay_steps=total, decay_shape="cosine", min_lr=eta_min)
    rtol = 1e-10 if cls is WSDLR else 2e-6
    np.testing.assert_allclose(_run(ours, total + 1), _run(theirs, total + 1), rtol=rtol)


@pytest.mark.parametrize("cls", SCHEDULERS)
def test_a_group_added_later_gets_its_own_ratio_to_the_same_floor(cls):
    optimizer = _optimizer([1e-3])
    scheduler = cls(optimizer, total_steps=20, decay_steps=10, decay_shape="linear", min_lr=1e-4)
    optimizer.step()
    scheduler.step()
    optimizer.add_param_group({"params": [torch.nn.Parameter(torch.zeros(1))], "lr": 1e-2})
    optimizer.step()
    scheduler.step()  # takes the new group in
    rates = _run(scheduler, 25)  # counts 2 .. 26
    np.testing.assert_allclose(rates[-1], [1e-4, 1e-4], rtol=2e-6)
    halfway = [1e-3 - 0.5 * (1e-3 - 1e-4), 1e-2 - 0.5 * (1e-2 - 1e-4)]  # count 15, half of the decay
    np.testing.assert_allclose(rates[13], halfway, rtol=2e-6)


@pytest.mark.parametrize("cls", SCHEDULERS)
def test_the_floor_is_saved_and_a_different_one_is_a_spec_change(cls):
    fields = {"total_steps": 40, "decay_steps": 10}
    scheduler = cls(_optimizer(), min_lr=1e-4, **fields)
    _run(scheduler, 33)
    buffer = io.BytesIO()
    torch.save(scheduler.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    assert state["min_lr"] == 1e-4
    again = cls(_optimizer(), min_lr=1e-4, **fields)
    again.load_state_dict(state)
    assert again.last_epoch == 33
    np.testing.assert_allclose(_run(again, 10), _run(scheduler, 10), rtol=1e-6)
    with pytest.raises(ValueError, match=r"min_lr=0\.0001, this scheduler has min_lr=0\.0002"):
        cls(_optimizer(), min_lr=2e-4, **fields).load_state_dict(state)
    with pytest.raises(ValueError, match=r"min_lr=0\.0001, this scheduler has min_lr=None"):
        cls(_optimizer(), **fields).load_state_dict(state)
    changed = cls(_optimizer(), min_lr=2e-4, on_spec_change="continue", **fields)
    changed.load_state_dict(state)
    assert changed.last_epoch == 33
    assert "min_lr" not in cls(_optimizer(), **fields).state_dict()  # the format is unchanged without it


@pytest.mark.parametrize("cls", SCHEDULERS)
def test_a_refused_state_changes_nothing(cls):
    scheduler = cls(_optimizer(), total_steps=40, decay_steps=10, min_lr=1e-4)
    state = scheduler.state_dict()
    state["base_lrs"] = [1e-3, 3e-2, 5e-5, 5e-4]  # min_lr above group 2's rate
    before = scheduler.state_dict()
    with pytest.raises(ValueError, match=r"min_lr=0\.0001 with param group 2's lr 5e-05"):
        scheduler.load_state_dict(state)
    assert scheduler.state_dict() == before


@pytest.mark.parametrize("cls", SCHEDULERS)
@pytest.mark.parametrize(
    ("kwargs", "bases", "error", "match"),
    [
        ({"min_ratio": 0.1}, BASES, TypeError, r"give min_lr \(an absolute rate\) or min_ratio .*, not both"),
        (
            {},
            [0.0, 1e-3],
            ValueError,
            "min_lr=0.0001 with param group 0's lr 0: min_lr must be < param group 0",
        ),
        ({}, [1e-3, 5e-5], ValueError, "min_lr=0.0001 with param group 1's lr 5e-05: min_lr must be < param"),
        # before: accepted, and the group never decayed, though the docs said it raises
        ({}, [1e-3, 1e-4], ValueError, "min_lr=0.0001 with param group 1's lr 0.0001: .* would never decay"),
        ({"decay_shape": "geometric"}, [5e-5], ValueError, "with param group 0's lr 5e-05"),
    ],
)
def test_bad_floors_name_the_group_and_the_value(cls, kwargs, bases, error, match):
    with pytest.raises(error, match=match):
        cls(_optimizer(bases), total_steps=10, min_lr=1e-4, **kwargs)


@pytest.mark.parametrize("cls", SCHEDULERS)
def test_min_lr_is_a_finite_non_negative_number(cls):
    with pytest.raises(ValueError, match="min_lr must be >= 0"):
        cls(_optimizer(), total_steps=10, min_lr=-1e-4)
    with pytest.raises(TypeError, match="min_lr must be a real number"):
        cls(_optimizer(), total_steps=10, min_lr="1e-4")


@pytest.mark.parametrize("path", ["table", "formula"])
def test_the_per_group_device_rates_compile_as_one_graph(path, monkeypatch):
    # fullgraph raises on any graph break: picking a group's row must stay a device op
    import wsd_torch._device_lr as device_lr

    if path == "formula":
        monkeypatch.setattr(device_lr, "MAX_TABLE_STEPS", 0)
    torch._dynamo.reset()
    optimizer = _optimizer()
    fields: dict[str, Any] = {
        "total_steps": 60,
        "decay_steps": 20,
        "decay_shape": "geometric",
        "checkpoints": [30, 60],
    }
    scheduler = WSDDeviceLR(optimizer, min_lr=2e-4, **fields)
    refresh = torch.compile(scheduler._refresh, fullgraph=True, backend="inductor")
    for count in (0, 25, 45, 200):
        scheduler._count.fill_(count)
        refresh()
        for group, base in zip(optimizer.param_groups, BASES, strict=True):
            want = base * reference_multiplier(count, **fields, min_ratio=2e-4 / base)
            assert float(group["lr"]) == pytest.approx(want, rel=2e-6), count


def _cuda_available() -> bool:
    return torch.cuda.is_available()


@pytest.mark.cuda
@pytest.mark.skipif(not _cuda_available(), reason="no CUDA GPU")
def test_cuda_per_group_floors_need_no_host_sync_and_replay_in_a_graph():
    groups = [{"params": [torch.nn.Parameter(torch.zeros(4, device="cuda"))], "lr": lr} for lr in BASES]
    optimizer = torch.optim.AdamW(groups, capturable=True)
    fields: dict[str, Any] = {
        "total_steps": 60,
        "warmup_steps": 5,
        "decay_steps": 20,
        "checkpoints": [30, 60],
    }
    scheduler = WSDDeviceLR(optimizer, min_lr=2e-4, **fields)
    expected = [[b * reference_multiplier(s, **fields, min_ratio=2e-4 / b) for b in BASES] for s in range(70)]
    for group in optimizer.param_groups:  # gradients, and optimizer state before the capture
        group["params"][0].grad = torch.ones_like(group["params"][0])
    optimizer.step()
    scheduler.load_state_dict(scheduler.state_dict() | {"last_epoch": 0})
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(10):
            optimizer.step()
            scheduler.step()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert [float(g["lr"]) for g in optimizer.param_groups] == pytest.approx(expected[10], rel=2e-6)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        optimizer.step()
        scheduler.step()
    scheduler.load_state_dict(scheduler.state_dict() | {"last_epoch": 0})
    for s in range(70):
        assert [float(g["lr"]) for g in optimizer.param_groups] == pytest.approx(expected[s], rel=2e-6), s
        graph.replay()


@pytest.mark.parametrize("cls", SCHEDULERS)
def test_one_floor_per_group_follows_the_reference_and_round_trips(cls):
    fields: dict[str, Any] = {
        "total_steps": 60,
        "warmup_steps": 5,
        "decay_steps": 20,
        "decay_shape": "1-sqrt",
    }
    floors = [1e-4, 3e-3, 0.0, 2e-4]
    scheduler = cls(_optimizer(), min_lr=floors, **fields)
    rates = _run(scheduler, 64)
    rtol = 1e-12 if cls is WSDLR else 2e-6
    for g, (base, floor) in enumerate(zip(BASES, floors, strict=True)):
        expected = [base * reference_multiplier(s, **fields, min_ratio=floor / base) for s in range(64)]
        np.testing.assert_allclose(rates[:, g], expected, rtol=rtol, atol=1e-300)
    buffer = io.BytesIO()
    torch.save(scheduler.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    assert state["min_lr"] == floors  # a list, as torch.save(weights_only=True) reads it
    again = cls(_optimizer(), min_lr=tuple(floors), **fields)
    again.load_state_dict(state)
    assert again.last_epoch == 64
    with pytest.raises(
        ValueError, match=r"saved state was made with min_lr=\(0\.0001, 0\.003, 0\.0, 0\.0002\)"
    ):
        cls(_optimizer(), min_lr=1e-4, **fields).load_state_dict(state)


@pytest.mark.parametrize("cls", SCHEDULERS)
def test_one_floor_per_group_is_checked_per_group(cls):
    with pytest.raises(
        ValueError, match=r"min_lr must be one rate, or one per param group \(4\), got 2 rates"
    ):
        cls(_optimizer(), total_steps=10, min_lr=[1e-4, 1e-4])
    with pytest.raises(ValueError, match=r"min_lr\[2\] must be >= 0"):
        cls(_optimizer(), total_steps=10, min_lr=[1e-4, 1e-4, -1.0, 1e-4])
    with pytest.raises(ValueError, match=r"min_lr=0\.002 with param group 2.s lr 0\.001"):
        cls(_optimizer(), total_steps=10, min_lr=[1e-4, 1e-4, 2e-3, 1e-4])
    optimizer = _optimizer([1e-3])
    scheduler = cls(optimizer, total_steps=20, decay_steps=10, min_lr=[1e-4])
    optimizer.add_param_group({"params": [torch.nn.Parameter(torch.zeros(1))], "lr": 1e-2})
    with pytest.raises(ValueError, match="param group 1 was added since"):
        optimizer.step()
        scheduler.step()
