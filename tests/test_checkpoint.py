"""WSDCheckpointManager (Orbax): saving, restoring, the save plan, and trust: damaged data is never
loaded, caller mistakes are never taken for damage, one writer per folder, and steps that are ints."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from tests.backends import jax_gpu_available
from tests.training import TRUNK, init_state, train
from wsd_jax import (
    CheckpointIntegrityError,
    SavePlan,
    WriterLockError,
    WSDCheckpointManager,
    WSDSpec,
    _integrity,
    wsd_schedule,
)
from wsd_jax._fingerprint import ROW, _device_lanes, fingerprint


def test_save_plan_steps_are_kept_and_intervals_rotate(tmp_path):
    plan = SavePlan.for_spec(TRUNK, interval=7)
    assert plan.pre_decay == (40, 90) and plan.period_ends == (50, 100)
    with WSDCheckpointManager(tmp_path, TRUNK, interval=7, max_to_keep=2) as manager:
        train(TRUNK, init_state(TRUNK), 0, 100, manager)
        steps = manager.all_steps()
    assert {40, 50, 90, 100} <= set(steps)  # the plan's steps survive retention
    # besides those, the 2 latest checkpoints of any kind: 100 (a plan step) and 98
    assert set(steps) - {40, 50, 90, 100} == {98}


def test_restore_onto_abstract_state_keeps_optax_types(tmp_path):
    state, _ = train(TRUNK, init_state(TRUNK), 0, 40)
    with WSDCheckpointManager(tmp_path, TRUNK) as manager:
        manager.save(40, state)
        manager.wait_until_finished()
        restored = manager.restore(jax.eval_shape(lambda: init_state(TRUNK)))
    assert jax.tree.structure(restored) == jax.tree.structure(state)  # type: ignore[operator]
    for a, b in zip(jax.tree.leaves(restored), jax.tree.leaves(state), strict=True):
        np.testing.assert_array_equal(a, b)
    assert int(restored["opt_state"].count) == 40


def test_restore_under_another_spec_is_refused_unless_allowed(tmp_path):
    state, _ = train(TRUNK, init_state(TRUNK), 0, 40)
    with WSDCheckpointManager(tmp_path, TRUNK) as manager:
        manager.save(40, state)
    other = TRUNK.extend(200, at_step=40)
    with WSDCheckpointManager(tmp_path, other) as manager:
        with pytest.raises(ValueError, match="different spec"):
            manager.restore(jax.eval_shape(lambda: init_state(TRUNK)))
        assert manager.saved_spec(40) == TRUNK
        manager.restore(jax.eval_shape(lambda: init_state(TRUNK)), allow_spec_change=True)
        with pytest.raises(FileNotFoundError, match="step 41"):
            manager.restore(jax.eval_shape(lambda: init_state(TRUNK)), 41)
    assert WSDCheckpointManager.open(tmp_path).spec == TRUNK  # a restarted job rebuilds its schedule


@pytest.mark.parametrize("damage", ["delete", "truncate"])
def test_damaged_latest_checkpoint_is_skipped_not_loaded(tmp_path, damage, caplog):
    with WSDCheckpointManager(tmp_path, TRUNK, interval=10, max_to_keep=None) as manager:
        state20, _ = train(TRUNK, init_state(TRUNK), 0, 20)
        manager.save(20, state20)
        state30, _ = train(TRUNK, state20, 20, 30)
        manager.save(30, state30)
    files = [p for p in (tmp_path / "30" / "state").rglob("*") if p.is_file() and p.stat().st_size > 0]
    assert files
    if damage == "delete":
        shutil.rmtree(tmp_path / "30" / "state")
    else:
        for p in files:
            p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    abstract = jax.eval_shape(lambda: init_state(TRUNK))
    with WSDCheckpointManager(tmp_path, TRUNK, interval=10) as manager:
        with pytest.raises(CheckpointIntegrityError, match="checkpoint 30"):  # never a garbage state
            manager.restore(abstract, 30)
        with caplog.at_level(logging.WARNING):
            found = manager.restore_latest_readable(abstract)
    assert found is not None
    step, restored = found
    assert step == 20 and "checkpoint 30" in caplog.text
    for a, b in zip(jax.tree.leaves(restored), jax.tree.leaves(state20), strict=True):
        np.testing.assert_array_equal(a, b)


def test_manager_bad_arguments(tmp_path):
    with pytest.raises(TypeError, match="spec"):
        WSDCheckpointManager(tmp_path, {"total_steps": 10})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_to_keep"):
        WSDCheckpointManager(tmp_path, TRUNK, max_to_keep=0)
    with pytest.raises(ValueError, match="interval"):
        WSDCheckpointManager(tmp_path, TRUNK, interval=0)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        WSDCheckpointManager.open(tmp_path / "empty")


# --- trust ---------------------------------------------------------------------------------------

SPEC = WSDSpec(100, warmup_steps=5, decay_steps=10, checkpoints=[50, 100])


def _state(seed=0):
    params = {"w": jax.random.normal(jax.random.key(seed), (64, 32)), "b": jnp.arange(32.0)}
    tx = optax.adamw(wsd_schedule(1e-2, spec=SPEC))
    return {"params": params, "opt_state": tx.init(params), "step": seed}


def _abstract():
    return jax.eval_shape(lambda: _state())


def _two_steps(directory):
    with WSDCheckpointManager(directory, SPEC, max_to_keep=None) as m:
        m.save(20, _state(20), force=True)
        m.save(30, _state(30), force=True)
    return _state(20), _state(30)


def _assert_same(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


# --- 1. integrity -------------------------------------------------------------------------------


def _data_files(directory, step):
    root = directory / str(step) / "state"
    return sorted(p for p in root.rglob("*") if p.is_file() and "/d/" in str(p) and p.stat().st_size > 0)


@pytest.mark.parametrize("where", [0.1, 0.3, 0.5, 0.7, 0.9])
def test_a_flipped_byte_in_array_data_is_refused_and_skipped(tmp_path, where, caplog):
    state20, _ = _two_steps(tmp_path)
    files = _data_files(tmp_path, 30)
    assert files
    target = max(files, key=lambda p: p.stat().st_size)
    data = bytearray(target.read_bytes())
    data[int(where * (len(data) - 1))] ^= 0x01
    target.write_bytes(bytes(data))
    with WSDCheckpointManager(tmp_path, SPEC, read_only=True) as m:
        with pytest.raises(CheckpointIntegrityError, match="checkpoint 30"):
            m.restore(_abstract(), 30)
        with caplog.at_level(logging.WARNING):
            found = m.restore_latest_readable(_abstract())
    assert found is not None
    step, restored = found
    assert step == 20 and "checkpoint 30" in caplog.text
    _assert_same(restored, state20)


@pytest.mark.slow
def test_no_flipped_byte_anywhere_in_the_data_files_ever_restores_altered_arrays(tmp_path):
    """Every data file, 16 positions each: the restore is refused, or (a byte outside the values,
    e.g. a file trailer) gives exactly the saved arrays."""
    _, state30 = _two_steps(tmp_path)
    refused = 0
    with WSDCheckpointManager(tmp_path, SPEC, read_only=True) as m:
        for path in _data_files(tmp_path, 30):
            raw = path.read_bytes()
            for k in range(16):
                data = bytearray(raw)
                data[(k * (len(raw) - 1)) // 15] ^= 0x10
                path.write_bytes(bytes(data))
                try:
                    restored = m.restore(_abstract(), 30)
                except CheckpointIntegrityError:
                    refused += 1
                else:
                    _assert_same(restored, state30)
            path.write_bytes(raw)
    assert refused > 0


def test_integrity_error_names_the_leaf(tmp_path):
    _two_steps(tmp_path)
    record_path = tmp_path / "30" / "integrity" / "metadata"
    record = json.loads(record_path.read_text())
    leaf = next(e for e in record["leaves"] if e["path"] == "['params']['w']")
    leaf["fingerprint"] = "0" * 16  # as if the array bytes had changed (the record sealed again)
    record["record_sha256"] = _integrity._seal(record)
    record_path.write_text(json.dumps(record))
    with (
        WSDCheckpointManager(tmp_path, SPEC, read_only=True) as m,
        pytest.raises(CheckpointIntegrityError, match=r"checkpoint 30: leaf \['params'\]\['w'\]"),
    ):
        m.restore(_abstract(), 30)


def test_a_changed_spec_file_that_still_parses_is_damage(tmp_path):
    _two_steps(tmp_path)
    spec_path = tmp_path / "30" / "spec" / "metadata"
    spec = json.loads(spec_path.read_text())
    spec["decay_steps"] = 11
    spec_path.write_text(json.dumps(spec))
    with WSDCheckpointManager(tmp_path, SPEC, read_only=True) as m:
        with pytest.raises(CheckpointIntegrityError, match="spec differs"):
            m.restore(_abstract(), 30, allow_spec_change=True)
        assert m.restore_latest_readable(_abstract(), allow_spec_change=True)[0] == 20  # type: ignore[index]


def _forge_spec(path):
    """Replaces a saved spec by another valid one, as a hand edit would (a longer run)."""
    path.write_text(
        json.dumps({**json.loads(path.read_text()), "total_steps": 200, "checkpoints": [50, 200]})
    )


def test_a_forged_valid_spec_is_damage_wherever_it_is_read(tmp_path, caplog):
    _two_steps(tmp_path)
    _forge_spec(tmp_path / "30" / "spec" / "metadata")
    with WSDCheckpointManager(tmp_path, SPEC, read_only=True) as m:
        # not "saved under a different spec" (a ValueError, a caller's choice): the file was changed
        with pytest.raises(CheckpointIntegrityError, match="checkpoint 30: its spec differs"):
            m.restore(_abstract(), 30)
        with pytest.raises(CheckpointIntegrityError, match="checkpoint 30"):
            m.saved_spec(30)
        assert m.saved_spec(20) == SPEC
        assert m.saved_spec(30, verify=False).total_steps == 200  # what the file says, unchecked
        with caplog.at_level(logging.WARNING):
            found = m.restore_latest_readable(_abstract())
    assert found is not None and found[0] == 20
    _assert_same(found[1], _state(20))
    assert "checkpoint 30" in caplog.text


def test_a_tampered_extra_item_makes_the_step_damaged_for_every_restore(tmp_path, caplog):
    with WSDCheckpointManager(tmp_path, SPEC, max_to_keep=None) as m:
        m.save(20, _state(20), extra={"data": {"position": 20}}, force=True)
        m.save(30, _state(30), extra={"data": {"position": 30}}, force=True)
    (tmp_path / "30" / "data" / "metadata").write_text(json.dumps({"position": 31}))
    with WSDCheckpointManager(tmp_path, SPEC, read_only=True) as m:
        with pytest.raises(CheckpointIntegrityError, match="extra item 'data'"):
            m.restore(_abstract(), 30)
        with caplog.at_level(logging.WARNING):
            found = m.restore_latest_readable(_abstract())
        assert found is not None and found[0] == 20 and m.restore_extra("data", 20) == {"position": 20}
    assert "extra item 'data'" in caplog.text


@pytest.mark.parametrize(
    "extra",
    [{"a": (1, 2)}, {"a": {1: "x"}}, {"a": [1, (2, 3)]}, {"a": {"b": {2: 3}}}],
    ids=["tuple", "int key", "nested tuple", "nested int key"],
)
def test_extra_items_that_json_would_change_are_refused(tmp_path, extra):
    with WSDCheckpointManager(tmp_path, SPEC) as m, pytest.raises(TypeError, match="would not come back"):
        m.save(10, _state(), extra=extra, force=True)
    assert not (tmp_path / "10").exists()


def test_extra_items_come_back_exactly(tmp_path):
    extra = {"a": [1, 2.5, True, None, "s", {"k": [0.1, -3]}]}
    with WSDCheckpointManager(tmp_path, SPEC) as m:
        m.save(10, _state(), extra=extra, force=True)
        m.wait_until_finished()
        back = m.restore_extra("a", 10)
    assert back == extra["a"] and [type(x) for x in back] == [type(x) for x in extra["a"]]


def _reference_fingerprint(array: np.ndarray) -> str:
    """The fingerprint as docs define it, in plain Python integers (independent of both paths)."""
    data = np.ascontiguousarray(array).tobytes()
    data += bytes(-len(data) % 4)
    words = [int.from_bytes(data[i : i + 4], "little") for i in range(0, len(data), 4)]
    rows = [0] * -(-len(words) // ROW)
    columns = [0] * ROW
    for i, w in enumerate(words):
        rows[i // ROW] = (rows[i // ROW] + w) % 2**32
        columns[i % ROW] = (columns[i % ROW] + w) % 2**32

    def mix(h):
        h ^= h >> 16
        h = h * 0x85EBCA6B % 2**32
        h ^= h >> 13
        h = h * 0xC2B2AE35 % 2**32
        return h ^ (h >> 16)

    lanes = [
        sum(mix(s ^ ((k * 0x9E3779B9 + salt) % 2**32)) for k, s in enumerate(sums)) % 2**32
        for sums, salt in ((rows, 0x243F6A88), (columns, 0x85A308D3))
    ]
    return f"{lanes[0]:08x}{lanes[1]:08x}"


@pytest.mark.parametrize(
    "dtype", [np.float32, np.float64, np.int8, np.uint16, np.float16, np.int64, np.bool_]
)
@pytest.mark.parametrize("size", [0, 1, 3, ROW - 1, ROW, 2 * ROW + 5])
def test_fingerprint_matches_its_definition_on_the_host_and_on_devices(dtype, size):
    a = (np.random.default_rng(size).standard_normal(size) * 1000).astype(dtype)
    expected = _reference_fingerprint(a)
    assert fingerprint(a) == expected  # numpy, summed in place
    # The same bytes as a jax array (jax may lack 64-bit types: those go over as their words).
    on_cpu = jnp.asarray(a.view(np.uint32) if a.dtype.itemsize == 8 else a)
    assert fingerprint(on_cpu) == expected  # jax on CPU: the host path
    lanes = np.asarray(_device_lanes([on_cpu]))[0]
    assert f"{int(lanes[0]):08x}{int(lanes[1]):08x}" == expected  # the path for arrays off the host


@pytest.mark.cuda
@pytest.mark.skipif(not jax_gpu_available(), reason="no jax GPU")
@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.int8, np.bool_])
def test_fingerprint_on_the_gpu_equals_the_definition(dtype):
    a = (np.random.default_rng(1).standard_normal(3 * ROW + 7) * 1000).astype(dtype)
    on_gpu = jax.device_put(a, jax.devices("gpu")[0])
    assert fingerprint(on_gpu) == _reference_fingerprint(a)  # the jax.numpy path, run on the GPU


def test_fingerprint_detects_every_single_bit_flip_and_ignores_layout():
    x = np.random.default_rng(0).standard_normal(257).astype(np.float32)
    base = fingerprint(x)
    assert fingerprint(jnp.asarray(x)) == base  # numpy and jax agree
    raw = x.view(np.uint8)
    for byte in range(0, raw.size, 37):
        for bit in range(8):
            y = raw.copy()
            y[byte] ^= 1 << bit
            assert fingerprint(y.view(np.float32)) != base
    swapped = x.copy()
    swapped[[3, 4]] = swapped[[4, 3]]
    assert fingerprint(swapped) != base  # positions count
    for dtype in (np.int8, np.float16, np.int64, np.float64, np.bool_):
        a = (np.arange(50) % 3).astype(dtype)
        assert fingerprint(a) != fingerprint(np.roll(a, 1))


@pytest.mark.slow
def test_fingerprint_of_a_sharded_array_equals_the_unsharded_one():
    code = textwrap.dedent(
        """
        import numpy as np, jax, jax.numpy as jnp
        from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
        from wsd_jax._fingerprint import _device_lanes, fingerprint
        x = np.arange(1024 * 9, dtype=np.float32).reshape(128, 72)
        mesh = Mesh(np.array(jax.devices()).reshape(2, 2), ("a", "b"))
        sharded = jax.device_put(x, NamedSharding(mesh, P("a", "b")))
        assert len(sharded.addressable_shards) == 4
        device = "%08x%08x" % tuple(int(v) for v in np.asarray(_device_lanes([sharded]))[0])
        print(fingerprint(sharded) == fingerprint(x) == device)  # the host path and the sharded sums
        """
    )
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert done.stdout.strip() == "True"


# --- 2. caller mistakes raise, never skip -------------------------------------------------------


def _missing_key():
    a = _abstract()
    del a["step"]
    return a


def _wrong_shape():
    a = _abstract()
    a["params"]["w"] = jax.ShapeDtypeStruct((64, 31), jnp.float32)
    return a


def _wrong_dtype():
    a = _abstract()
    a["params"]["b"] = jax.ShapeDtypeStruct((32,), jnp.int32)
    return a


def _list_not_dict():
    a = _abstract()
    a["params"] = [a["params"]["b"], a["params"]["w"]]
    return a


@pytest.mark.parametrize(
    ("make_target", "leaf"),
    [(_missing_key, "step"), (_wrong_shape, "w"), (_wrong_dtype, "b"), (_list_not_dict, "params")],
)
def test_a_target_that_does_not_match_raises_naming_the_leaf(tmp_path, make_target, leaf):
    _two_steps(tmp_path)
    with WSDCheckpointManager(tmp_path, SPEC, read_only=True) as m:
        with pytest.raises(ValueError, match=leaf):
            m.restore_latest_readable(make_target())
        with pytest.raises(ValueError, match=leaf):
            m.restore(make_target(), 20)


# --- 3. open() falls back to the newest readable spec -------------------------------------------


@pytest.mark.parametrize(
    "damage",
    [
        lambda p: p.write_text(p.read_text()[:7]),  # truncated
        lambda p: p.write_text(""),  # emptied
        lambda p: p.unlink(),  # deleted
        lambda p: p.write_text("{not json"),  # invalid JSON
        lambda p: p.write_text('{"total_steps": -3}'),  # invalid spec
        lambda p: p.write_text('{"bogus": 1}'),  # unknown field
        lambda p: p.write_text("[]"),  # not a mapping
        lambda p: p.parent.rename(p.parent.with_name("gone")),  # the whole item folder
        _forge_spec,  # another valid spec: it does not match the integrity record
    ],
)
def test_open_uses_the_newest_readable_spec(tmp_path, damage, caplog):
    _two_steps(tmp_path)
    damage(tmp_path / "30" / "spec" / "metadata")
    with caplog.at_level(logging.WARNING):
        manager = WSDCheckpointManager.open(tmp_path, read_only=True)
    with manager:
        assert manager.spec == SPEC
        assert manager.restore_latest_readable(_abstract())[0] == 20  # type: ignore[index]
    assert "checkpoint 30" in caplog.text


# --- 4. one writer per folder; readers never delete ----------------------------------------------


def test_a_second_writer_is_refused_and_an_inflight_save_survives(tmp_path):
    a = WSDCheckpointManager(tmp_path, SPEC)
    assert a.save(20, _state(20), force=True)
    with pytest.raises(WriterLockError, match="read_only=True"):
        WSDCheckpointManager(tmp_path, SPEC, max_to_keep=1)
    reader = WSDCheckpointManager(tmp_path, SPEC, read_only=True)  # a branch reading the trunk
    with pytest.raises(PermissionError, match="read-only"):
        reader.save(40, _state(), force=True)
    a.wait_until_finished()
    a.close()
    assert reader.all_steps() == [20]
    _assert_same(reader.restore(_abstract(), 20), _state(20))
    reader.close()
    with WSDCheckpointManager(tmp_path, SPEC) as b:  # released by close(): a new writer may start
        assert b.all_steps() == [20]


def test_readers_never_delete_a_leftover_temporary_folder(tmp_path):
    _two_steps(tmp_path)
    leftover = tmp_path / "40.orbax-checkpoint-tmp-123"
    leftover.mkdir()
    WSDCheckpointManager(tmp_path, SPEC, read_only=True).close()
    WSDCheckpointManager.open(tmp_path, read_only=True).close()
    assert leftover.exists()


@pytest.mark.slow
def test_a_killed_writers_lock_is_taken_over(tmp_path):
    code = textwrap.dedent(
        f"""
        import sys, time
        from wsd_jax import WSDCheckpointManager, WSDSpec
        m = WSDCheckpointManager({str(tmp_path)!r}, WSDSpec(100))
        print("locked", flush=True)
        time.sleep(60)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        with pytest.raises(WriterLockError, match="pid"):
            WSDCheckpointManager(tmp_path, SPEC)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    with WSDCheckpointManager(tmp_path, SPEC) as m:  # the stale lock is taken over
        assert m.save(10, _state(), force=True)


