"""PNG plots of schedules (matplotlib, headless). Used by the CLI and the demo."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from wsd_core import WSDSpec


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and CI
    import matplotlib.pyplot as plt

    return plt


def schedule_curve(spec: WSDSpec, peak_value: float, points: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """(steps, rates) sampled over the run and a little past its end, every boundary included."""
    stop = spec.end_step + max(1, spec.total_steps // 50)
    steps = np.unique(
        np.concatenate(
            [
                np.linspace(0, stop, points).astype(np.int64),
                np.asarray(spec.period_ends + spec.decay_starts, dtype=np.int64),
                np.asarray(spec.period_ends, dtype=np.int64) - 1,
            ]
        )
    )
    rates = np.array([peak_value * spec.multiplier(int(s)) for s in steps])
    return steps, rates


def plot_schedules(
    curves: Mapping[str, tuple[WSDSpec, float]], path: str | Path, title: str = "WSD schedules"
) -> Path:
    """Writes one PNG with a line per labelled (spec, peak) and returns its path."""
    series = {label: schedule_curve(spec, peak) for label, (spec, peak) in curves.items()}
    return plot_series(series, path, title=title, ylabel="learning rate")


def plot_series(
    series: Mapping[str, tuple[Any, Any]],
    path: str | Path,
    *,
    title: str,
    ylabel: str,
    log_y: bool = False,
) -> Path:
    """Writes one PNG with a line per labelled (x, y) series and returns its path."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 4.5), dpi=110)
    for label, (x, y) in series.items():
        ax.plot(x, y, label=label, linewidth=1.2)
    if log_y:
        ax.set_yscale("log")
    ax.set(xlabel="optimizer step", ylabel=ylabel, title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
