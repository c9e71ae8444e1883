"""A training process killed with SIGKILL at random moments ends bit-identical to an unbroken run."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # subprocesses and real training: make test-fast skips it

ROOT = Path(__file__).resolve().parents[1]


def _start(ckpt: Path, out: Path, step_sleep: float) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.fault_trainer", str(ckpt), str(out), "--step-sleep", str(step_sleep)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip


def _kill(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


def test_sigkilled_run_resumes_bit_identical(tmp_path):
    reference = tmp_path / "reference.npz"
    done = subprocess.run(
        [sys.executable, "-m", "tests.fault_trainer", str(tmp_path / "ref_ckpt"), str(reference)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr

    ckpt, out = tmp_path / "ckpt", tmp_path / "resumed.npz"
    rng = random.Random(20261121)
    starts, kills, log = [], 0, []
    for attempt in range(12):
        proc = _start(ckpt, out, step_sleep=0.02)
        assert proc.stdout is not None
        if kills < 4:
            # Kill 1: the instant a background (async) save has been started. Kills 2-4: after a
            # random number of saves plus a random delay: mid-step, mid-save or between saves.
            saves_before_kill = 1 if attempt == 0 else rng.randint(1, 3)
            seen = 0
            for line in proc.stdout:
                log.append(line.strip())
                if line.startswith("SAVE_STARTED"):
                    seen += 1
                    if seen == saves_before_kill:
                        if attempt > 0:
                            time.sleep(rng.uniform(0.0, 0.15))
                        _kill(proc)
                        kills += 1
                        break
            if proc.poll() is not None and proc.returncode == -signal.SIGKILL:
                continue
        output = proc.stdout.read()
        log.extend(output.split("\n"))
        assert proc.wait(timeout=300) == 0, output
        starts = [line for line in log if line.startswith("START")]
        break
    else:
        raise AssertionError(f"the job did not finish after 12 starts; log: {log}")

    assert kills >= 4, log
    assert any(s != "START 0" for s in starts), "no restart resumed from a checkpoint"
    want, got = np.load(reference), np.load(out)
    assert sorted(want.files) == sorted(got.files)
    for name in want.files:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)  # bit-identical
    rates = got["['rates']"]
    assert rates[0] == 0.0 and np.count_nonzero(rates[1:]) == 79  # every update recorded its rate