# --- 5. steps are ints >= 0, never below the latest by accident ----------------------------------


@pytest.mark.parametrize(
    ("step", "error"), [(30.0, TypeError), (True, TypeError), ("30", TypeError), (-10, ValueError)]
)
def test_save_refuses_steps_that_are_not_ints(tmp_path, step, error):
    with WSDCheckpointManager(tmp_path, SPEC) as m, pytest.raises(error, match="step must be an int >= 0"):
        m.save(step, _state(), force=True)
    assert not [p for p in tmp_path.iterdir() if not p.name.startswith(".")]  # nothing was written


def test_save_accepts_numpy_and_jax_integer_steps(tmp_path):
    with WSDCheckpointManager(tmp_path, SPEC, max_to_keep=None) as m:
        assert m.save(np.int64(10), _state(), force=True)  # type: ignore[arg-type]
        assert m.save(jnp.asarray(20, jnp.int32), _state(), force=True)  # type: ignore[arg-type]
        m.wait_until_finished()
        assert m.all_steps() == [10, 20]
    with WSDCheckpointManager.open(tmp_path, read_only=True) as m:
        assert m.all_steps() == [10, 20]


def test_save_below_the_latest_needs_rewind_and_latest_is_the_highest(tmp_path):
    with WSDCheckpointManager(tmp_path, SPEC, max_to_keep=None) as m:
        m.save(30, _state(30), force=True)
        with pytest.raises(ValueError, match="rewind=True"):
            m.save(20, _state(20), force=True)
        with pytest.raises(ValueError, match="already exists"):
            m.save(30, _state(30), force=True)
        assert m.save(20, _state(20), force=True, rewind=True)
        m.wait_until_finished()
        assert m.latest_step() == 30
        assert m.restore_latest_readable(_abstract())[0] == m.latest_step()  # type: ignore[index]


