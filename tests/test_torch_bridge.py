"""wsd_torch: WSDLR (LambdaLR), WSDDeviceLR (device-resident rate) and the schedulers container."""

from __future__ import annotations

import io
import pickle
import subprocess
import sys
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from torch.distributed.checkpoint.stateful import Stateful  # noqa: E402
from torch.optim.lr_scheduler import LambdaLR  # noqa: E402

from tests.backends import cuda_available  # noqa: E402
from tests.reference import reference_multiplier  # noqa: E402
from wsd_torch import WSDLR, WSDDeviceLR, WSDSchedulersContainer, WSDSpec  # noqa: E402

FIELDS: dict[str, Any] = dict(
    total_steps=120,
    warmup_steps=10,
    decay_steps=25,
    checkpoints=[50, 120],
    decay_shape="cosine",
    init_ratio=0.1,
    min_ratio=0.02,
)
BASES = (1e-3, 4e-3)


def _optimizer(cls=torch.optim.AdamW, device="cpu", **kwargs):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 1)).to(device)
    groups = [
        {"params": model[0].parameters(), "lr": BASES[0]},
        {"params": model[1].parameters(), "lr": BASES[1]},
    ]
    return model, cls(groups, **kwargs)


def _train(model, opt, sched, steps, device="cpu"):
    """Runs `steps` updates; returns the rates each update used, per group."""
    used = []
    x = torch.linspace(-1, 1, 24, device=device).reshape(8, 3)
    for _ in range(steps):
        used.append([float(g["lr"]) for g in opt.param_groups])
        loss = model(x).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return used


def _expected(steps, fields=FIELDS):
    return [[b * reference_multiplier(s, **fields) for b in BASES] for s in range(steps)]


def test_wsdlr_is_a_lambdalr_and_follows_the_contract_per_group():
    model, opt = _optimizer()
    sched = WSDLR(opt, **FIELDS)
    assert isinstance(sched, LambdaLR)
    used = _train(model, opt, sched, 130)
    for got, want in zip(used, _expected(130), strict=True):
        assert got == pytest.approx(want, rel=1e-12)


def test_wsdlr_swaps_in_for_a_lambdalr_in_one_line():
    spec = WSDSpec(**FIELDS)
    model_a, opt_a = _optimizer()
    model_b, opt_b = _optimizer()
    used_a = _train(model_a, opt_a, LambdaLR(opt_a, lambda s: spec.multiplier(s)), 60)
    used_b = _train(model_b, opt_b, WSDLR(opt_b, spec=spec), 60)
    assert used_a == used_b
    for p, q in zip(model_a.parameters(), model_b.parameters(), strict=True):
        assert torch.equal(p, q)


def _save_load(obj, weights_only=True):
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=weights_only)


@pytest.mark.parametrize("cls", [WSDLR, WSDDeviceLR])
def test_resume_mid_run_gives_the_identical_rate_sequence(cls):
    kwargs = {} if cls is WSDLR else {"dtype": torch.float64}
    model, opt = _optimizer(foreach=False)
    sched = cls(opt, **FIELDS, **kwargs)
    reference = _train(model, opt, sched, 100)

    model, opt = _optimizer(foreach=False)
    sched = cls(opt, **FIELDS, **kwargs)
    first = _train(model, opt, sched, 37)
    saved = _save_load({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict()})

    model2, opt2 = _optimizer(foreach=False)
    sched2 = cls(opt2, **FIELDS, **kwargs)  # scheduler first, then the optimizer, as torch advises
    model2.load_state_dict(saved["model"])
    opt2.load_state_dict(saved["opt"])
    sched2.load_state_dict(saved["sched"])
    rest = _train(model2, opt2, sched2, 63)
    assert first + rest == reference


