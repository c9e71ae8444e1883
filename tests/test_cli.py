"""python -m wsd_jax plot: a PNG and the phase tables, and clear errors."""

from __future__ import annotations

import subprocess
import sys


def test_plot_writes_png_and_prints_phase_tables(tmp_path):
    out = tmp_path / "s.png"
    done = subprocess.run(
        [sys.executable, "-m", "wsd_jax", "plot", "--total-steps", "1000", "--warmup-steps", "50",
         "--decay-ratio", "0.2", "--decay-shape", "1-sqrt", "linear", "--checkpoints", "3",
         "--out", str(out)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert out.stat().st_size > 10_000
    assert done.stdout.count("phase   period") == 2  # one table per shape
    assert "== linear" in done.stdout and "done" in done.stdout
    assert "250" in done.stdout  # geometric ends 250, 500, 1000


def test_plot_reports_invalid_fields_without_a_traceback(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "wsd_jax", "plot", "--total-steps", "100", "--warmup-steps", "500",
         "--out", str(tmp_path / "x.png")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 2
    assert "warmup_steps" in done.stderr and "Traceback" not in done.stderr
