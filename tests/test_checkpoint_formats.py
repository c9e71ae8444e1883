"""Checkpoints written by earlier releases restore with today's code, each verified by what it
recorded: the fixture folders in ``tests/fixtures/earlier_checkpoints`` were written by the code of
each earlier format (``make.py`` there says which commit), and are never rewritten by the tests."""

from __future__ import annotations

import json
import logging
import shutil
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from wsd_jax import CheckpointIntegrityError, WSDCheckpointManager, WSDSpec

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "earlier_checkpoints"
sys.path.insert(0, str(FIXTURES))
try:
    from make import STEPS, state  # the state each fixture saved at each step
finally:
    sys.path.pop(0)

SPEC = WSDSpec(100, warmup_steps=5, decay_steps=10, checkpoints=[50, 100])
FORMATS = ["v0.1", "format1", "format2", "format3"]


def _copy(name: str, tmp_path: Path) -> Path:
    folder = tmp_path / name
    shutil.copytree(FIXTURES / name, folder)
    return folder


def _target(step: int):
    """The saved state's own structure, shapes and dtypes (numpy leaves keep their 64-bit dtypes)."""
    return jax.tree.map(lambda x: x, state(step))


def _same(restored, step: int) -> None:
    expected = state(step)
    assert str(jax.tree.structure(restored)) == str(jax.tree.structure(expected))
    for a, b in zip(jax.tree.leaves(restored), jax.tree.leaves(expected), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("name", FORMATS)
def test_every_earlier_format_restores_what_it_saved_with_a_note_never_as_damage(name, tmp_path, caplog):
    # before: every step of these folders was "damaged / malformed": restore_latest_readable returned
    # None (a resuming job started from scratch) and open() found "no readable spec"
    folder = _copy(name, tmp_path)
    with (
        caplog.at_level(logging.INFO, logger="wsd_jax"),
        WSDCheckpointManager.open(folder, read_only=True) as reader,
    ):
        assert reader.spec == SPEC and reader.all_steps() == list(STEPS)
        found = reader.restore_latest_readable(_target(STEPS[-1]))
        assert found is not None and found[0] == STEPS[-1]
        _same(found[1], STEPS[-1])
        _same(reader.restore(_target(STEPS[0]), STEPS[0]), STEPS[0])
        assert reader.saved_spec(STEPS[0]) == SPEC
    assert "damaged" not in caplog.text and "malformed" not in caplog.text
    if name == "v0.1":
        assert "saved by wsd-schedule 0.1, without an integrity record: read unverified" in caplog.text


@pytest.mark.parametrize("name", ["format1", "format2", "format3"])
def test_an_earlier_format_is_verified_by_its_own_fingerprints(name, tmp_path, caplog):
    folder = _copy(name, tmp_path)
    data = [p for p in (folder / str(STEPS[-1]) / "state").rglob("*") if p.is_file() and p.parent.name == "d"]
    flipped = 0
    for path in data:  # a byte of every data file of the newest step, one at a time
        original = path.read_bytes()
        for offset in range(0, len(original), max(1, len(original) // 6)):
            damaged = bytearray(original)
            damaged[offset] ^= 0x10
            path.write_bytes(bytes(damaged))
            with WSDCheckpointManager(folder, SPEC, read_only=True) as reader:
                found = reader.restore_latest_readable(_target(STEPS[-1]))
            if found is not None and found[0] == STEPS[-1]:
                _same(found[1], STEPS[-1])  # a byte nothing reads (padding, an index): intact values
            else:
                assert found is not None and found[0] == STEPS[0]  # skipped to the older step
                flipped += 1
            path.write_bytes(original)
    assert flipped > 0


@pytest.mark.parametrize("name", ["format3", "current"])
def test_no_flipped_bit_in_a_record_raises_every_one_skips_to_the_older_step(name, tmp_path, caplog):
    # before: 91 of 400 single-bit flips raised (a KeyError, or a ValueError blaming the caller's
    # target) instead of skipping to the older good step
    if name == "current":
        folder = tmp_path / name
        with WSDCheckpointManager(folder, SPEC, max_to_keep=None) as writer:
            for step in STEPS:
                writer.save(step, state(step), force=True)
    else:
        folder = _copy(name, tmp_path)
    record = folder / str(STEPS[-1]) / "integrity" / "metadata"
    original = record.read_bytes()
    rng = np.random.default_rng(0)
    outcomes = {"newest": 0, "older": 0}
    with caplog.at_level(logging.WARNING):
        for bit in rng.choice(len(original) * 8, size=150, replace=False):
            damaged = bytearray(original)
            damaged[bit // 8] ^= 1 << (bit % 8)
            record.write_bytes(bytes(damaged))
            with WSDCheckpointManager(folder, SPEC, read_only=True) as reader:
                found = reader.restore_latest_readable(_target(STEPS[-1]))  # never raises
            assert found is not None
            _same(found[1], found[0])
            outcomes["newest" if found[0] == STEPS[-1] else "older"] += 1
    record.write_bytes(original)
    assert outcomes["older"] > 100, outcomes  # (a flip in JSON whitespace or a key's case may be harmless)
    if name == "current":
        assert outcomes["newest"] == 0  # a sealed record: every flip is found
    ours = [r for r in caplog.records if r.name.startswith("wsd_jax")]
    assert ours and all(len(r.getMessage()) < 400 for r in ours)  # no TensorStore dumps


def test_an_unsealed_record_that_disagrees_with_the_saved_arrays_is_damage_not_a_caller_mistake(tmp_path):
    folder = _copy("format3", tmp_path)
    record_path = folder / str(STEPS[-1]) / "integrity" / "metadata"
    record = json.loads(record_path.read_text())
    next(leaf for leaf in record["leaves"] if leaf["path"] == "['params']['w']")["shape"] = [4, 4]
    record_path.write_text(json.dumps(record))
    with WSDCheckpointManager(folder, SPEC, read_only=True) as reader:
        with pytest.raises(CheckpointIntegrityError, match="record does not describe its saved arrays"):
            reader.restore(_target(STEPS[-1]), STEPS[-1])
        wrong = {**_target(STEPS[-1]), "mask": np.zeros(4, bool)}  # the caller's own mistake
        with pytest.raises(ValueError, match=r"restore target leaf \['mask'\] has shape \(4,\)"):
            reader.restore(wrong, STEPS[0])