def test_resume_in_either_load_order():
    model, opt = _optimizer()
    sched = WSDLR(opt, **FIELDS)
    _train(model, opt, sched, 30)
    saved = _save_load({"opt": opt.state_dict(), "sched": sched.state_dict()})
    _, opt2 = _optimizer()
    opt2.load_state_dict(saved["opt"])  # optimizer first: the new scheduler then sets rates for step 0
    sched2 = WSDLR(opt2, **FIELDS)
    sched2.load_state_dict(saved["sched"])
    assert [g["lr"] for g in opt2.param_groups] == [g["lr"] for g in opt.param_groups]
    assert sched2.last_epoch == 30


@pytest.mark.parametrize("cls", [WSDLR, WSDDeviceLR])
def test_state_from_another_spec_is_refused_unless_the_change_is_explicit(cls):
    _, opt = _optimizer(foreach=False)
    sched = cls(opt, **FIELDS)
    for _ in range(20):
        opt.step()
        sched.step()
    state = _save_load(sched.state_dict())
    assert state["spec"] == WSDSpec(**FIELDS).to_dict()  # the spec travels as a plain dict

    longer = WSDSpec(**{**FIELDS, "total_steps": 240, "checkpoints": [50, 240]})
    _, opt2 = _optimizer(foreach=False)
    sched2 = cls(opt2, spec=longer)
    with pytest.raises(ValueError, match="different spec"):
        sched2.load_state_dict(state)
    sched2.load_state_dict(state, allow_spec_change=True)
    assert sched2.last_epoch == 20 and sched2.spec == longer
    assert [float(g["lr"]) for g in opt2.param_groups] == pytest.approx(
        [b * longer.multiplier(20) for b in BASES], rel=1e-6
    )
    with pytest.raises(ValueError, match="no 'spec'"):
        sched2.load_state_dict({"last_epoch": 3})


def test_whole_scheduler_pickles_and_torch_saves():
    model, opt = _optimizer()
    sched = WSDLR(opt, **FIELDS)
    _train(model, opt, sched, 45)
    for clone in (pickle.loads(pickle.dumps(sched)), _save_load(sched, weights_only=False)):
        assert clone.last_epoch == 45 and clone.spec == sched.spec
        assert clone.get_last_lr() == sched.get_last_lr()
        assert clone.lr_lambdas[0](90) == sched.spec.multiplier(90)


def test_introspection():
    _, opt = _optimizer()
    sched = WSDLR(opt, **FIELDS)
    assert sched.phase().name == "warmup"
    assert sched.period_ends == (50, 120) and sched.decay_starts == (25, 95)
    for _ in range(30):
        opt.step()
        sched.step()
    assert sched.phase().name == "decay" and sched.phase().period == 0


def test_device_lr_matches_wsdlr_training_bit_for_bit_in_float64():
    model_a, opt_a = _optimizer(foreach=False)
    model_b, opt_b = _optimizer(foreach=False)
    used_a = _train(model_a, opt_a, WSDLR(opt_a, **FIELDS), 125)
    used_b = _train(model_b, opt_b, WSDDeviceLR(opt_b, **FIELDS, dtype=torch.float64), 125)
    for a, b in zip(used_a, used_b, strict=True):
        assert a == pytest.approx(b, rel=1e-12)
    for a, b in zip(_expected(125), used_b, strict=True):
        assert a == pytest.approx(b, rel=1e-12)


def test_device_lr_float32_tensors_follow_the_contract():
    model, opt = _optimizer(foreach=False)
    sched = WSDDeviceLR(opt, **FIELDS)
    lr_tensors = [g["lr"] for g in opt.param_groups]
    assert all(t.dtype == torch.float32 and t.dim() == 0 for t in lr_tensors)
    used = _train(model, opt, sched, 125)
    for got, want in zip(used, _expected(125), strict=True):
        assert got == pytest.approx(want, rel=1e-6)
    # the optimizer keeps the very same tensors: a compiled step or captured graph stays valid
    assert all(g["lr"] is t for g, t in zip(opt.param_groups, lr_tensors, strict=True))
    state = sched.state_dict()
    sched.load_state_dict(state)
    assert all(g["lr"] is t for g, t in zip(opt.param_groups, lr_tensors, strict=True))


