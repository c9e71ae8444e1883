"""WSDSpec: validation, serialisation and introspection (no framework needed)."""

from __future__ import annotations

import dataclasses
import json
import math
import pickle

import numpy as np
import pytest
from hypothesis import given, settings

from tests.reference import decay_lengths, period_ends
from tests.strategies import spec_fields
from wsd_core import Phase, WSDSpec

BAD_INPUTS = [
    # (fields, error type, text the message must contain)
    ({"total_steps": 0}, ValueError, "total_steps"),
    ({"total_steps": -5}, ValueError, "total_steps"),
    ({"total_steps": 10.0}, TypeError, "total_steps"),
    ({"total_steps": True}, TypeError, "total_steps"),
    ({"total_steps": "100"}, TypeError, "total_steps"),
    ({"total_steps": 100, "warmup_steps": -1}, ValueError, "warmup_steps"),
    ({"total_steps": 100, "warmup_steps": 1.5}, TypeError, "warmup_steps"),
    ({"total_steps": 100, "warmup_steps": False}, TypeError, "warmup_steps"),
    ({"total_steps": 100, "warmup_steps": 101}, ValueError, "warmup_steps"),
    (
        {"total_steps": 100, "warmup_steps": 60, "checkpoints": [50, 100]},
        ValueError,
        "warmup_steps",
    ),
    ({"total_steps": 100, "decay_steps": -1}, ValueError, "decay_steps"),
    ({"total_steps": 100, "decay_steps": 101}, ValueError, "decay_steps"),
    ({"total_steps": 100, "decay_steps": 30, "checkpoints": [20, 100]}, ValueError, "decay_steps"),
    ({"total_steps": 100, "decay_steps": 10, "decay_ratio": 0.1}, ValueError, "decay_ratio"),
    ({"total_steps": 100, "decay_ratio": 1.5}, ValueError, "decay_ratio"),
    ({"total_steps": 100, "decay_ratio": -0.1}, ValueError, "decay_ratio"),
    ({"total_steps": 100, "decay_ratio": float("nan")}, ValueError, "decay_ratio"),
    ({"total_steps": 100, "decay_ratio": "0.1"}, TypeError, "decay_ratio"),
    ({"total_steps": 100, "init_ratio": float("inf")}, ValueError, "init_ratio"),
    ({"total_steps": 100, "init_ratio": 1.01}, ValueError, "init_ratio"),
    ({"total_steps": 100, "init_ratio": True}, TypeError, "init_ratio"),
    ({"total_steps": 100, "min_ratio": -0.5}, ValueError, "min_ratio"),
    ({"total_steps": 100, "min_ratio": float("nan")}, ValueError, "min_ratio"),
    ({"total_steps": 100, "min_ratio": None}, TypeError, "min_ratio"),
    ({"total_steps": 100, "decay_shape": "inverse"}, ValueError, "min_ratio"),
    ({"total_steps": 100, "decay_shape": "geometric"}, ValueError, "must be > 0 for decay_shape='geometric'"),
    ({"total_steps": 100, "decay_shape": "sqrt"}, ValueError, "decay_shape"),
    ({"total_steps": 100, "decay_shape": None}, TypeError, "decay_shape"),
    ({"total_steps": 100, "warmup_shape": "exp"}, ValueError, "warmup_shape"),
    ({"total_steps": 100, "checkpoints": [50, 40, 100]}, ValueError, "checkpoints"),
    ({"total_steps": 100, "checkpoints": [50, 50, 100]}, ValueError, "checkpoints"),
    ({"total_steps": 100, "checkpoints": [50, 90]}, ValueError, "checkpoints"),
    ({"total_steps": 100, "checkpoints": [0, 100]}, ValueError, "checkpoints"),
    ({"total_steps": 100, "checkpoints": []}, ValueError, "checkpoints"),
    ({"total_steps": 100, "checkpoints": [50.0, 100]}, TypeError, "checkpoints[0]"),
    ({"total_steps": 100, "checkpoints": "50,100"}, TypeError, "checkpoints"),
    ({"total_steps": 100, "checkpoints": 0}, ValueError, "checkpoints"),
    ({"total_steps": 100, "checkpoints": 8}, ValueError, "checkpoints"),
    ({"total_steps": 100, "checkpoints": True}, TypeError, "checkpoints"),
    ({"total_steps": 100, "start_step": -1}, ValueError, "start_step"),
    ({"total_steps": 100, "start_step": 2.0}, TypeError, "start_step"),
]


