"""Side-by-side timing: candidates run interleaved in one process, the median of repeats kept."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass


def interleaved_samples(
    candidates: Mapping[str, Callable[..., object]], repeats: int
) -> dict[str, list[float]]:
    """Seconds per call of each candidate in each repeat; the order rotates every repeat so that
    drift in machine load (the other core, thermal state) falls on every candidate alike, and the
    k-th samples of two candidates were taken side by side (their ratio is a paired measurement)."""
    names = list(candidates)
    samples: dict[str, list[float]] = {n: [] for n in names}
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            start = time.perf_counter()
            candidates[name]()
            samples[name].append(time.perf_counter() - start)
    return samples


def interleaved_medians(candidates: Mapping[str, Callable[..., object]], repeats: int) -> dict[str, float]:
    """Median seconds per call of each candidate (see ``interleaved_samples``)."""
    return {n: statistics.median(v) for n, v in interleaved_samples(candidates, repeats).items()}


def paired_ratios(samples: Mapping[str, list[float]], top: str, bottom: str) -> tuple[float, float, float]:
    """(min, median, max) over the repeats of ``top / bottom``, each ratio from one repeat's pair."""
    ratios = sorted(a / b for a, b in zip(samples[top], samples[bottom], strict=True))
    return ratios[0], statistics.median(ratios), ratios[-1]


@dataclass
class Row:
    """One line of the results table: a measured figure, and where it stands against its target.

    A target is a claim the project makes, so it comes with ``why``: the reason it was chosen (the
    report lists them). A figure without a target is a measurement to read, not a goal.
    """

    section: str
    what: str
    value: str
    target: str = ""
    verdict: str = ""
    why: str = ""

    def __post_init__(self) -> None:
        if self.target and not self.why:
            raise ValueError(
                f"the target {self.target!r} of {self.section}: {self.what} needs its reason (why=)"
            )
