"""CooldownGrid: the cooldowns to consider, one validated frozen value that every planner entry point
takes (or builds from its fields as keywords), with the same answers either way."""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import numpy as np
import pytest

from wsd_core import WSDSpec

pytest.importorskip("jax")

from wsd_plan import (
    CooldownGrid,
    Forecast,
    ForecastWatcher,
    GridFields,
    LossLawFit,
    optimize_cooldown,
    plan_cooldown,
)

PARAMS: dict[str, Any] = dict(L0=3.0, A=0.5, alpha=0.5, B=400.0, C=2.0, beta=0.6, gamma=0.6)
FIT = LossLawFit("multi-power", PARAMS, {}, 0.0, fitted_peaks=(3e-4, 3e-4), covariance=np.eye(7) * 0.01,
                 residual_scale=1e-3)  # fmt: skip
TRUNK = WSDSpec(40_000, warmup_steps=2000, decay_steps=0)


def test_a_grid_keeps_tuples_and_takes_one_value_for_a_list():
    grid = CooldownGrid(2000, budgets=24_000, shapes="linear", min_ratios=0.1)
    assert grid == CooldownGrid([2000], budgets=[24_000], shapes=["linear"], min_ratios=[0.1])
    assert (grid.lengths, grid.budgets, grid.at_steps, grid.shapes, grid.min_ratios) == (
        (2000,), (24_000,), None, ("linear",), (0.1,)
    )  # fmt: skip
    assert CooldownGrid(range(1000, 3001, 1000), at_steps=np.array([5000])).pairs == (
        (5000, 1000), (5000, 2000), (5000, 3000)
    )  # fmt: skip
    # budgets: a cooldown branches at budget - length, and one longer than its budget is no pair
    assert CooldownGrid([2000, 30_000], budgets=[24_000]).pairs == ((22_000, 2000),)
    assert CooldownGrid([2000]).at(7000) == CooldownGrid([2000], at_steps=[7000])
    hash(grid)  # a value: usable as a key


def test_a_grid_is_frozen():
    grid = CooldownGrid([2000], budgets=[24_000])
    with pytest.raises(dataclasses.FrozenInstanceError):
        grid.lengths = (1000,)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(lengths=[0]), ValueError, "lengths"),
        (dict(lengths=[2.5]), TypeError, "lengths must be an int >= 1"),
        (dict(lengths=[]), ValueError, "lengths must hold at least one value"),
        (dict(lengths=[10], budgets=[]), ValueError, "budgets must hold at least one value"),
        (dict(lengths=[10], budgets=[-5]), ValueError, "budgets"),
        (dict(lengths=[10], at_steps=[-1]), ValueError, "at_steps"),
        (dict(lengths=[10], shapes=["cubic"]), ValueError, "shapes.*cubic"),
        (dict(lengths=[10], min_ratios=[1.5]), ValueError, "min_ratios"),
        (dict(lengths=[10], min_ratios=[float("nan")]), ValueError, "min_ratios"),
        (dict(lengths=[10], budgets=[100], at_steps=[50]), TypeError, "at most one of them"),
    ],
)
def test_a_grid_refuses_bad_values_naming_the_field(kwargs, error, match):
    with pytest.raises(error, match=match):
        CooldownGrid(**kwargs)


def test_a_grid_or_its_fields_but_not_both():
    grid = CooldownGrid([2000], budgets=[24_000])
    with pytest.raises(TypeError, match="either grid or its fields"):
        plan_cooldown(FIT, TRUNK, grid, peak=3e-4, lengths=[1000])
    with pytest.raises(TypeError, match="grid must be a CooldownGrid, got dict"):
        plan_cooldown(FIT, TRUNK, {"lengths": [2000]}, peak=3e-4)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"unknown CooldownGrid fields \['length'\]"):
        plan_cooldown(FIT, TRUNK, peak=3e-4, length=[2000], budgets=[24_000])  # type: ignore[call-arg]


