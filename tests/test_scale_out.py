"""Scale-out: sharded JAX training with a resharding restore, and torch.distributed (DDP, FSDP2)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # subprocesses and real training: make test-fast skips it

ROOT = Path(__file__).resolve().parents[1]


def test_sharded_jax_resharded_restore_matches_a_single_device_run(tmp_path):
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4"}  # before jax starts
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "sharded_jax.py"), str(tmp_path / "ckpt"), "--json"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["devices"] == 4
    # each device's block of w (64x32): rows split 4 ways, then rows and columns split 2x2
    assert result["layouts"] == {"before": [16, 32], "after": [32, 16]}
    assert result["rates"] == result["ref_rates"]  # the same rate at every step, exactly
    np.testing.assert_allclose(result["losses"], result["ref_losses"], rtol=1e-5)
    assert len(result["rates"]) == 60


# A worker process of a CPU (gloo) FSDP2 run has, rarely and under load, aborted in C++ with this
# message (a std::thread destroyed while joinable): twice in about ten full runs, not reproduced in 28
# runs of the phase under 4x load; and a DDP run once hung after both ranks wrote their results (one
# worker gone, the other in the barrier or the teardown, until the 600 s timeout). Only a run whose
# ranks all wrote their results (training and checkpoint done; the trouble was in the barrier, the
# process-group teardown or the exit: torch's and gloo's code) is repeated, once; any other failure,
# or the same one twice, fails the test. A phase takes seconds: a run past RUN_TIMEOUT_S has hung.
_TEARDOWN_ABORT = "terminate called without an active exception"
RUN_TIMEOUT_S = 240


def _torch_run(mode: str, phase: str, tmp: Path) -> list[dict]:
    out = tmp / phase
    for attempt in (1, 2):
        for stale in out.glob("rank*.json"):
            stale.unlink()
        # its own process group: a hung run is killed with its workers, which would outlive it
        run = subprocess.Popen(
            [sys.executable, str(ROOT / "examples" / "torch_distributed.py"), "--mode", mode,
             "--phase", phase, "--ckpt", str(tmp / "ckpt"), "--out", str(out)],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        )  # fmt: skip
        try:
            _, stderr = run.communicate(timeout=RUN_TIMEOUT_S)
            hung = False
        except subprocess.TimeoutExpired:
            os.killpg(run.pid, signal.SIGKILL)
            _, stderr = run.communicate()
            hung = True
        if not hung and run.returncode == 0:
            break
        written = sorted(p.name for p in out.glob("rank*.json"))
        after_the_work = (hung or _TEARDOWN_ABORT in stderr) and written == ["rank0.json", "rank1.json"]
        assert attempt == 1 and after_the_work, (
            f"{mode} {phase} (attempt {attempt}) {'hung' if hung else 'failed'}; rank results written: "
            f"{written}\n" + stderr[-3000:]
        )
    return [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]


@pytest.mark.parametrize("mode", ["ddp", "fsdp2"])
def test_torch_distributed_resume_from_dcp_is_identical_on_every_rank(mode, tmp_path):
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        from torch_distributed import BASES, SPEC, SPLIT
    finally:
        sys.path.pop(0)
    first = _torch_run(mode, "first", tmp_path)
    resumed = _torch_run(mode, "resume", tmp_path)  # a fresh pair of processes, loading with DCP
    full = _torch_run(mode, "full", tmp_path)
    expected = [[b * SPEC.multiplier(s) for b in BASES] for s in range(SPEC.total_steps)]
    for rank in (0, 1):
        assert first[rank]["start"] == 0 and resumed[rank]["start"] == SPLIT
        rates = first[rank]["rates"] + resumed[rank]["rates"]
        assert rates == full[rank]["rates"]  # the identical rate sequence, both optimizers
        flat = [r for pair in rates for r in pair]
        assert flat == pytest.approx([e for pair in expected for e in pair], rel=1e-12)
        # the model too: resumed training ends where uninterrupted training does
        assert resumed[rank]["checksum"] == pytest.approx(full[rank]["checksum"], rel=1e-12)
    assert resumed[0] == resumed[1] and full[0] == full[1]  # every rank agrees