def test_a_token_counted_checkpoint_opens_from_its_folder_and_refuses_another_clock(tmp_path):
    # before, the clock was a setting of the manager, not saved: open() failed, and a manager given
    # another ramp restored silently
    spec = WSDSpec(400_000, units="tokens", warmup_steps=40_000, decay_steps=80_000,
                   tokens_per_step=[(0, 2048), (40, 4096)])  # fmt: skip
    state = {"w": jnp.arange(3.0)}
    with WSDCheckpointManager(tmp_path, spec, interval=10) as manager:
        assert manager.plan.pre_decay == (spec.step_reaching(320_000),)
        manager.save(10, state)
    with WSDCheckpointManager.open(tmp_path, read_only=True) as reader:
        assert reader.spec == spec and reader.spec.tokens_per_step == ((0, 2048), (40, 4096))
        assert reader.restore(state)["w"].tolist() == [0.0, 1.0, 2.0]
    other = WSDSpec(**{**spec.to_dict(), "tokens_per_step": 4096})
    reader = WSDCheckpointManager(tmp_path, other, read_only=True)
    with reader, pytest.raises(ValueError, match="the saved state was made with a different spec"):
        reader.restore(state)


# --- every checkpoint is bound to its step and its run --------------------------------------------


def _swap(d):
    (d / "20").rename(d / "tmp")
    (d / "30").rename(d / "20")
    (d / "tmp").rename(d / "30")


