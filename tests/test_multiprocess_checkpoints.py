"""Orbax checkpoints of a multi-process JAX job: 2 processes on this machine's CPU over loopback
(``tests/jax_processes.py``), each holding its own shards. Every process of a job sees one run id,
one verdict per step and one lock result, and nothing waits without a bound: each job runs under a
timeout, so a hang fails the test instead of blocking it."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # real jobs of several processes

ROOT = Path(__file__).resolve().parents[1]
JOB_TIMEOUT = 150  # seconds for a whole job: a hang fails here


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(folder: Path, scenario: str, processes: int = 2, **options: float) -> list[subprocess.Popen]:
    port = _port()
    flags = [f"--{k}={v}" for k, v in options.items()]
    return [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.jax_processes",
                str(i),
                str(processes),
                str(port),
                str(folder),
                scenario,
                *flags,
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(processes)
    ]


def _results(jobs: list[subprocess.Popen]) -> list[dict]:
    out = []
    for job in jobs:
        try:
            stdout, stderr = job.communicate(timeout=JOB_TIMEOUT)
        except subprocess.TimeoutExpired:
            for other in jobs:
                other.kill()
            pytest.fail("a process of the job hung")
        lines = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
        assert lines, f"no result (exit {job.returncode}): {stderr[-2000:]}"
        out.append(json.loads(lines[-1][len("RESULT ") :]))
    return out


def _job(folder: Path, scenario: str, processes: int = 2, **options: float) -> list[dict]:
    return _results(_start(folder, scenario, processes, **options))


def test_the_first_save_of_a_two_process_job_restores_in_every_fresh_folder(tmp_path):
    # before: every process wrote .wsd-run-id with its own id; when process 1's rename won, the
    # folder named another run than the records (3 to 4 of 11 fresh folders): restore refused it
    for i in range(4):
        folder = tmp_path / f"run{i}"
        results = _job(folder, "save")
        assert results == [{**r, "found": 20, "same": True} for r in results], results
        run_id = (folder / ".wsd-run-id").read_text().strip()
        records = [json.loads((folder / s / "integrity" / "metadata").read_text()) for s in ("10", "20")]
        assert {r["run_id"] for r in records} == {run_id}


def _damage_a_shard_of(folder: Path, step: int, process: int) -> None:
    data = max((folder / str(step) / "state" / f"ocdbt.process_{process}" / "d").iterdir(),
               key=lambda p: p.stat().st_size)  # fmt: skip
    damaged = bytearray(data.read_bytes())
    damaged[len(damaged) // 2] ^= 0x20
    data.write_bytes(bytes(damaged))


def test_damage_one_process_sees_is_a_skip_on_every_process_and_never_a_hang(tmp_path):
    # before: restore left process 0 waiting in Orbax's barrier; restore_latest_readable sent process
    # 1 to step 10 while process 0 stayed on step 20, then failed with DEADLINE_EXCEEDED
    folder = tmp_path / "run"
    assert all(r["found"] == 20 for r in _job(folder, "save"))
    _damage_a_shard_of(folder, 20, process=1)
    latest = _job(folder, "latest")
    assert [r.get("found") for r in latest] == [10, 10], latest
    restored = _job(folder, "restore20")
    assert [r.get("error") for r in restored] == ["CheckpointIntegrityError"] * 2, restored
    # process 0 learns it from process 1 (an unreadable shard), or sees it itself (the fingerprint of
    # the whole array, which every process computes together, differs)
    assert (
        "seen by process 1" in restored[0]["message"] or "leaf ['w'] does not match" in restored[0]["message"]
    )
    assert all(r["seconds"] < 30 for r in latest + restored)


def test_every_process_of_a_second_writer_is_refused_the_lock(tmp_path):
    # before: process 0 got WriterLockError, process 1 nothing, and died 30 s later (DEADLINE_EXCEEDED)
    folder = tmp_path / "run"
    holder = _start(folder, "write", hold=20)
    import time

    time.sleep(8)  # (the holder's processes have started and taken the lock)
    second = _results(_start(folder, "write"))
    assert [r.get("error") for r in second] == ["WriterLockError"] * 2, second
    assert all(r["seconds"] < 15 for r in second)
    assert [r.get("wrote") for r in _results(holder)] == [True, True]


def test_a_sharded_checkpoint_restored_without_shardings_elsewhere_is_the_callers_error(tmp_path):
    # before: Orbax's topology error was wrapped as "state is unreadable": restore_latest_readable
    # skipped every step and returned None (a fresh start)
    folder = tmp_path / "run"
    assert all(r["found"] == 20 for r in _job(folder, "save"))
    for processes, devices in ((2, 1), (1, 4)):  # another layout of the job's devices
        results = _job(folder, "unsharded", processes, devices=devices)
        assert [r.get("error") for r in results] == ["ValueError"] * processes, results
        assert all("jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s)" in r["message"] for r in results)


def test_a_process_that_never_comes_is_a_bounded_failure_not_damage(tmp_path):
    folder = tmp_path / "run"
    assert all(r["found"] == 20 for r in _job(folder, "save"))
    results = _job(folder, "absent", timeout=4, hold=15)
    assert results[0].get("error") == "ProcessAgreementError", results
    assert "process 1 did not answer" in results[0]["message"] and results[0]["seconds"] < 12
