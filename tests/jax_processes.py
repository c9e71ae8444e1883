"""One process of a multi-process JAX job on this machine's CPU, over loopback (run as a subprocess
by ``tests/test_multiprocess_checkpoints.py``, once per process).

python -m tests.jax_processes PROCESS PROCESSES PORT FOLDER SCENARIO [--devices N] [--hold S]
    [--timeout S]

Each process has ``--devices`` CPU devices; the job's state is sharded over all of them, so each
process writes and reads its own shards. Prints one line ``RESULT {json}`` with what it saw.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

SHAPE = (64, 1024)  # large enough that each process's shard is its own data file


def _state(step: int, sharding: Any) -> dict[str, Any]:
    import jax
    import numpy as np

    values = np.random.default_rng(step).standard_normal(SHAPE).astype(np.float32)
    return {"w": jax.make_array_from_callback(SHAPE, sharding, lambda index: values[index]), "step": step}


def main() -> None:
    parser = argparse.ArgumentParser()
    for name in ("process", "processes", "port"):
        parser.add_argument(name, type=int)
    parser.add_argument("folder")
    parser.add_argument("scenario")
    parser.add_argument("--devices", type=int, default=2)
    parser.add_argument("--hold", type=float, default=0.0)
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()
    os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={args.devices}"
    import jax

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        f"127.0.0.1:{args.port}", args.processes, args.process, initialization_timeout=60
    )
    out: dict[str, Any] = {}
    start = time.time()
    try:
        out.update(_run(args))
    except Exception as e:  # reported, not raised: the test reads every process's outcome
        out["error"] = type(e).__name__
        out["message"] = str(e)
    out["seconds"] = round(time.time() - start, 2)
    print("RESULT " + json.dumps(out), flush=True)
    sys.stdout.flush()


def _run(args: argparse.Namespace) -> dict[str, Any]:
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import Mesh, NamedSharding
    from jax.sharding import PartitionSpec as P

    from wsd_jax import WSDCheckpointManager, WSDSpec

    spec = WSDSpec(100, warmup_steps=5, decay_steps=10)
    sharding = NamedSharding(Mesh(np.array(jax.devices()).reshape(1, -1), ("x", "y")), P(None, "y"))
    target = {"w": jax.ShapeDtypeStruct(SHAPE, jnp.float32, sharding=sharding), "step": 0}
    options = {"process_timeout_s": args.timeout}
    if args.scenario == "save":  # a fresh folder's first saves, then a restore on every process
        with WSDCheckpointManager(args.folder, spec, max_to_keep=None, **options) as writer:
            for step in (10, 20):
                writer.save(step, _state(step, sharding), force=True)
        with WSDCheckpointManager(args.folder, spec, read_only=True, **options) as reader:
            found = reader.restore_latest_readable(target)
        expected = _state(20, sharding)["w"]
        same = found is not None and bool(jnp.all(found[1]["w"] == expected))
        return {"found": None if found is None else found[0], "same": same}
    if args.scenario == "latest":
        with WSDCheckpointManager(args.folder, spec, read_only=True, **options) as reader:
            found = reader.restore_latest_readable(target)
        return {"found": None if found is None else found[0]}
    if args.scenario == "restore20":
        with WSDCheckpointManager(args.folder, spec, read_only=True, **options) as reader:
            reader.restore(target, 20)
        return {"restored": 20}
    if args.scenario == "unsharded":  # jax.eval_shape(init): no shardings
        with WSDCheckpointManager(args.folder, spec, read_only=True, **options) as reader:
            found = reader.restore_latest_readable({"w": jax.ShapeDtypeStruct(SHAPE, jnp.float32), "step": 0})
        return {"found": None if found is None else found[0]}
    if args.scenario == "write":  # take the folder as its writer, for --hold seconds
        with WSDCheckpointManager(args.folder, spec, **options):
            time.sleep(args.hold)
        return {"wrote": True}
    if args.scenario == "absent":  # process 0 restores, the others never do
        if jax.process_index() == 0:
            with WSDCheckpointManager(args.folder, spec, read_only=True, **options) as reader:
                reader.restore_latest_readable(target)
        else:
            time.sleep(args.hold)
        return {"absent": jax.process_index() != 0}
    raise ValueError(f"no scenario {args.scenario!r}")


if __name__ == "__main__":
    main()
