"""Ranks of a torch.distributed job (gloo, 2 processes on CPU) compare their schedulers before a DCP
save, and every rank refuses to save, naming the ranks, when they differ (``tests/torch_ranks.py``).
Each job runs under a timeout: a hang fails the test instead of blocking it."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytestmark = pytest.mark.slow  # real 2-process jobs

ROOT = Path(__file__).resolve().parents[1]


def _job(folder: Path, scenario: str) -> list[dict]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ranks = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.torch_ranks", str(r), "2", str(port), str(folder), scenario],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for r in range(2)
    ]
    out = []
    for rank in ranks:
        try:
            stdout, stderr = rank.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            for other in ranks:
                other.kill()
            pytest.fail("a rank hung")
        lines = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
        assert lines, f"no result (exit {rank.returncode}): {stderr[-2000:]}"
        out.append(json.loads(lines[-1][len("RESULT ") :]))
    return out


@pytest.mark.parametrize(
    ("scenario", "named"),
    [("counts", r"ranks \[0\]: counts \[17\].*ranks \[1\]: counts \[18\]"), ("specs", r"ranks \[0\].*spec")],
)
def test_ranks_that_disagree_are_refused_on_every_rank_before_anything_is_saved(tmp_path, scenario, named):
    # before: dcp.save succeeded and kept one rank's copy; the resumed job started every rank at one
    # count while the optimizers' own steps said another (or refused the checkpoint on every rank)
    import re

    results = _job(tmp_path / "ckpt", scenario)
    assert [r.get("error") for r in results] == ["ValueError", "ValueError"], results
    assert all(re.search(named, r["message"]) for r in results), results
    assert not (tmp_path / "ckpt" / ".metadata").exists()


def test_ranks_that_agree_save_and_load(tmp_path):
    results = _job(tmp_path / "ckpt", "agree")
    assert results == [{"saved": True, "loaded": 17}] * 2, results
