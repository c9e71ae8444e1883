"""PNG (or PDF, SVG) plots of schedules and curves, with matplotlib only (headless).

Used by the ``wsd`` command (``wsd plot``, ``wsd plan --out``) and the demo. Neither jax nor torch
is needed; matplotlib is imported when a plot is drawn, with an error naming the ``plot`` extra if it
is missing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from wsd_core._spec import WSDSpec

__all__ = ["FORMATS", "plot_schedules", "plot_series", "schedule_curve"]

FORMATS = ("png", "pdf", "svg")


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise ImportError("plotting needs matplotlib: pip install 'wsd-schedule[plot]'") from None
    matplotlib.use("Agg")  # no display on servers and CI
    import matplotlib.pyplot as plt

    return plt


def schedule_curve(
    spec: WSDSpec, peak_value: float | None = None, points: int = 2000
) -> tuple[list[int], list[float]]:
    """(steps, values) over the run and a little past its end, every phase boundary included.

    Values are multipliers m(step), or rates ``peak_value * m(step)`` when a peak is given. Steps are
    Python ints, so any valid spec (up to 2**63 - 1 steps) samples without overflow.
    """
    stop = spec.end_step + max(1, spec.total_steps // 50)
    first = spec.start_step if spec.start_step > 0 else 0
    span = stop - first
    steps = {first + (k * span) // points for k in range(points + 1)}
    steps.update(spec.period_ends, spec.decay_starts, (e - 1 for e in spec.period_ends))
    ordered = sorted(s for s in steps if s >= 0)
    scale = 1.0 if peak_value is None else peak_value
    return ordered, [scale * spec.multiplier(s, in_units=True) for s in ordered]


def plot_schedules(
    curves: Mapping[str, WSDSpec],
    path: str | Path,
    *,
    peak_value: float | None = None,
    title: str = "WSD schedules",
) -> Path:
    """Writes one figure with a line per labelled spec and returns its path."""
    series = {label: schedule_curve(spec, peak_value) for label, spec in curves.items()}
    ylabel = "multiplier m(step)" if peak_value is None else f"learning rate (peak {peak_value:g})"
    return plot_series(series, path, title=title, ylabel=ylabel)


def plot_series(
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    path: str | Path,
    *,
    title: str,
    ylabel: str,
    log_y: bool = False,
    marks: Iterable[tuple[float, str]] = (),
    styles: Mapping[str, Mapping[str, Any]] | None = None,
    ylim: tuple[float, float] | None = None,
    bands: Mapping[str, tuple[Sequence[float], Sequence[float], Sequence[float]]] | None = None,
) -> Path:
    """Writes one figure with a line per labelled (x, y) series and returns its path.

    ``marks`` are (x, label) vertical lines (e.g. branch points); ``styles`` maps a series label to
    extra matplotlib line options; ``ylim`` is the y range (default: all of every series); ``bands``
    maps a series label to (x, low, high), shaded in that series' colour (e.g. an interval).
    """
    plt = _pyplot()
    crowded = len(series) > 8  # the legend then goes beside the axes, not over the curves
    fig, ax = plt.subplots(figsize=(13, 5.5) if crowded else (9, 4.5), dpi=110)
    unknown = sorted(set(bands or {}) - set(series))
    if unknown:
        raise ValueError(f"bands must name series to shade around; {unknown} are not among {list(series)}")
    for label, (x, y) in series.items():
        (line,) = ax.plot(x, y, label=label, **{"linewidth": 1.2, **dict((styles or {}).get(label, {}))})
        if bands and label in bands:
            bx, low, high = bands[label]
            ax.fill_between(bx, low, high, color=line.get_color(), alpha=0.18, linewidth=0)
    for at, label in marks:
        ax.axvline(at, color="0.5", linestyle=":", linewidth=1)
        ax.annotate(label, (at, 1.0), xycoords=("data", "axes fraction"), rotation=90, va="top",
                    ha="right", fontsize=7, color="0.35")  # fmt: skip
    if log_y:
        ax.set_yscale("log")
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.set(xlabel="optimizer step", ylabel=ylabel, title=title)
    ax.grid(alpha=0.3)
    if crowded:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    else:
        ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
