"""``make demo`` (``examples/demo/demo.py``): the whole workflow end to end on a tiny run."""

from __future__ import annotations

import importlib
import warnings
from pathlib import Path

import pytest

pytest.importorskip("flax")
pytest.importorskip("orbax.checkpoint")

DEMO_DIR = Path(__file__).resolve().parents[1] / "examples" / "demo"


@pytest.fixture
def demo(monkeypatch):
    monkeypatch.syspath_prepend(str(DEMO_DIR))  # as when run as a script: charlm.py beside it
    return importlib.import_module("demo")


@pytest.mark.slow
def test_demo_runs_end_to_end_small_and_again_in_the_same_folder(demo, tmp_path, capsys):
    for _ in range(2):  # the second run replaces the first one's checkpoints instead of crashing
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            demo.main(["--out", str(tmp_path), "--total-steps", "150"])
        out = capsys.readouterr().out
        # before: the fit's notes showed as a UserWarning with a source line; they are the report's
        assert not [w for w in caught if "fit:" in str(w.message)], [str(w.message) for w in caught]
        for name in (
            "WSD trunk",
            "cooldown from 50",
            "cooldown from 85",
            "cosine",
            "measured final",
            "predicted before training",
            "90% interval",
            "-- runs of 150 updates",
            "-- the frontier",
            "Takeaway",
            "wsd plan --run",
            "forecast, trunk alone: a 30-update cooldown from step 50",
            "The forecasts made from the trunk alone",
        ):
            assert name in out  # fmt: skip
        # the trunk alone decides, or says plainly why it cannot
        assert "deciding from the trunk alone, for a 150-update run" in out
        assert "distinguishably worse (90%)" in out or "it cannot rank the" in out
        # both cooldowns were forecast from the trunk alone, and compared with what they measured
        assert out.count("its 90% interval)") == 2
        assert (tmp_path / "logs" / "cooldown-50.csv").read_text().startswith("step,loss\n")
        assert (tmp_path / "learning_rates.png").stat().st_size > 10_000
        assert (tmp_path / "eval_losses.png").stat().st_size > 10_000
        assert (tmp_path / "checkpoints" / "cooldown-50").is_dir()
    assert "replacing the previous demo run" in out
    # a folder the demo did not write is never deleted
    (tmp_path / "other" / "checkpoints").mkdir(parents=True)
    with pytest.raises(SystemExit, match="not written by the demo"):
        demo.main(["--out", str(tmp_path / "other"), "--total-steps", "300"])