def _copy_as_40(d):
    shutil.copytree(d / "20", d / "40")


def _link_as_40(d):
    (d / "40").symlink_to(d / "20", target_is_directory=True)


@pytest.mark.parametrize(
    ("damage", "step", "match"),
    [
        (_swap, 30, "holds the checkpoint of step 20"),
        (_copy_as_40, 40, "holds the checkpoint of step 20"),
        (_link_as_40, 40, "holds the checkpoint of step 20"),
    ],
    ids=["swapped", "copied", "symlinked"],
)
def test_a_step_folder_under_another_steps_name_is_damage(tmp_path, caplog, damage, step, match):
    # before: restore(step=30) returned step 20's state, and so did restore_latest_readable
    _two_steps(tmp_path)
    damage(tmp_path)
    with WSDCheckpointManager(tmp_path, SPEC, read_only=True) as reader:
        with pytest.raises(CheckpointIntegrityError, match=rf"checkpoint {step}: its folder {match}"):
            reader.restore(_abstract(), step=step)
        with caplog.at_level(logging.WARNING):
            found = reader.restore_latest_readable(_abstract())
    assert f"checkpoint {step}" in caplog.text
    if damage is _swap:  # both folders hold the other's checkpoint: neither is readable
        assert found is None
    else:
        assert found is not None and found[0] == 30 and int(found[1]["step"]) == 30


