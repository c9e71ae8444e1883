"""Orbax checkpointing of a train state with its WSD spec and an integrity record in every checkpoint."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, TypedDict, Unpack

import jax
import numpy as np
import orbax.checkpoint as ocp
from etils import epath

from wsd_core import SavePlan, WSDSpec
from wsd_core.backend import check_real, check_saved_spec, check_steps
from wsd_jax import _integrity
from wsd_jax._integrity import CheckpointIntegrityError, Record, short
from wsd_jax._lock import WriterLock, WriterLockError
from wsd_jax._orbax import orbax_policies, spec_from_restored, spec_save_args
from wsd_jax._processes import DEFAULT_TIMEOUT_S, Agreement
from wsd_jax._reading import INTEGRITY, StepReader
from wsd_jax._run_id import RUN_ID_NAME, new_run_id, read_folder_id, write_folder_id

_log = logging.getLogger(__name__)
_ITEMS = ("state", "spec", INTEGRITY)  # every checkpoint's own items; extra items are named by the caller
# Names Orbax keeps for itself in a step folder or its CheckpointManager: an item of one of these
# names is accepted by save() and then fails in the background, losing the checkpoint.
_ORBAX_NAMES = ("metrics", "descriptor", "default")
_RELISTS = 20  # restore_latest_readable lists the folder again when a step vanished under it


class Options(TypedDict, total=False):
    """The options of a ``WSDCheckpointManager`` beside its folder, spec and ``read_only`` (for
    ``WSDCheckpointManager.open``)."""

    interval: int | None
    max_to_keep: int | None
    async_save: bool
    best_n: int | None
    best_metric: Any
    best_mode: str
    process_timeout_s: float


class WSDCheckpointManager:
    """An ``orbax.checkpoint.CheckpointManager`` that knows the run's ``WSDSpec``.

    What it guarantees:

    * **Integrity.** Every checkpoint holds three items: ``state`` (any pytree, ``StandardSave``),
      ``spec`` (the spec as JSON) and ``integrity`` (each leaf's path, shape, dtype and a 64-bit
      fingerprint of its values, computed where the arrays live, with no gather to one host). Every
      restore verifies it: data that differs from what was saved raises ``CheckpointIntegrityError``
      naming the step and the leaf; it is never returned.
    * **Damage is skipped, mistakes raise.** ``restore_latest_readable`` skips a damaged step
      (unreadable, or failing its integrity record) with a warning and tries the next older one. A
      target whose structure, shapes or dtypes do not match the saved state raises ``ValueError``
      at once, naming the leaf: it is never mistaken for damage (which would restart training).
    * **One writer per folder.** A writing manager holds an exclusive lock on its folder (released by
      the operating system if its process dies, so a crashed job's lock is taken over). A second
      writer is refused with ``WriterLockError``. Readers (``read_only=True``, which branching and
      inspection should use) never clean up, rotate or delete anything.
    * **Saves are atomic.** Orbax writes into a temporary folder and renames it when complete; a
      crash mid-save leaves the earlier checkpoints intact, and the next writer removes the leftover.
    * Saves follow the spec's ``SavePlan``: each pre-decay step and each period end (kept forever by
      the retention policy) plus every ``interval`` steps; besides the plan's steps, the latest
      ``max_to_keep`` checkpoints of any kind are kept. Saves are asynchronous by default.
    * ``restore`` compares the saved spec with this manager's and refuses a different one unless
      ``allow_spec_change=True`` (continuing a trunk, branching a cooldown).

    Args:
      directory: the checkpoint folder (created by a writer if missing). A cooldown branch gets its
        own folder.
      spec: the spec of the run that writes (or reads) here.
      interval: also save every ``interval`` steps (None: only the plan's steps).
      max_to_keep: how many of the latest checkpoints (of any kind) to keep besides the plan's steps
        (None: all).
      async_save: save in the background (``wait_until_finished`` or ``close`` waits for it).
      read_only: open for reading only: no lock, no cleanup, no deletion; ``save`` is refused.
      best_n: also keep the ``best_n`` best checkpoints by a metric given to
        ``save(..., metrics=...)``; the plan's steps are kept whatever their metrics.
      best_metric: that metric: a name, or a function of the metrics.
      best_mode: ``"min"`` or ``"max"``: which end of the metric is best.
      process_timeout_s: in a job of several processes, how long a process waits for the others to
        agree on a checkpoint, the writer lock or the run id (``ProcessAgreementError`` after it).

    Examples:
      >>> import tempfile, jax.numpy as jnp
      >>> spec = WSDSpec(100, decay_steps=20)
      >>> with WSDCheckpointManager(tempfile.mkdtemp(), spec, interval=50) as ckpt:
      ...     ckpt.save(50, {"w": jnp.ones(3)})
      ...     ckpt.wait_until_finished()
      ...     restored = ckpt.restore({"w": jnp.zeros(3)})
      True
      >>> restored["w"].tolist()
      [1.0, 1.0, 1.0]
    """

    def __init__(
        self,
        directory: str | Path,
        spec: WSDSpec,
        *,
        interval: int | None = None,
        max_to_keep: int | None = 3,
        async_save: bool = True,
        read_only: bool = False,
        best_n: int | None = None,
        best_metric: Any = None,
        best_mode: str = "min",
        process_timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        if not isinstance(spec, WSDSpec):
            raise TypeError(f"spec must be a WSDSpec, got {type(spec).__name__}")
        self.spec = spec
        self.plan = SavePlan.for_spec(spec, interval)  # in updates: a spec in tokens has its clock
        self.directory = epath.Path(directory).absolute()
        self.read_only = bool(read_only)
        timeout = check_real("process_timeout_s", process_timeout_s, positive=True)
        self._agree = Agreement(str(self.directory), timeout)
        self._lock: WriterLock | None = None
        self._run: str | None = None  # the run a writer saves as (resolved at its first save)
        self._ignored_folder_ids: set[str] = set()  # folder ids found naming no checkpoint (warned once)
        self._reader = StepReader(self.directory)
        self._manager: Any = None  # Orbax's CheckpointManager: the writer's (a reader needs none)
        if self.read_only:
            # A reader lists and reads the folder itself: Orbax's manager would add barriers (a reader
            # of a multi-process job must never wait for a process in a collective).
            if not self.directory.exists():
                raise FileNotFoundError(f"no checkpoint folder {self.directory}")
            return
        policies = orbax_policies(
            self.plan, max_to_keep=max_to_keep, best_n=best_n, best_metric=best_metric, best_mode=best_mode
        )
        options = ocp.CheckpointManagerOptions(
            **policies,
            enable_async_checkpointing=async_save,
            cleanup_tmp_directories=True,  # a save a crash interrupted is removed, never read
        )
        # The lock comes first: only the folder's one writer may clean up (an in-flight save of
        # another writer looks like a crash's leftover). Process 0 takes it for the job, and every
        # process learns whether it did before any of them goes on (into Orbax's own barriers).
        lock_error: WriterLockError | None = None
        try:
            self._lock = _writer_lock(self.directory)
        except WriterLockError as e:
            lock_error = e
        refused = self._agree.from_primary("the writer lock", None if lock_error is None else str(lock_error))
        if refused is not None:
            raise lock_error if lock_error is not None else WriterLockError(refused)
        try:
            # No fixed item names: the caller may add items (extra=) to any checkpoint.
            self._manager = ocp.CheckpointManager(self.directory, options=options)
        except BaseException:
            self._release_lock()
            raise

    # --- saving ----------------------------------------------------------------------------------

    def should_save(self, step: int) -> bool:
        """Whether ``save(step, ...)`` would write (the plan's steps and the interval)."""
        return self.plan.should_save(_check_step(step))

    def save(
        self,
        step: int,
        state: Any,
        *,
        extra: Mapping[str, Any] | None = None,
        metrics: Mapping[str, Any] | None = None,
        force: bool = False,
        rewind: bool = False,
    ) -> bool:
        """Saves ``state`` and the spec as checkpoint ``step`` if the plan says so (or ``force``).

        ``step`` is the number of updates ``state`` has applied (optax's ``count``): an int >= 0
        (numpy and jax integer scalars too). A step that already exists is refused, and so is a step
        below the latest saved one unless ``rewind=True`` (restarting an earlier point on purpose):
        otherwise ``latest_step()`` would name a checkpoint of the abandoned continuation.

        ``extra`` adds named JSON items (a data iterator's position, a config): JSON-serialisable
        values, covered by the integrity record and read back with ``restore_extra``. Names Orbax
        keeps for itself (``_CHECKPOINT_METADATA``, ``metrics``, ...) are refused. ``metrics``
        (numbers by name) are saved with the checkpoint for ``best_n`` retention.
        Returns whether a save was started.
        """
        step = _check_step(step)
        extra = _check_extra(extra)
        if self.read_only:
            raise PermissionError(f"this manager of {self.directory} is read-only; save is refused")
        if not (force or self.plan.should_save(step)):
            return False
        existing = self.all_steps()
        if step in existing:
            raise ValueError(
                f"checkpoint {step} already exists in {self.directory}; a step is written once "
                "(use a fresh folder for a new run)"
            )
        if existing and step < existing[-1] and not rewind:
            raise ValueError(
                f"step {step} is below the latest checkpoint {existing[-1]} in {self.directory}; "
                "latest_step() and restore_latest_readable() would still pick the newer one. Pass "
                "rewind=True to save it anyway"
            )
        record = _integrity.make_record(
            state, self.spec.to_dict(), step=step, run_id=self._writer_run(existing), extra=extra
        )
        args = ocp.args.Composite(
            state=ocp.args.StandardSave(state),
            spec=spec_save_args(self.spec),
            integrity=ocp.args.JsonSave(record),
            **{name: ocp.args.JsonSave(value) for name, value in extra.items()},
        )
        return bool(
            self._manager.save(step, args=args, metrics=dict(metrics) if metrics else None, force=True)
        )

    def restore_extra(self, name: str, step: int | None = None) -> Any:
        """The extra item ``name`` saved with checkpoint ``step`` (default: the latest), verified."""
        step = self._step_or_latest(step)
        if not self._reader.has_record(step):
            return self._reader.json_items(step, name)[0]  # saved by 0.1: nothing to verify it with
        record = self._reader.record(step)
        if name not in record.extra:
            raise ValueError(
                f"checkpoint {step} has no extra item {name!r}; its extra items: {sorted(record.extra)}"
            )
        data = self._reader.json_items(step, name)[0]
        if record.extra[name] != _integrity.json_digest(data):
            raise CheckpointIntegrityError(
                f"checkpoint {step}: extra item {name!r} does not match its record"
            )
        return data

    # --- restoring --------------------------------------------------------------------------------

    def saved_spec(self, step: int | None = None, *, verify: bool = True) -> WSDSpec:
        """The spec saved in checkpoint ``step`` (default: the latest), checked against the
        checkpoint's integrity record: a spec file changed after the save raises
        ``CheckpointIntegrityError`` (``verify=False``: unchecked). A checkpoint of 0.1 has no record:
        its spec is read as it is, with a note."""
        step = self._step_or_latest(step)
        return self._agreed(f"checkpoint {step}'s spec", lambda: self._spec_and_record(step, verify))[0]

    def restore(
        self,
        abstract_state: Any,
        step: int | None = None,
        *,
        allow_spec_change: bool = False,
        verify: bool = True,
    ) -> Any:
        """The state of checkpoint ``step`` (default: the latest), shaped like ``abstract_state``.

        ``abstract_state`` is a pytree of arrays or ``jax.ShapeDtypeStruct``s (``jax.eval_shape`` of
        the init function), so optax's state classes come back as they were; give a
        ``ShapeDtypeStruct`` a ``sharding`` to restore onto another mesh.

        Checkpoints of every earlier release are read, each verified by what it recorded (records of
        formats 1 to 3); a checkpoint of 0.1, which has no record, is restored unverified with a note.

        Raises:
          CheckpointIntegrityError: the checkpoint is damaged (unreadable, or its data differs from
            its integrity record), naming the step and the leaf.
          ValueError: ``abstract_state`` does not match the saved structure, shapes or dtypes
            (naming the leaf), or the checkpoint was saved under another spec and
            ``allow_spec_change`` is False (see ``check_saved_spec``).
          FileNotFoundError: there is no such checkpoint.

        ``verify=False`` reads a checkpoint without checking anything; read errors then propagate as
        they are.
        """
        return self._restore_step(abstract_state, self._step_or_latest(step), allow_spec_change, verify)

    def restore_latest_readable(
        self, abstract_state: Any, *, allow_spec_change: bool = False, verify: bool = True
    ) -> tuple[int, Any] | None:
        """(step, state) of the newest undamaged checkpoint; None when there is none.

        A damaged checkpoint (``CheckpointIntegrityError``: unreadable, or its state, spec, record or
        extra items differ from what was saved) is skipped with a one-line warning naming it and the
        reason, and the next older one is tried. A checkpoint that vanishes while it is read (a writer
        beside this reader deleted it, keeping newer ones) is no damage: the folder is listed again
        and its newest step tried. Everything else raises at once, as in ``restore``: a spec mismatch
        (an intact spec that is not this manager's), or a target that does not match the saved state.
        """
        damaged: set[int] = set()
        for attempt in range(_RELISTS):
            listed = self._agreed_steps()
            changed = False
            for step in reversed([s for s in listed if s not in damaged]):
                try:
                    return step, self._restore_step(abstract_state, step, allow_spec_change, verify)
                except CheckpointIntegrityError as e:
                    if self._agreed_steps() != listed:
                        changed = True  # the writer saved or deleted meanwhile: list again, newest first
                        break
                    damaged.add(step)
                    _log.warning("checkpoint %s in %s is damaged and skipped: %s", step, self.directory, e)
            if not changed and not self._settling(listed, damaged, attempt):
                return None
        return None

    def _settling(self, listed: list[int], damaged: set[int], attempt: int) -> bool:
        """Whether the folder changes under a reader that found nothing readable: Orbax lists no step
        for a moment while a writer commits one and deletes another. Looked at again a few times,
        briefly (0.35 s in all), before None is believed. (A writer's folder changes only by its hand.)"""
        if not self.read_only:
            return False
        for pause in (0.05, 0.1, 0.2)[: max(0, 3 - attempt)]:
            time.sleep(pause)
            now = self._agreed_steps()
            if now != listed and any(s not in damaged for s in now):
                return True
        return False

    def _restore_step(self, abstract_state: Any, step: int, allow_spec_change: bool, verify: bool) -> Any:
        """``restore`` of a step known to exist: spec, state and extra items, each verified. Each part
        ends with one verdict for all the job's processes (``Agreement.outcome``): damage any process
        sees is damage on all, and a collective (the fingerprint's) starts only when all are ready."""

        def checked() -> Record | None:
            spec, record = self._spec_and_record(step, verify)
            check_saved_spec(spec, self.spec, allow_spec_change)
            if record is not None:
                self._check_target(record, abstract_state, step)
            return record

        record = self._agreed(f"checkpoint {step}'s spec and record", checked)
        if not verify:  # nothing is checked: read errors propagate as they are
            return self._reader.raw_state(abstract_state, step)
        state = self._agreed(f"checkpoint {step}'s state", lambda: self._reader.state(abstract_state, step))
        if record is not None:
            self._agreed(f"checkpoint {step}'s verification", lambda: self._verify(record, state, step))
        return state

    def _verify(self, record: Record, state: Any, step: int) -> None:
        _integrity.verify(record, state, step)
        self._verify_extras(step, record)

    def _agreed(self, what: str, call: Any) -> Any:
        """``call()``, with one verdict of all the job's processes on how it went (in a single process,
        its own): an error any process met is raised on every process."""
        try:
            result = call()
        except Exception as e:
            self._agree.outcome(what, e)
            raise  # (outcome raises; this is for the type checker)
        self._agree.outcome(what, None)
        return result

    def _agreed_steps(self) -> list[int]:
        """The saved steps as process 0 lists them, on every process (a writer may be adding)."""
        return list(self._agree.from_primary("the saved steps", self.all_steps()))

    def _spec_and_record(self, step: int, verify: bool) -> tuple[WSDSpec, Record | None]:
        """The saved spec and (when verifying) its checked integrity record, in one read: the record
        bound to this step and run, the spec the one it was made with. A checkpoint of 0.1 has no
        record (None, with a note)."""
        if not verify:
            return _parse_spec(self._reader.json_items(step, "spec")[0], step), None
        if not self._reader.has_record(step):
            _log.warning(
                "checkpoint %s in %s was saved by wsd-schedule 0.1, without an integrity record: read "
                "unverified (save it again to give it one)",
                step,
                self.directory,
            )
            return _parse_spec(self._reader.json_items(step, "spec")[0], step), None
        spec_item, raw = self._reader.json_items(step, "spec", INTEGRITY)
        record = _integrity.parse_record(raw, step)
        _integrity.check_binding(record, step)
        self._check_run(record, step)
        _integrity.check_spec(record, spec_item, step)
        if record.format < _integrity.FORMAT:
            _log.info("checkpoint %s in %s has a record of format %s (an earlier release's): verified by "
                      "what it recorded", step, self.directory, record.format)  # fmt: skip
        return _parse_spec(spec_item, step), record

    def _check_target(self, record: Record, target: Any, step: int) -> None:
        """A target that does not match the saved state is the caller's mistake (``ValueError``),
        unless the record is an unsealed one that disagrees with the arrays Orbax saved too: then the
        record is damaged."""
        problem = _integrity.target_mismatch(record, target, step)
        if problem is None:
            return
        if not record.sealed and self._reader.saved_arrays_match(target, step):
            raise CheckpointIntegrityError(
                f"checkpoint {step}: its integrity record does not describe its saved arrays (the record "
                "is damaged)"
            )
        raise ValueError(problem)

    def _verify_extras(self, step: int, record: Record) -> None:
        """Every extra item the record lists is readable and matches it (one read for all)."""
        names = list(record.extra)
        if not names:
            return
        for name, data in zip(names, self._reader.json_items(step, *names), strict=True):
            if record.extra[name] != _integrity.json_digest(data):
                raise CheckpointIntegrityError(
                    f"checkpoint {step}: extra item {name!r} does not match its record"
                )

    # --- the run a folder holds (wsd_jax._run_id) ----------------------------------------------------

    def _check_run(self, record: Record, step: int) -> None:
        """Refuses a checkpoint of another run than the folder's, where the folder's run id is borne
        out by one of its checkpoints; a folder id that no checkpoint carries is ignored (warned)."""
        folder = self._run if self._run is not None else read_folder_id(self.directory)
        if record.run_id is None or folder is None or record.run_id == folder:
            return
        if folder in self._ignored_folder_ids:
            return
        if self._run_of_some_step(folder, exclude=step):
            raise CheckpointIntegrityError(
                f"checkpoint {step}: it was saved by another run ({record.run_id!r}, this folder's is "
                f"{folder!r}): a step folder copied from another run's folder"
            )
        self._ignored_folder_ids.add(folder)
        _log.warning(
            "%s names run %r, which no checkpoint in the folder carries (damaged, or left by another run): "
            "ignored; each checkpoint is checked for its step",
            self.directory / RUN_ID_NAME,
            folder,
        )

    def _run_of_some_step(self, run_id: str, *, exclude: int | None = None) -> bool:
        """Whether a readable record of a checkpoint here (other than ``exclude``) names ``run_id``."""
        return any(found == run_id for found in self._step_runs(exclude=exclude))

    def _step_runs(self, *, exclude: int | None = None) -> Iterator[str]:
        """The run ids the readable records of the folder's checkpoints name, newest first."""
        for step in reversed(self.all_steps()):
            if step == exclude:
                continue
            try:
                run_id = self._reader.record(step).run_id
            except CheckpointIntegrityError:
                continue
            if run_id is not None:
                yield run_id

    def _writer_run(self, existing: list[int]) -> str:
        """The run id this writer saves as, resolved at its first save by process 0 for the whole job:
        the folder's, where one of its checkpoints bears it out; else the run of the folder's newest
        checkpoint (the one resumed from: a copied run stays one run); else a new one. The folder's
        file is written again when it differs."""
        if self._run is None:

            def resolve() -> str | None:
                if jax.process_index() != 0:
                    return None
                folder = read_folder_id(self.directory)
                if folder is not None and (not existing or self._run_of_some_step(folder)):
                    return folder
                run = next(self._step_runs(), None) or new_run_id()
                write_folder_id(self.directory, run)
                return run

            self._run = self._agree.from_primary("the run id", self._agreed("the run id", resolve))
        return self._run

    def _step_or_latest(self, step: int | None) -> int:
        if step is None:
            latest = self.latest_step()
            if latest is None:
                raise FileNotFoundError(f"no checkpoint in {self.directory}")
            return latest
        step = _check_step(step)
        if step not in self.all_steps():
            raise FileNotFoundError(
                f"no checkpoint for step {step} in {self.directory}; saved steps: {list(self.all_steps())}"
            )
        return step

    # --- the rest of the manager ----------------------------------------------------------------

    def latest_step(self) -> int | None:
        """The highest saved step (not the most recently written one), or None."""
        steps = self.all_steps()
        return steps[-1] if steps else None

    def all_steps(self) -> list[int]:
        """The saved steps, ascending. A reader lists the folder afresh (a writer may be adding, and
        deleting: a step that vanishes while the folder is listed is listed again)."""
        for attempt in range(_RELISTS):
            try:
                if self.read_only:
                    return sorted(ocp.utils.checkpoint_steps(self.directory))
                return sorted(int(s) for s in self._manager.all_steps())
            except FileNotFoundError:
                if attempt == _RELISTS - 1:
                    raise
        return []  # (unreachable)

    def wait_until_finished(self) -> None:
        """Waits for an asynchronous save to be written and committed."""
        if self._manager is not None:
            self._manager.wait_until_finished()

    def close(self) -> None:
        """Waits for any save in flight, closes Orbax's manager and releases the writer's lock."""
        try:
            if self._manager is not None:
                self._manager.close()
        finally:
            self._reader.close()
            self._release_lock()

    def _release_lock(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> WSDCheckpointManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[int]:
        return iter(self.all_steps())

    @classmethod
    def open(
        cls,
        directory: str | Path,
        *,
        read_only: bool = False,
        verify: bool = True,
        **options: Unpack[Options],
    ) -> WSDCheckpointManager:
        """A manager for an existing run, built from the spec saved in its newest readable checkpoint.

        This is how a restarted job rebuilds exactly the schedule it was running. A step whose spec
        cannot be read, or does not match its integrity record, is skipped with a warning
        (``verify=False`` reads the specs unchecked). Checkpoints of earlier releases are read as
        ``restore`` reads them. Reading the spec deletes nothing; the returned manager is the folder's
        writer unless ``read_only=True``.
        """
        path = epath.Path(directory).absolute()
        if not path.exists():
            raise FileNotFoundError(f"no checkpoint in {directory} (the folder does not exist)")
        probe = cls(path, WSDSpec(1), read_only=True)
        try:
            spec, steps = None, probe.all_steps()
            for step in reversed(steps):
                try:
                    spec = probe.saved_spec(step, verify=verify)
                    break
                except CheckpointIntegrityError as e:
                    _log.warning("checkpoint %s in %s: %s; trying an older one", step, path, e)
        finally:
            probe.close()
        if spec is None:
            if not steps:
                raise FileNotFoundError(f"no checkpoint in {directory}")
            hint = (
                "" if not verify else " (WSDCheckpointManager.open(..., verify=False) reads specs unchecked)"
            )
            raise FileNotFoundError(
                f"no checkpoint with a readable spec in {directory}: its {len(steps)} checkpoint(s) are "
                f"damaged, each named in a warning{hint}"
            )
        return cls(path, spec, read_only=read_only, **options)


def _parse_spec(data: Any, step: int) -> WSDSpec:
    try:
        return spec_from_restored(data)
    except (TypeError, ValueError) as e:
        raise CheckpointIntegrityError(f"checkpoint {step}: its saved spec is invalid ({short(e)})") from e


def _check_extra(extra: Mapping[str, Any] | None) -> dict[str, Any]:
    """Extra items: JSON-serialisable values under names that are not the checkpoint's own."""
    if extra is None:
        return {}
    if not isinstance(extra, Mapping):
        raise TypeError(f"extra must be a mapping of item names to JSON values, got {type(extra).__name__}")
    for name, value in extra.items():
        reserved = isinstance(name, str) and (name.startswith("_") or name in _ITEMS or name in _ORBAX_NAMES)
        if not isinstance(name, str) or not name.isidentifier() or reserved:
            raise ValueError(
                f"extra item names must be identifiers that do not start with '_' and are none of "
                f"{[*_ITEMS, *_ORBAX_NAMES]} (the checkpoint's own items and Orbax's), got {name!r}"
            )
        try:
            _integrity.json_digest(value)
        except (TypeError, ValueError) as e:
            raise TypeError(
                f"extra item {name!r} must be JSON-serialisable (put arrays in the state): {e}"
            ) from e
        back = json.loads(json.dumps(value))
        if back != value or not _same_json_types(back, value):
            raise TypeError(
                f"extra item {name!r} would not come back as saved: JSON turns tuples into lists and "
                f"dict keys into strings ({value!r:.100} would restore as {back!r:.100}); save lists "
                "and string keys"
            )
    return dict(extra)


def _same_json_types(back: Any, value: Any) -> bool:
    """Whether ``value`` is made of the types JSON gives back (dict, list, str, int, float, bool,
    None): a tuple equals no list, but ``1 == 1.0`` and ``True == 1`` hide a type change."""
    if type(back) is not type(value):
        return False
    if isinstance(value, dict):
        return all(_same_json_types(back[k], value[k]) for k in value)
    if isinstance(value, list):
        return all(_same_json_types(b, x) for b, x in zip(back, value, strict=True))
    return True


def _check_step(step: Any) -> int:
    """A checkpoint step: an int >= 0; numpy and jax integer scalars are accepted."""
    is_array = isinstance(step, (jax.Array, np.ndarray, np.generic))
    if is_array and np.ndim(step) == 0 and np.issubdtype(np.asarray(step).dtype, np.integer):
        step = int(step)
    return check_steps("step", step)  # the number of updates the saved state applied


def _writer_lock(directory: epath.Path) -> WriterLock | None:
    """The folder's writer lock, taken by the primary process on a local filesystem."""
    if jax.process_index() != 0:
        return None  # one lock per job: the primary process holds it for all of them
    if "://" in str(directory):
        _log.warning("%s is not a local folder: one writer per folder is not enforced there", directory)
        return None
    directory.mkdir(parents=True, exist_ok=True)
    return WriterLock(str(directory))