def test_plan_cooldown_takes_a_grid_or_its_keywords_with_the_same_answer():
    assert len(inspect.signature(plan_cooldown).parameters) <= 6
    grid = CooldownGrid([2000, 5000], budgets=[24_000], shapes=["linear", "1-sqrt"], min_ratios=[0.0, 0.1])
    by_grid = plan_cooldown(FIT, TRUNK, grid, peak=3e-4)
    by_keywords = plan_cooldown(FIT, TRUNK, peak=3e-4, **_fields(grid))
    assert [c.label for c in by_grid.candidates] == [c.label for c in by_keywords.candidates]
    assert [c.final_loss for c in by_grid.candidates] == [c.final_loss for c in by_keywords.candidates]
    assert len(by_grid.candidates) == 2 * 2 * 2


def test_optimize_cooldown_takes_a_grid_of_one_budget():
    grid = CooldownGrid([2000, 4000], budgets=[24_000], min_ratios=[0.0])
    by_grid = optimize_cooldown(FIT, TRUNK, grid, peak=3e-4, iterations=40)
    by_keywords = optimize_cooldown(
        FIT, TRUNK, peak=3e-4, lengths=[2000, 4000], budgets=24_000, iterations=40
    )
    assert by_grid.final_loss == pytest.approx(by_keywords.final_loss, rel=1e-9)
    with pytest.raises(TypeError, match="budget and floor in the grid"):
        optimize_cooldown(FIT, TRUNK, peak=3e-4, lengths=[2000], budget=24_000)
    with pytest.raises(ValueError, match="one budget"):
        optimize_cooldown(FIT, TRUNK, CooldownGrid([2000], budgets=[20_000, 24_000]), peak=3e-4)


def test_a_forecast_and_its_watcher_take_a_grid_or_its_keywords():
    forecast = Forecast(TRUNK, peak=3e-4, prior=FIT)
    steps = np.arange(2100, 8001, 100)
    losses = 3.0 + 0.5 * (3e-4 * (steps - 2000)) ** -0.5
    forecast.observe(steps, losses)
    grid = CooldownGrid([1000, 3000], shapes=["linear"])
    now_grid, now_keywords = forecast.now(grid), forecast.now(lengths=[1000, 3000], shapes="linear")
    assert [c.final_loss for c in now_grid] == [c.final_loss for c in now_keywords]
    assert forecast.metrics(grid) == forecast.metrics(lengths=[1000, 3000], shapes=["linear"])
    planned = forecast.plan(CooldownGrid([1000], budgets=[20_000]))
    assert planned.end_steps == (20_000,)
    watcher = ForecastWatcher(forecast, grid)
    assert watcher.metrics(8000) == forecast.metrics(grid)
    with pytest.raises(ValueError, match="lengths"):
        ForecastWatcher(forecast, lengths=[-1])  # checked when built, before training starts


def _fields(grid: CooldownGrid) -> dict[str, Any]:
    names = GridFields.__annotations__
    return {name: getattr(grid, name) for name in names if getattr(grid, name) is not None}


def test_a_hand_built_fit_is_checked_as_a_saved_one():
    # before: fitted_peaks=(3e-4,) was taken, and the first plan failed with an IndexError
    with pytest.raises(ValueError, match=r"fitted_peaks must be \[smallest, largest\]"):
        LossLawFit("multi-power", PARAMS, {}, 0.0, fitted_peaks=(3e-4,))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"'params' must name \['L0', 'A', 'alpha', 'B', 'C', 'beta'"):
        LossLawFit("multi-power", {"L0": 3.0}, {}, 0.0)
    with pytest.raises(ValueError, match="law must be one of"):
        LossLawFit("power", PARAMS, {}, 0.0)
    with pytest.raises(ValueError, match="covariance must be a 7x7 matrix"):
        LossLawFit("multi-power", PARAMS, {}, 0.0, covariance=np.eye(4))
    listed = LossLawFit("multi-power", PARAMS, {}, 0.0, fitted_peaks=[1e-4, 3e-4])  # type: ignore[arg-type]
    assert listed.fitted_peaks == (1e-4, 3e-4)