def test_a_step_folder_from_another_run_is_damage(tmp_path):
    _two_steps(tmp_path / "a")
    _two_steps(tmp_path / "b")
    shutil.rmtree(tmp_path / "a" / "30")
    shutil.copytree(tmp_path / "b" / "30", tmp_path / "a" / "30")
    with WSDCheckpointManager.open(tmp_path / "a", read_only=True) as reader:
        with pytest.raises(CheckpointIntegrityError, match="checkpoint 30: it was saved by another run"):
            reader.restore(_abstract(), step=30)
        assert reader.restore(_abstract(), step=20)["step"] == 20
    # the run's id is written once, at the first save, and kept by later writers
    first = (tmp_path / "a" / ".wsd-run-id").read_text()
    with WSDCheckpointManager(tmp_path / "a", SPEC, max_to_keep=None) as writer:
        writer.save(40, _state(40), force=True)
    assert (tmp_path / "a" / ".wsd-run-id").read_text() == first


# --- an intact checkpoint is always readable ------------------------------------------------------


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: bytes([b[0] ^ 0x01]) + b[1:],  # one flipped bit
        lambda b: b"",  # empty
        lambda b: bytes(range(200, 240)),  # binary
        lambda b: b"f" * 32 + b"\n",  # well formed, but no checkpoint's run
    ],
    ids=["bit", "empty", "binary", "another-id"],
)
def test_a_damaged_run_id_file_is_ignored_and_written_again_never_decides(tmp_path, caplog, damage):
    # before: one flipped bit made every step "saved by another run" (None: a fresh start); an empty or
    # binary file gave a bare AssertionError or UnicodeDecodeError
    _, state30 = _two_steps(tmp_path)
    run_file = tmp_path / ".wsd-run-id"
    original = run_file.read_bytes()
    run_file.write_bytes(damage(original))
    with caplog.at_level(logging.WARNING), WSDCheckpointManager(tmp_path, SPEC, read_only=True) as reader:
        found = reader.restore_latest_readable(_abstract())
        assert found is not None and found[0] == 30
        _assert_same(found[1], state30)
        assert reader.restore(_abstract(), 20)["step"] == 20
    assert ".wsd-run-id" in caplog.text and "ignored" in caplog.text
    with WSDCheckpointManager.open(tmp_path) as writer:  # the next writer keeps the run's own id
        writer.save(40, _state(40), force=True)
    assert run_file.read_bytes() == original
    with WSDCheckpointManager(tmp_path, SPEC, read_only=True) as reader:
        assert [reader.restore(_abstract(), s)["step"] for s in (20, 30, 40)] == [20, 30, 40]


