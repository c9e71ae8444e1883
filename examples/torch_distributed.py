"""Data-parallel PyTorch training (DDP or FSDP2) with WSDLR, saved and resumed with
torch.distributed.checkpoint (DCP).

    python examples/torch_distributed.py --mode {ddp,fsdp2} --phase {first,resume,full} \\
        --ckpt DIR --out DIR [--world 2]

Starts `--world` processes on CPU (gloo). Two optimizers (one per part of the model) are stepped by a
WSDSchedulersContainer, which DCP saves and loads through its Stateful interface, next to the model
and optimizer states from torch.distributed.checkpoint.state_dict. `first` trains to SPLIT and saves;
`resume` (a fresh set of processes) loads and trains to the end; `full` trains start to end without
stopping. Each rank writes the rates every update used and a checksum of its final parameters.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
import torch.multiprocessing as mp
from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict
from torch.distributed.checkpoint.stateful import Stateful

from wsd_torch import WSDLR, WSDSchedulersContainer, WSDSpec

SPEC = WSDSpec(40, warmup_steps=4, decay_steps=10, checkpoints=[20, 40], decay_shape="linear")
BASES = (1e-2, 5e-3)
SPLIT = 17


class ModelAndOptimizers(Stateful):
    """Model and optimizer states in DCP's sharding-aware form (works for DDP and FSDP2 alike)."""

    def __init__(self, model: torch.nn.Module, optimizers: list[torch.optim.Optimizer]) -> None:
        self.model, self.optimizers = model, optimizers

    def state_dict(self) -> dict[str, Any]:
        model_state, optim_state = get_state_dict(self.model, self.optimizers)
        return {"model": model_state, "optim": optim_state}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        set_state_dict(self.model, self.optimizers, model_state_dict=state_dict["model"],
                       optim_state_dict=state_dict["optim"])  # fmt: skip


def build(mode: str, world: int) -> tuple[torch.nn.Module, list[torch.optim.Optimizer]]:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    first, second = net[0], net[2]
    model: torch.nn.Module
    if mode == "ddp":
        model = torch.nn.parallel.DistributedDataParallel(net)
    else:
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        mesh = init_device_mesh("cpu", (world,))
        fully_shard(first, mesh=mesh)
        fully_shard(second, mesh=mesh)
        fully_shard(net, mesh=mesh)  # shards in place
        model = net
    optimizers: list[torch.optim.Optimizer] = [
        torch.optim.AdamW(first.parameters(), lr=BASES[0], foreach=False),
        torch.optim.AdamW(second.parameters(), lr=BASES[1], foreach=False),
    ]
    return model, optimizers


def worker(rank: int, args: argparse.Namespace) -> None:
    # a peer that dies (gloo's teardown has aborted a worker, rarely) fails the others' collectives
    # within two minutes instead of gloo's default 30
    dist.init_process_group("gloo", init_method=f"file://{args.init_file}", rank=rank, world_size=args.world,
                            timeout=datetime.timedelta(seconds=120))  # fmt: skip
    model, optimizers = build(args.mode, args.world)
    schedulers = WSDSchedulersContainer([WSDLR(o, spec=SPEC) for o in optimizers])
    state = {"app": ModelAndOptimizers(model, optimizers), "schedulers": schedulers}
    if args.phase == "resume":
        dcp.load(state, checkpoint_id=args.ckpt)
    start = schedulers.schedulers[0].last_epoch
    stop = SPLIT if args.phase == "first" else SPEC.total_steps
    rates = []
    for step in range(start, stop):
        g = torch.Generator().manual_seed(1000 * step + rank)  # each rank its own shard of the data
        x = torch.randn(16, 8, generator=g)
        loss = (model(x).squeeze(-1) - x[:, 0].sin()).pow(2).mean()
        for o in optimizers:
            o.zero_grad()
        loss.backward()
        rates.append([float(o.param_groups[0]["lr"]) for o in optimizers])
        for o in optimizers:
            o.step()
        schedulers.step()
    if args.phase == "first":
        dcp.save(state, checkpoint_id=args.ckpt)
    full = {k: v.full_tensor() if hasattr(v, "full_tensor") else v for k, v in model.state_dict().items()}
    checksum = float(sum(v.double().abs().sum() for v in full.values()))
    Path(args.out, f"rank{rank}.json").write_text(
        json.dumps({"start": start, "rates": rates, "checksum": checksum})
    )
    dist.barrier()
    dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mode", choices=["ddp", "fsdp2"], required=True)
    parser.add_argument("--phase", choices=["first", "resume", "full"], required=True)
    parser.add_argument("--ckpt", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--world", type=int, default=2)
    args = parser.parse_args()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        args.init_file = os.path.join(tmp, "rendezvous")
        mp.spawn(worker, args=(args,), nprocs=args.world, join=True)
    results = [json.loads(Path(args.out, f"rank{r}.json").read_text()) for r in range(args.world)]
    first = results[0]
    same_rates = all(r["rates"] == first["rates"] for r in results)
    same_params = all(r["checksum"] == first["checksum"] for r in results)
    last = first["rates"][-1] if first["rates"] else []
    print(
        f"{args.mode} {args.phase}: {args.world} ranks trained steps {first['start']}.."
        f"{first['start'] + len(first['rates']) - 1}; last rates {[f'{r:.3g}' for r in last]}; "
        f"rates identical on every rank: {same_rates}; parameters identical: {same_params}"
    )


if __name__ == "__main__":
    main()
