"""The benchmark entry point runs and writes its report (no timing is asserted: figures live in
benchmarks/RESULTS.md, measured side by side by `make bench`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # subprocesses and real training: make test-fast skips it

ROOT = Path(__file__).resolve().parents[1]


def test_bench_quick_writes_a_table(tmp_path):
    from benchmarks.__main__ import GPU_RESULTS_MARK

    out = tmp_path / "results.md"
    gpu_block = f"{GPU_RESULTS_MARK}\n\n## 5 on a lent GPU\n\n| 5 CUDA | graph replay | 1.001 |\n"
    out.write_text("# an older report\n\n| 1 whole array | old row |\n\n" + gpu_block)
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--only", "compile,torch-step,cuda",
         "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    report = out.read_text()
    for needle in ("Machine:", "Versions:", "8 periods / 1 period", "WSDLR / LambdaLR(constant)", "5 CUDA"):
        assert needle in report
    assert "Targets, and why each was chosen:" in report and "torch's own LambdaLR" in report
    # a rewrite on a machine without a GPU replaces the table and keeps the GPU block as it was
    assert "old row" not in report and report.endswith(gpu_block)


def test_planner_bench_rows():
    pytest.importorskip("jax")
    from benchmarks import planner_bench

    rows = planner_bench.prediction_speed(1)
    assert [r.what for r in rows] == [
        "predict a 72,000-step cosine run (seconds)",
        "exact LD sum / blocked LD sum, same run",
    ]
    assert float(rows[0].value) > 0 and rows[1].value.endswith("x")


def test_a_target_needs_its_reason():
    from benchmarks._timing import Row

    with pytest.raises(ValueError, match="needs its reason"):
        Row("1 section", "a ratio", "1.0", "<= 2")
    assert Row("1 section", "a ratio", "1.0", "<= 2", "met", why="because").why == "because"


def test_whole_array_rows_are_measurements_without_the_retired_targets():
    # ">= 3x join_schedules" and "<= 2x the memory floor" are no longer aims (ANALYSIS.md section 1)
    pytest.importorskip("jax")
    from benchmarks import jax_bench

    rows = jax_bench.whole_array(10_000, 1)
    assert rows and not [r for r in rows if r.target]