@pytest.mark.parametrize("how", ["cp -r src/* dst/", "step folders only"])
def test_a_run_copied_without_its_dotfiles_resumes_and_every_step_stays_readable(tmp_path, how):
    # before: the resumed writer made a new run id, and every copied step was refused from then on
    src, dst = tmp_path / "src", tmp_path / "dst"
    _two_steps(src)
    dst.mkdir()
    for child in src.iterdir():
        if not child.name.startswith(".") and (how == "cp -r src/* dst/" or child.name.isdigit()):
            shutil.copytree(child, dst / child.name)
    assert not (dst / ".wsd-run-id").exists()
    with WSDCheckpointManager.open(dst) as writer:
        found = writer.restore_latest_readable(_abstract())
        assert found is not None and found[0] == 30
        writer.save(40, found[1], force=True)
    with WSDCheckpointManager(dst, SPEC, read_only=True) as reader:
        assert [reader.restore(_abstract(), s)["step"] for s in (20, 30, 40)] == [20, 30, 30]
        assert reader.restore_latest_readable(_abstract())[0] == 40  # type: ignore[index]


@pytest.mark.slow
def test_a_reader_beside_a_writer_that_deletes_old_steps_always_finds_a_good_one(tmp_path):
    # before: about 8% of reads returned None and 2% raised a raw FileNotFoundError, though a good
    # checkpoint always existed
    spec = WSDSpec(10**6, decay_steps=10)  # (its plan's steps are far away: only the latest is kept)
    writer_code = textwrap.dedent(f"""
        import jax.numpy as jnp, sys
        from wsd_jax import WSDCheckpointManager, WSDSpec
        spec = WSDSpec(10**6, decay_steps=10)
        with WSDCheckpointManager({str(tmp_path)!r}, spec, max_to_keep=1, async_save=False) as m:
            for step in range(1, 160):
                m.save(step, {{"w": jnp.full((64, 64), float(step)), "step": step}}, force=True)
                if step == 1:
                    print("first", flush=True)
    """)
    writer = subprocess.Popen([sys.executable, "-c", writer_code], stdout=subprocess.PIPE, text=True)
    assert writer.stdout is not None and writer.stdout.readline().strip() == "first"
    target = {"w": jax.ShapeDtypeStruct((64, 64), jnp.float32), "step": 0}
    reads = 0
    with WSDCheckpointManager(tmp_path, spec, read_only=True) as reader:
        while writer.poll() is None:
            found = reader.restore_latest_readable(target)
            assert found is not None
            assert float(found[1]["w"][0, 0]) == found[0] == found[1]["step"]
            reads += 1
    assert writer.wait() == 0 and reads > 20