@pytest.mark.parametrize(("fields", "error", "name"), BAD_INPUTS)
def test_bad_input_raises_naming_the_parameter(fields, error, name):
    with pytest.raises(error) as info:
        WSDSpec(**fields)
    assert name in str(info.value)


def test_bad_value_message_names_value_and_valid_range():
    with pytest.raises(ValueError, match=r"min_ratio must satisfy 0 <= value <= 1, got 1\.5"):
        WSDSpec(100, min_ratio=1.5)
    shapes = r"\['linear', 'cosine', '1-sqrt', 'inverse', 'exponential', 'geometric', 'polynomial'\]"
    with pytest.raises(ValueError, match=shapes):
        WSDSpec(100, decay_shape="cos")


def test_replace_validates_too():
    spec = WSDSpec(100, warmup_steps=10)
    with pytest.raises(ValueError, match="warmup_steps"):
        dataclasses.replace(spec, total_steps=5)


def test_numpy_integers_are_accepted_as_ints():
    spec = WSDSpec(np.int64(100), warmup_steps=np.int32(10), checkpoints=np.array([50, 100]))  # type: ignore[arg-type]
    assert type(spec.total_steps) is int and spec.checkpoints == (50, 100)
    assert all(type(c) is int for c in spec.checkpoints)


def test_geometric_checkpoints_match_the_contract_example():
    spec = WSDSpec(200_000, checkpoints=3)
    assert spec.period_ends == (50_000, 100_000, 200_000)
    assert spec.checkpoints == 3  # kept as given, so it round-trips as given


@given(spec_fields())
@settings(max_examples=200, deadline=None)
def test_to_dict_round_trips_through_json_exactly(fields):
    spec = WSDSpec(**fields)
    data = json.loads(json.dumps(spec.to_dict()))
    again = WSDSpec.from_dict(data)
    assert again == spec
    assert again.to_dict() == spec.to_dict()
    assert pickle.loads(pickle.dumps(spec)) == spec
    assert hash(again) == hash(spec)


def test_to_dict_has_exactly_the_contract_fields():
    assert set(WSDSpec(10).to_dict()) == {
        "total_steps",
        "warmup_steps",
        "decay_steps",
        "decay_ratio",
        "decay_shape",
        "warmup_shape",
        "init_ratio",
        "min_ratio",
        "checkpoints",
        "start_step",
        "period_peaks",
        "rewarmup_steps",
        "rewarmup_shape",
        "units",
        "tokens_per_step",
    }


def test_a_spec_saved_before_period_peaks_and_rewarmup_existed_still_loads():
    old = {"total_steps": 100, "warmup_steps": 10, "decay_steps": 20, "decay_ratio": None,
           "decay_shape": "linear", "warmup_shape": "linear", "init_ratio": 0.0, "min_ratio": 0.0,
           "checkpoints": [50, 100], "start_step": 0}  # fmt: skip
    spec = WSDSpec.from_dict(old)
    assert spec.period_peaks is None and spec.rewarmup_steps == 0 and spec.units == "steps"
    assert [spec.multiplier(t) for t in (49, 50)] == [1 / 20, 1.0]


def test_from_dict_validates():
    with pytest.raises(ValueError, match="unknown WSDSpec fields"):
        WSDSpec.from_dict({"total_steps": 10, "peak": 1.0})
    with pytest.raises(ValueError, match="total_steps"):
        WSDSpec.from_dict({"warmup_steps": 1})
    with pytest.raises(ValueError, match="min_ratio"):
        WSDSpec.from_dict({"total_steps": 10, "min_ratio": 2.0})
    with pytest.raises(TypeError, match="mapping"):
        WSDSpec.from_dict([("total_steps", 10)])  # type: ignore[arg-type]


