"""Orbax checkpointing of a train state with its WSD spec beside it in every checkpoint."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orbax.checkpoint as ocp
from etils import epath

from wsd_core import SavePlan, WSDSpec
from wsd_core._saved import check_saved_spec

_log = logging.getLogger(__name__)
_policies = ocp.checkpoint_managers


class WSDCheckpointManager:
    """An ``orbax.checkpoint.CheckpointManager`` that knows the run's ``WSDSpec``.

    * Every checkpoint holds two items: ``state`` (any pytree, saved with ``StandardSave``) and
      ``spec`` (the spec as JSON). ``restore`` compares the saved spec with this manager's and refuses
      a different one unless ``allow_spec_change=True`` (continuing a trunk, branching a cooldown).
    * Saves follow the spec's ``SavePlan``: each pre-decay step and each period end (kept forever by
      the retention policy) plus every ``interval`` steps; besides the plan's steps, the latest
      ``max_to_keep`` checkpoints of any kind are kept.
    * Saves are asynchronous by default: ``save`` returns once the arrays are copied and the write
      goes on in the background; Orbax writes into a temporary folder and renames it only when
      complete, so a crash mid-save leaves the previous checkpoints intact.

    Args:
      directory: the checkpoint folder (created if missing). A cooldown branch gets its own folder.
      spec: the spec of the run that writes here.
      interval: also save every ``interval`` steps (None: only the plan's steps).
      max_to_keep: how many of the latest checkpoints (of any kind) to keep besides the plan's steps
        (None: all).
      async_save: save in the background (``wait_until_finished`` or ``close`` waits for it).

    Example:
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
    ) -> None:
        if not isinstance(spec, WSDSpec):
            raise TypeError(f"spec must be a WSDSpec, got {type(spec).__name__}")
        if max_to_keep is not None and (isinstance(max_to_keep, bool) or max_to_keep < 1):
            raise ValueError(f"max_to_keep must be None or an int >= 1, got {max_to_keep!r}")
        self.spec = spec
        self.plan = SavePlan.for_spec(spec, interval)
        self.directory = epath.Path(directory).absolute()
        save_when: list[Any] = [_policies.SpecificStepsPolicy(sorted(self.plan.kept_steps))]
        if self.plan.interval is not None:
            save_when.append(_policies.FixedIntervalPolicy(self.plan.interval))
        keep: list[Any] = [_policies.CustomSteps(sorted(self.plan.kept_steps))]
        keep.append(_policies.LatestN(max_to_keep))  # n=None preserves every checkpoint
        options = ocp.CheckpointManagerOptions(
            save_decision_policy=_policies.AnySavePolicy(save_when),
            preservation_policy=_policies.AnyPreservationPolicy(keep),
            enable_async_checkpointing=async_save,
            cleanup_tmp_directories=True,  # a save a crash interrupted is removed, never read
        )
        self._manager = ocp.CheckpointManager(self.directory, item_names=("state", "spec"), options=options)

    # --- saving ----------------------------------------------------------------------------------

    def should_save(self, step: int) -> bool:
        """Whether ``save(step, ...)`` would write (the plan's steps and the interval)."""
        return self.plan.should_save(step)

    def save(self, step: int, state: Any, *, force: bool = False) -> bool:
        """Saves ``state`` and the spec as checkpoint ``step`` if the plan says so (or ``force``).

        ``step`` is the number of updates ``state`` has applied (optax's ``count``).
        Returns whether a save was started.
        """
        args = ocp.args.Composite(
            state=ocp.args.StandardSave(state), spec=ocp.args.JsonSave(self.spec.to_dict())
        )
        return bool(self._manager.save(step, args=args, force=force))

    # --- restoring --------------------------------------------------------------------------------

    def saved_spec(self, step: int | None = None) -> WSDSpec:
        """The spec saved in checkpoint ``step`` (default: the latest)."""
        return self._read_spec(self._step_or_latest(step))

    def restore(
        self, abstract_state: Any, step: int | None = None, *, allow_spec_change: bool = False
    ) -> Any:
        """The state of checkpoint ``step`` (default: the latest), shaped like ``abstract_state``.

        ``abstract_state`` is a pytree of arrays or ``jax.ShapeDtypeStruct``s (``jax.eval_shape`` of
        the init function), so optax's state classes come back as they were. A checkpoint saved under
        another spec is refused unless ``allow_spec_change`` (see ``check_saved_spec``).
        """
        step = self._step_or_latest(step)
        check_saved_spec({"spec": self._read_spec(step).to_dict()}, self.spec, allow_spec_change)
        return self._read_state(abstract_state, step)

    def restore_latest_readable(
        self, abstract_state: Any, *, allow_spec_change: bool = False
    ) -> tuple[int, Any] | None:
        """(step, state) of the newest checkpoint that restores; None when there is none.

        A checkpoint that fails to read (truncated or deleted files) is skipped with a warning naming
        it and the error, and the next older one is tried: a damaged step is never returned. A spec
        mismatch is not skipped: it raises, as in ``restore``.
        """
        for step in sorted(self.all_steps(), reverse=True):
            try:
                spec = self._read_spec(step)
            except Exception as e:
                self._warn_unreadable(step, e)
                continue
            check_saved_spec({"spec": spec.to_dict()}, self.spec, allow_spec_change)
            try:
                return step, self._read_state(abstract_state, step)
            except Exception as e:
                self._warn_unreadable(step, e)
        return None

    # The two reads, for a step known to exist; each checkpoint's spec JSON is read once per restore.

    def _read_spec(self, step: int) -> WSDSpec:
        restored = self._manager.restore(step, args=ocp.args.Composite(spec=ocp.args.JsonRestore()))
        return WSDSpec.from_dict(restored["spec"])

    def _read_state(self, abstract_state: Any, step: int) -> Any:
        args = ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state))
        return self._manager.restore(step, args=args)["state"]

    def _warn_unreadable(self, step: int, error: Exception) -> None:
        _log.warning("checkpoint %s in %s is unreadable (%s: %s); skipped", step, self.directory,
                     type(error).__name__, error)  # fmt: skip

    def _step_or_latest(self, step: int | None) -> int:
        if step is None:
            latest = self._manager.latest_step()
            if latest is None:
                raise FileNotFoundError(f"no checkpoint in {self.directory}")
            return int(latest)
        if step not in self._manager.all_steps():
            raise FileNotFoundError(
                f"no checkpoint for step {step} in {self.directory}; saved steps: {list(self.all_steps())}"
            )
        return step

    # --- the rest of the manager ----------------------------------------------------------------

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return sorted(int(s) for s in self._manager.all_steps())

    def wait_until_finished(self) -> None:
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.close()

    def __enter__(self) -> WSDCheckpointManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[int]:
        return iter(self.all_steps())

    @classmethod
    def open(cls, directory: str | Path, **options: Any) -> WSDCheckpointManager:
        """A manager for an existing run, built from the spec saved in its latest checkpoint.

        This is how a restarted job rebuilds exactly the schedule it was running.
        """
        probe = ocp.CheckpointManager(
            epath.Path(directory).absolute(), item_names=("state", "spec"),
            options=ocp.CheckpointManagerOptions(read_only=True),
        )  # fmt: skip
        try:
            latest = probe.latest_step()
            if latest is None:
                raise FileNotFoundError(f"no checkpoint in {directory}")
            saved = probe.restore(latest, args=ocp.args.Composite(spec=ocp.args.JsonRestore()))
        finally:
            probe.close()
        return cls(directory, WSDSpec.from_dict(saved["spec"]), **options)
