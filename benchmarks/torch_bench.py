"""PyTorch benchmarks: host cost of scheduler.step(), and the CUDA training step (GPU only)."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable

import torch
from torch.optim.lr_scheduler import LambdaLR

from benchmarks._timing import Row, interleaved_medians
from wsd_torch import WSDLR, WSDDeviceLR, WSDSpec

TOTAL, WARMUP, DECAY = 20_000, 200, 4_000  # a whole run: 1% warmup, 20% decay
# The same run counted in tokens, its batch growing from 1/4 to the full 1024 tokens over 2000 steps.
TOKEN_RAMP = [(0, 256), (1000, 512), (2000, 1024)]
TOKEN_SPEC = WSDSpec(256 * 1000 + 512 * 1000 + 1024 * (TOTAL - 2000), units="tokens",
                     warmup_steps=WARMUP * 256, decay_steps=DECAY * 1024, decay_shape="cosine",
                     tokens_per_step=TOKEN_RAMP)  # fmt: skip


def _optimizer() -> torch.optim.Optimizer:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    opt.step()  # torch warns if a scheduler steps before its optimizer ever did
    return opt


def _scheduler_factories() -> dict[str, Callable[[], object]]:
    spec = WSDSpec(TOTAL, warmup_steps=WARMUP, decay_steps=DECAY, decay_shape="cosine")
    factories: dict[str, Callable[[], object]] = {
        "LambdaLR(constant)": lambda: LambdaLR(_optimizer(), lambda step: 1.0),
        "WSDLR": lambda: WSDLR(_optimizer(), spec=spec),
        "WSDLR, tokens with a batch ramp": lambda: WSDLR(_optimizer(), spec=TOKEN_SPEC),
    }
    if importlib.util.find_spec("transformers") is not None:
        from transformers import get_wsd_schedule

        factories["transformers get_wsd_schedule"] = lambda: get_wsd_schedule(
            _optimizer(), WARMUP, DECAY, num_training_steps=TOTAL
        )
    if importlib.util.find_spec("pytorch_accelerated") is not None:
        from pytorch_accelerated.schedulers.wsd_scheduler import WSDLrScheduler

        factories["pytorch_accelerated WSDLrScheduler"] = lambda: WSDLrScheduler(
            _optimizer(), total_steps=TOTAL, num_warmup_steps=WARMUP, decay_phase_ratio=DECAY / TOTAL
        )
    return factories


def scheduler_step(repeats: int) -> list[Row]:
    """Median host time of one scheduler.step() over a whole run (warmup, stable, decay), a fresh
    scheduler each repeat (its construction is ~0.1% of the timed run)."""
    runners = {}
    for name, make in _scheduler_factories().items():

        def run(make: Callable[[], object] = make) -> None:
            step = make().step  # type: ignore[attr-defined]
            for _ in range(TOTAL):
                step()

        runners[name] = run
    t = {k: v / TOTAL * 1e6 for k, v in interleaved_medians(runners, repeats).items()}
    base = t["LambdaLR(constant)"]
    rows = [Row("4 torch step()", name, f"{us:.2f} us ({us / base:.2f}x)") for name, us in t.items()]
    ratio = t["WSDLR"] / base
    why = "a per-step Python scheduler should cost what torch's own LambdaLR costs"
    rows.append(Row("4 torch step()", "WSDLR / LambdaLR(constant)", f"{ratio:.3f}", "<= 1.15",
                    "met" if ratio <= 1.15 else f"missed by {ratio / 1.15:.2f}x", why))  # fmt: skip
    ramped = t["WSDLR, tokens with a batch ramp"] / t["WSDLR"]
    rows.append(Row("4 torch step()", "WSDLR in tokens with a batch ramp / in steps", f"{ramped:.3f}",
                    "<= 1.10",
                    "met" if ramped <= 1.10 else f"missed by {ramped / 1.10:.2f}x",
                    "counting tokens is one bisect and a multiply a step"))  # fmt: skip
    return rows


def cuda_training_step(repeats: int) -> list[Row]:
    """AdamW on ~100M parameters with the device-resident rate: eager, compiled and CUDA-graph
    replay, each against the same with a constant rate; recompiles and host syncs counted."""
    if not torch.cuda.is_available():
        return [Row("5 CUDA", "skipped: torch.cuda.is_available() is False on this machine", "-")]
    from torch._dynamo.utils import counters

    dev = "cuda"
    model = torch.nn.Sequential(*[torch.nn.Linear(4096, 4096) for _ in range(6)]).to(dev)
    n_params = sum(p.numel() for p in model.parameters())
    for p in model.parameters():
        p.grad = torch.full_like(p, 1e-3)
    spec = WSDSpec(TOTAL, warmup_steps=10, decay_steps=50, checkpoints=(60, TOTAL))

    def make(scheduled: bool):
        opt = torch.optim.AdamW(model.parameters(), lr=torch.tensor(1e-4, device=dev), capturable=True)
        sched = WSDDeviceLR(opt, spec=spec) if scheduled else None

        def step() -> None:
            opt.step()
            if sched is not None:
                sched.step()

        step()  # optimizer state exists before capture or compile
        return step

    rows, results = [], {}
    for scheduled in (False, True):
        tag = "WSD" if scheduled else "constant"
        eager = make(scheduled)
        compiled = torch.compile(make(scheduled))
        graph_step = make(scheduled)
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(3):
                graph_step()
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            graph_step()
        # Graphs compiled by the first call (the step, plus the pieces around the bookkeeping that
        # runs outside compiled code), then any compiled later: those are the recompiles.
        counters.clear()
        compiled()
        first_call_graphs = counters["stats"]["unique_graphs"]
        for _ in range(120):  # cross warmup, stable, decay and a new period before timing
            compiled()
        recompiles = counters["stats"]["unique_graphs"] - first_call_graphs
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        sync_error = ""
        try:
            for _ in range(20):
                eager()
                compiled()
                graph.replay()
        except RuntimeError as error:  # the first synchronising call raises under "error"
            sync_error = str(error).splitlines()[0][:120]
        finally:
            torch.cuda.set_sync_debug_mode("default")
        syncs = 1 if sync_error else 0

        def timed(fn: Callable[[], object]) -> Callable[[], None]:
            def run() -> None:
                for _ in range(20):
                    fn()
                torch.cuda.synchronize()

            return run

        t = interleaved_medians({"eager": timed(eager), "compiled": timed(compiled),
                                 "graph": timed(graph.replay)}, repeats)  # fmt: skip
        results[tag] = t
        rows.append(Row("5 CUDA", f"{tag}: eager / compiled / graph, {n_params / 1e6:.0f}M params",
                        " / ".join(f"{v / 20 * 1e3:.2f} ms" for v in t.values())))  # fmt: skip
        if scheduled:
            rows.append(Row("5 CUDA", f"graphs compiled by the first call ({first_call_graphs}), then "
                            "recompiles over 120 steps crossing every phase", str(recompiles), "0",
                            "met" if recompiles == 0 else "missed",
                            "a phase change must not retrace: one compile serves the whole run"))  # fmt: skip
            rows.append(Row("5 CUDA", "host syncs in 20 eager + compiled + replayed steps",
                            str(syncs) + (f" ({sync_error})" if sync_error else ""), "0",
                            "met" if syncs == 0 else "missed",
                            "a host sync stalls the GPU queue each step and breaks capture"))  # fmt: skip
    ratio = results["WSD"]["graph"] / results["constant"]["graph"]
    why = "a replayed step is the fastest loop torch has; the schedule must stay in its noise"
    rows.append(Row("5 CUDA", "graph replay: WSD / constant", f"{ratio:.3f}", "<= 1.02",
                    "met" if ratio <= 1.02 else f"missed by {ratio - 1:.1%}", why))  # fmt: skip
    rows.append(_scheduler_step_alone(spec, repeats))
    return rows


def _scheduler_step_alone(spec: WSDSpec, repeats: int) -> Row:
    """What the schedule adds to a replayed step, whatever the model: ``WSDDeviceLR.step()`` alone,
    captured in a graph and replayed (a fixed cost per update, so its share falls as models grow)."""
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1, device="cuda"))],
                            lr=torch.tensor(1e-4, device="cuda"), capturable=True)  # fmt: skip
    sched = WSDDeviceLR(opt, spec=spec)
    opt.step()  # the order torch expects (no step-order warning); the graph replays sched.step() alone
    graph = torch.cuda.CUDAGraph()
    torch.cuda.synchronize()
    with torch.cuda.graph(graph):
        sched.step()
    inner = 200

    def run() -> None:
        for _ in range(inner):
            graph.replay()
        torch.cuda.synchronize()

    run()
    t = interleaved_medians({"step": run}, repeats)["step"]
    return Row("5 CUDA", "WSDDeviceLR.step() alone, one graph replay", f"{t / inner * 1e6:.1f} us")