@pytest.mark.parametrize("name", ["_CHECKPOINT_METADATA", "_METADATA", "metrics", "descriptor", "_private"])
def test_names_orbax_keeps_are_refused_at_save_not_lost_in_the_background(tmp_path, name):
    # before: save() returned True, the background save failed, and the checkpoint was lost
    with WSDCheckpointManager(tmp_path, SPEC) as manager:
        with pytest.raises(ValueError, match=rf"extra item names .* got '{name}'"):
            manager.save(20, _state(20), extra={name: 1}, force=True)
        assert manager.save(20, _state(20), extra={"loader": 1}, force=True)
    with WSDCheckpointManager(tmp_path, SPEC, read_only=True) as reader:
        assert reader.restore_extra("loader") == 1


def test_a_warning_about_damage_is_one_short_line(tmp_path, caplog):
    # before: warnings carried 2,000-character TensorStore dumps
    _two_steps(tmp_path)
    for path in _data_files(tmp_path, 30):
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with caplog.at_level(logging.WARNING), WSDCheckpointManager(tmp_path, SPEC, read_only=True) as reader:
        assert reader.restore_latest_readable(_abstract())[0] == 20  # type: ignore[index]
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("wsd_jax")]
    assert ours and all(len(m) < 400 and "\n" not in m for m in ours), ours


def test_open_of_a_folder_of_damaged_checkpoints_says_what_to_try(tmp_path):
    _two_steps(tmp_path)
    for step in (20, 30):
        (tmp_path / str(step) / "spec" / "metadata").write_text('{"total_steps": 7}')
    with pytest.raises(FileNotFoundError, match=r"its 2 checkpoint\(s\) are damaged.*verify=False"):
        WSDCheckpointManager.open(tmp_path)