@pytest.mark.parametrize("path", ["table", "formula"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_device_lr_table_and_formula_follow_the_contract_at_every_count(path, dtype, monkeypatch):
    # The table covers the contract's clamp range [s0, s0 + T]; counts set outside it (before the
    # start, far past the end) must read the clamped entry, which the contract says is exact.
    import wsd_torch._device_lr as device_lr

    if path == "formula":
        monkeypatch.setattr(device_lr, "MAX_TABLE_STEPS", 0)
    fields = dict(FIELDS, start_step=40)
    _, opt = _optimizer()
    sched = WSDDeviceLR(opt, **fields, dtype=dtype)
    assert (sched._rate_table is None) == (path == "formula")
    rtol = 1e-12 if dtype == torch.float64 else 1e-6
    for count in [0, 5, 39, 40, 41, 55, 89, 90, 100, 159, 160, 161, 200, 10**9, 2**62]:
        sched.load_state_dict(sched.state_dict() | {"last_epoch": count})
        want = reference_multiplier(count, **fields)
        for group, base in zip(opt.param_groups, BASES, strict=True):
            assert group["lr"].dtype == dtype
            assert float(group["lr"]) == pytest.approx(base * want, rel=rtol, abs=1e-300), count


def _ops_of_one_step(sched):
    """The aten ops one ``step()`` dispatches (on a CUDA tensor, each is a kernel or a host read)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class RecordOps(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.ops = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.ops.append(str(func))
            return func(*args, **(kwargs or {}))

    sched.optimizer.step()
    with RecordOps() as recorder:
        sched.step()
    return recorder.ops


@pytest.mark.parametrize("path", ["table", "formula"])
def test_device_lr_step_reads_nothing_back_to_the_host(path, monkeypatch):
    # The CPU's view of set_sync_debug_mode("error"): _local_scalar_dense is the op behind .item(),
    # int(tensor) and indexing with a 0-dim tensor, each a host sync on CUDA (and, under capture, a
    # broken CUDA graph). A first version of the table lookup did exactly that.
    import wsd_torch._device_lr as device_lr

    if path == "formula":
        monkeypatch.setattr(device_lr, "MAX_TABLE_STEPS", 0)
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))], lr=1e-3, foreach=False)
    for fields in (FIELDS, dict(FIELDS, start_step=7)):
        ops = _ops_of_one_step(WSDDeviceLR(opt, **fields))
        assert not [op for op in ops if "_local_scalar_dense" in op or ".item" in op], ops


def test_device_lr_step_is_a_handful_of_ops():
    # What a replayed CUDA graph pays per step is one kernel per op: the formula on the device was
    # 56 ops (69 us on an H100, 2.3% of a 100M-parameter AdamW step); the table makes it a lookup.
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))], lr=1e-3, foreach=False)
    ops = _ops_of_one_step(WSDDeviceLR(opt, **FIELDS))
    assert len(ops) <= 7, ops  # count += 1, clamp, index_select, base * m, copy; 2 views (no kernel)


def test_device_lr_pickles_without_its_table():
    # A million-step schedule: the table (4 MB) is rebuilt from the spec, not carried by pickles.
    _, opt = _optimizer()
    sched = WSDDeviceLR(opt, total_steps=1_000_000, warmup_steps=1000, decay_ratio=0.2)
    assert sched._rate_table is not None and sched._rate_table.numel() == 1_000_001
    for _ in range(3):
        opt.step()
        sched.step()
    blob = pickle.dumps(sched)
    assert len(blob) < 100_000
    again = pickle.loads(blob)
    assert torch.equal(again._rate_table, sched._rate_table)
    again.step()
    want = BASES[0] * reference_multiplier(4, total_steps=1_000_000, warmup_steps=1000, decay_ratio=0.2)
    assert float(again.optimizer.param_groups[0]["lr"]) == pytest.approx(want, rel=1e-6)


def test_device_lr_bad_arguments():
    _, opt = _optimizer()
    with pytest.raises(TypeError, match="dtype"):
        WSDDeviceLR(opt, total_steps=10, dtype=torch.int64)
    with pytest.raises(TypeError, match="optimizer"):
        WSDDeviceLR("adam", total_steps=10)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="warmup_steps"):
        WSDLR(opt, total_steps=10, warmup_steps=11)
    with pytest.raises(TypeError, match="not both"):
        WSDLR(opt, spec=WSDSpec(10), total_steps=10)


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16, torch.float16])
def test_a_fused_cuda_optimizer_refuses_a_rate_it_cannot_read_at_construction(dtype):
    # before: torch's "expected scalar type Float but found Double" at optimizer.step(). The check
    # runs before anything is put on the device, so it is tested here without a GPU.
    param = torch.nn.Parameter(torch.zeros(2))
    fused = torch.optim.AdamW([param], lr=1e-3, fused=True)
    with pytest.raises(ValueError, match=rf"dtype={dtype}: param group 0 of this AdamW is fused .* float32"):
        WSDDeviceLR(fused, total_steps=10, device="cuda", dtype=dtype)
    WSDDeviceLR(fused, total_steps=10, dtype=dtype)  # on the CPU, fused kernels read any float rate
    plain = torch.optim.AdamW([param], lr=1e-3, foreach=False)
    assert WSDDeviceLR(plain, total_steps=10, dtype=dtype).dtype == dtype


def test_container_steps_and_checkpoints_as_one_stateful():
    parts = [_optimizer(foreach=False) for _ in range(2)]
    fields_b = {**FIELDS, "decay_shape": "linear"}
    container = WSDSchedulersContainer(
        [WSDLR(parts[0][1], **FIELDS), WSDDeviceLR(parts[1][1], **fields_b, dtype=torch.float64)]
    )
    assert isinstance(container, Stateful) and len(container) == 2
    for _ in range(33):
        for _, opt in parts:
            opt.step()
        container.step()
    state = _save_load(container.state_dict())

    parts2 = [_optimizer(foreach=False) for _ in range(2)]
    container2 = WSDSchedulersContainer(
        [WSDLR(parts2[0][1], **FIELDS), WSDDeviceLR(parts2[1][1], **fields_b, dtype=torch.float64)]
    )
    container2.load_state_dict(state)
    for (_, a), (_, b) in zip(parts, parts2, strict=True):
        assert [float(g["lr"]) for g in a.param_groups] == [float(g["lr"]) for g in b.param_groups]
    with pytest.raises(ValueError, match="number of optimizers"):
        WSDSchedulersContainer([WSDLR(parts2[0][1], **FIELDS)]).load_state_dict(state)
    with pytest.raises(ValueError, match="empty"):
        WSDSchedulersContainer([])


@pytest.mark.parametrize("path", ["table", "formula"])
def test_device_rate_update_compiles_with_inductor_as_one_graph(path, monkeypatch):
    # The rate update that runs inside a user's compiled step, through the real compiler (the test
    # below counts frames with a stub backend, which lowers nothing): fullgraph raises on any graph
    # break. torch.take compiled under dynamo but inductor failed to lower it (seen on an H100).
    import wsd_torch._device_lr as device_lr

    if path == "formula":
        monkeypatch.setattr(device_lr, "MAX_TABLE_STEPS", 0)
    torch._dynamo.reset()
    _, opt = _optimizer(foreach=False)
    sched = WSDDeviceLR(opt, **dict(FIELDS, start_step=3))
    refresh = torch.compile(sched._refresh, fullgraph=True, backend="inductor")
    for count in (0, 12, 60, 200):
        sched._count.fill_(count)
        refresh()
        want = reference_multiplier(count, **dict(FIELDS, start_step=3))
        for group, base in zip(opt.param_groups, BASES, strict=True):
            assert float(group["lr"]) == pytest.approx(base * want, rel=1e-6), count


def test_compiled_step_does_not_recompile_across_the_whole_schedule():
    from torch._dynamo.testing import CompileCounter

    torch._dynamo.reset()
    model, opt = _optimizer(foreach=False)
    sched = WSDDeviceLR(opt, **FIELDS)
    counter = CompileCounter()

    @torch.compile(backend=counter)
    def opt_and_sched_step():
        opt.step()
        sched.step()

    x = torch.ones(8, 3)
    frames_after_first = None
    for step in range(125):  # warmup, stable, decay, the second period, and past the end
        opt.zero_grad()
        model(x).pow(2).mean().backward()
        opt_and_sched_step()
        if step == 0:
            frames_after_first = counter.frame_count
    assert frames_after_first is not None and counter.frame_count == frames_after_first
    assert float(opt.param_groups[0]["lr"]) == pytest.approx(BASES[0] * FIELDS["min_ratio"], rel=1e-6)


def test_importing_wsd_torch_needs_no_jax():
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('jax', 'jaxlib', 'optax', 'flax', 'orbax'):\n"
        "            raise ImportError('jax is blocked for this test')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import torch, wsd_torch\n"
        "opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)\n"
        "s = wsd_torch.WSDLR(opt, total_steps=10)\n"
        "assert not {'jax', 'optax'} & set(sys.modules)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --- CUDA: run where a GPU is lent; skipped otherwise ------------------------------------------

requires_cuda = pytest.mark.skipif(not cuda_available(), reason="no CUDA GPU")


@pytest.mark.cuda
@requires_cuda
@pytest.mark.parametrize("mode", ["capturable", "fused"])
def test_cuda_step_does_no_host_sync(mode):
    # the two AdamW implementations that take a device tensor as lr on CUDA (the docstring's claim)
    model, opt = _optimizer(device="cuda", **{mode: True})
    sched = WSDDeviceLR(opt, **FIELDS)
    x = torch.ones(8, 3, device="cuda")
    loss_fn = lambda: model(x).pow(2).mean()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(125):
            opt.zero_grad(set_to_none=False)
            loss_fn().backward()
            opt.step()
            sched.step()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert sched.last_epoch == 125
    for group, want in zip(opt.param_groups, _expected(126)[125], strict=True):
        assert group["lr"].device.type == "cuda"
        assert float(group["lr"]) == pytest.approx(want, rel=1e-6)


@pytest.mark.cuda
@requires_cuda
def test_cuda_graph_replay_follows_the_schedule():
    model, opt = _optimizer(device="cuda", capturable=True)
    sched = WSDDeviceLR(opt, **FIELDS)
    x = torch.ones(8, 3, device="cuda")
    # warm up on a side stream (optimizer state must exist before capture), then roll back the count
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            opt.zero_grad(set_to_none=False)
            model(x).pow(2).mean().backward()
            opt.step()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    opt.zero_grad(set_to_none=False)
    with torch.cuda.graph(graph):
        model(x).pow(2).mean().backward()
        opt.step()
        sched.step()
    sched.load_state_dict(sched.state_dict() | {"last_epoch": 0})
    rates = []
    for _ in range(125):
        rates.append([float(g["lr"]) for g in opt.param_groups])
        graph.replay()
    for got, want in zip(rates, _expected(125), strict=True):
        assert got == pytest.approx(want, rel=1e-6)


@pytest.mark.cuda
@requires_cuda
def test_cuda_inductor_compiled_step_never_recompiles():
    torch._dynamo.reset()
    model, opt = _optimizer(device="cuda", capturable=True)
    sched = WSDDeviceLR(opt, **FIELDS)
    torch._dynamo.config.error_on_recompile = True
    try:

        @torch.compile
        def opt_and_sched_step():
            opt.step()
            sched.step()

        x = torch.ones(8, 3, device="cuda")
        for _ in range(125):
            opt.zero_grad(set_to_none=False)
            model(x).pow(2).mean().backward()
            opt_and_sched_step()
    finally:
        torch._dynamo.config.error_on_recompile = False
    assert float(opt.param_groups[0]["lr"]) == pytest.approx(BASES[0] * FIELDS["min_ratio"], rel=1e-6)