@given(spec_fields())
@settings(max_examples=200, deadline=None)
def test_period_tables_agree_with_reference(fields):
    spec = WSDSpec(**fields)
    s0 = fields["start_step"]
    ends = period_ends(fields["total_steps"], fields["checkpoints"])
    lengths = decay_lengths(ends, fields.get("decay_steps"), fields.get("decay_ratio"))
    assert spec.period_ends == tuple(s0 + c for c in ends)
    assert spec.decay_lengths == tuple(lengths)
    assert spec.decay_starts == tuple(s0 + c - d for c, d in zip(ends, lengths, strict=True))
    assert spec.end_step == s0 + fields["total_steps"]


def test_decay_ratio_uses_float64_floor():
    # 0.3 * 10 == 3.0000000000000004 in float64 -> floor 3; 0.7 * 10 == 7.000000000000001 -> 7
    assert WSDSpec(10, decay_ratio=0.3).decay_lengths == (math.floor(0.3 * 10),)
    assert WSDSpec(100, decay_ratio=0.29).decay_lengths == (math.floor(0.29 * 100),)  # 28
    assert WSDSpec(100, decay_ratio=0.29).decay_lengths == (28,)
    assert WSDSpec(1000).decay_lengths == (100,)  # neither given: rho = 0.1


def test_phase_names_progress_and_periods():
    spec = WSDSpec(1000, warmup_steps=100, decay_steps=100, checkpoints=[500, 1000], start_step=10)
    assert spec.phase(0) == Phase("warmup", 0, 0.0, 0.0)
    assert spec.phase(60).name == "warmup" and spec.phase(60).progress == 0.5
    assert spec.phase(110).name == "stable" and spec.phase(110).period == 0
    assert spec.phase(410) == Phase("decay", 0, 0.0, 1.0)
    assert spec.phase(460).progress == 0.5
    assert spec.phase(510) == Phase("stable", 1, 0.0, 1.0)
    assert spec.phase(1009).name == "decay" and spec.phase(1009).period == 1
    assert spec.phase(1010) == Phase("done", 1, 1.0, 0.0)
    assert spec.phase(10**12).name == "done"
    with pytest.raises(TypeError, match="step"):
        spec.phase(1.5)  # type: ignore[arg-type]


def test_warmup_wins_where_it_overlaps_the_decay():
    spec = WSDSpec(100, warmup_steps=80, decay_steps=50, decay_shape="linear")
    assert spec.phase(60).name == "warmup"
    assert spec.multiplier(60) == 60 / 80
    assert spec.phase(80).name == "decay"
    assert spec.multiplier(80) == pytest.approx(1 - 30 / 50)


def test_phase_table_lists_every_phase_with_its_steps():
    spec = WSDSpec(1000, warmup_steps=100, decay_steps=200, decay_shape="linear", checkpoints=2)
    table = spec.phase_table()
    lines = table.splitlines()
    assert lines[0].split() == [
        "phase",
        "period",
        "first",
        "step",
        "last",
        "step",
        "steps",
        "multiplier",
    ]
    names = [line.split()[0] for line in lines[1:]]
    assert names == ["warmup", "stable", "decay", "stable", "decay", "done"]
    assert lines[3].split()[:5] == ["decay", "0", "300", "499", "200"]
    assert lines[-1].split()[:3] == ["done", "-", "1000"]


def test_phase_table_segments_cover_every_step_once():
    spec = WSDSpec(777, warmup_steps=50, decay_ratio=0.25, checkpoints=[100, 300, 777], start_step=3)
    covered: list[int] = []
    for line in spec.phase_table().splitlines()[1:-1]:
        first, last = int(line.split()[2]), int(line.split()[3])
        covered.extend(range(first, last + 1))
        for step in (first, last):
            assert spec.phase(step).name == line.split()[0]
    assert covered == list(range(3, 780))
