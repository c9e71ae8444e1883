"""One rank of a 2-rank torch.distributed job (gloo, CPU), for ``tests/test_torch_ranks.py``.

python -m tests.torch_ranks RANK WORLD PORT FOLDER SCENARIO

Each rank builds a ``WSDSchedulersContainer``, steps it (scenario ``counts``: rank r steps 17 + r
times; ``specs``: rank r has its own spec; ``agree``: every rank alike), and saves it with
``torch.distributed.checkpoint``. Prints one line ``RESULT {json}``.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any


def main() -> None:
    rank, world, port, folder, scenario = (
        int(sys.argv[1]),
        int(sys.argv[2]),
        sys.argv[3],
        sys.argv[4],
        sys.argv[5],
    )
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=port, RANK=str(rank), WORLD_SIZE=str(world))
    import torch
    import torch.distributed as dist
    import torch.distributed.checkpoint as dcp

    from wsd_torch import WSDSchedulersContainer, WSDSpec

    dist.init_process_group("gloo", rank=rank, world_size=world)
    out: dict[str, Any] = {}
    try:
        total = 100 + (rank if scenario == "specs" else 0)
        spec = WSDSpec(total, warmup_steps=10, decay_steps=20)
        opts = [torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1)]
        container = WSDSchedulersContainer.for_optimizers(opts, spec=spec)
        for _ in range(17 + (rank if scenario == "counts" else 0)):
            opts[0].step()
            container.step()
        try:
            dcp.save({"lr_schedulers": container}, checkpoint_id=folder)
            out["saved"] = True
        except Exception as e:
            out["error"] = type(e).__name__
            out["message"] = str(e)
        if out.get("saved"):
            again = WSDSchedulersContainer.for_optimizers(opts, spec=spec)
            dcp.load({"lr_schedulers": again}, checkpoint_id=folder)
            out["loaded"] = again.schedulers[0].last_epoch
        dist.barrier()
    finally:
        dist.destroy_process_group()
    print("RESULT " + json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
