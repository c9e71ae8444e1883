"""Reading one checkpoint's items with Orbax's handlers, every failure sorted into damage or the
caller's mistake: ``CheckpointIntegrityError`` (a step to skip) or ``ValueError`` (raised at once).

The manager (``wsd_jax._checkpoint``) decides what to read and verifies it; this module only reads.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import jax
import orbax.checkpoint as ocp
from etils import epath

from wsd_jax._integrity import CheckpointIntegrityError, Record, parse_record, short

INTEGRITY = "integrity"  # the item holding the integrity record (absent from checkpoints of 0.1)
_TOKEN = re.compile(r"\['((?:[^'\\]|\\.)*)'\]|\[(-?\d+)\]|\.(\w+)")


class StepReader:
    """Reads the items of a checkpoint folder's steps with Orbax's item handlers, each process its
    own share: no barrier of Orbax's is passed, so a process that fails never leaves the others
    waiting (the manager's ``Agreement`` then gives every process one verdict)."""

    def __init__(self, directory: epath.Path) -> None:
        self.directory = directory
        self._json = ocp.JsonCheckpointHandler()
        self._state = ocp.StandardCheckpointHandler()

    def json_items(self, step: int, *names: str) -> list[Any]:
        """The JSON items ``names`` of checkpoint ``step``; unreadable is damage."""
        values = []
        for name in names:
            try:
                with quiet_orbax():
                    values.append(self._json.restore(self.directory / str(step) / name))
            except Exception as e:
                raise CheckpointIntegrityError(
                    f"checkpoint {step}: its {name} item is unreadable ({short(e)})"
                ) from e
        return values

    def record(self, step: int) -> Record:
        """Checkpoint ``step``'s integrity record, parsed (damage raises ``CheckpointIntegrityError``)."""
        return parse_record(self.json_items(step, INTEGRITY)[0], step)

    def has_record(self, step: int) -> bool:
        """Whether checkpoint ``step`` was saved with an integrity record: its Orbax metadata lists the
        item (or, where the metadata names no items, its folder holds one). A checkpoint of 0.1 has
        none; a current one whose record folder was deleted still lists it, and is damaged."""
        folder = self.directory / str(step)
        try:
            metadata = json.loads((folder / "_CHECKPOINT_METADATA").read_text())
            handlers = metadata.get("item_handlers")
            if isinstance(handlers, dict):
                return INTEGRITY in handlers
        except (OSError, ValueError, AttributeError):
            pass  # no readable metadata: the folder decides
        return (folder / INTEGRITY).exists()

    def raw_state(self, target: Any, step: int) -> Any:
        """The state of checkpoint ``step`` restored onto ``target``, read errors as they are."""
        with quiet_orbax():
            return self._state.restore(
                self.directory / str(step) / "state", args=ocp.args.StandardRestore(target)
            )

    def state(self, target: Any, step: int) -> Any:
        """The state of checkpoint ``step`` restored onto ``target`` (this process's shards). A
        failure is damage, but for a target that gives no sharding for arrays saved sharded over
        devices this process does not have: that is the caller's mistake (``ValueError``)."""
        try:
            with quiet_orbax():
                return self._state.restore(
                    self.directory / str(step) / "state", args=ocp.args.StandardRestore(target)
                )
        except Exception as e:
            if isinstance(e, ValueError) and "topology" in str(e).lower() and _unsharded(target):
                raise ValueError(
                    f"checkpoint {step} was saved sharded over devices this job does not have, and the "
                    "restore target gives no sharding to restore onto: give each array leaf of the target "
                    "one, e.g. jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, "
                    "sharding=s), jax.eval_shape(init), shardings) with a NamedSharding per leaf of this "
                    "job's mesh"
                ) from None
            raise CheckpointIntegrityError(f"checkpoint {step}: its state is unreadable ({short(e)})") from e

    def close(self) -> None:
        for handler in (self._json, self._state):
            closing = getattr(handler, "close", None)
            if closing is not None:
                closing()

    def saved_arrays_match(self, target: Any, step: int) -> bool:
        """Whether ``target`` has the structure, shapes and dtypes of the arrays Orbax saved in
        checkpoint ``step`` (by Orbax's own metadata, not the integrity record): where a record of an
        unsealed format disagrees with a target that matches the saved arrays, the record is damaged.
        False where the metadata cannot be read."""
        try:
            with quiet_orbax():
                metadata = ocp.StandardCheckpointHandler().metadata(self.directory / str(step) / "state")
        except Exception:
            return False
        tree = getattr(metadata, "tree", metadata)
        saved = {_tokens(p): leaf for p, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}
        wanted = {_tokens(p): leaf for p, leaf in jax.tree_util.tree_flatten_with_path(target)[0]}
        if set(saved) != set(wanted):
            return False
        for path, leaf in wanted.items():
            meta = saved[path]
            if type(meta).__name__ != "ArrayMetadata" or not hasattr(leaf, "shape"):
                continue  # a scalar, or a target leaf that states nothing
            if tuple(leaf.shape) != tuple(meta.shape) or (
                hasattr(leaf, "dtype") and str(leaf.dtype) != str(meta.dtype)
            ):
                return False
        return True


def _unsharded(target: Any) -> bool:
    """Whether some array leaf of a restore target states no sharding (``jax.eval_shape``'s do not)."""
    return any(
        getattr(leaf, "sharding", None) is None
        for leaf in jax.tree_util.tree_leaves(target)
        if isinstance(leaf, jax.ShapeDtypeStruct)
    )


def _tokens(path: Any) -> tuple[str, ...]:
    """A tree path as its keys, whatever the container: ``['opt'][0].count`` (a named tuple) and
    ``['opt'][0]['count']`` (as Orbax's metadata holds it) are the same leaf."""
    return tuple(a or b or c for a, b, c in _TOKEN.findall(jax.tree_util.keystr(path)))


@contextlib.contextmanager
def quiet_orbax() -> Iterator[None]:
    """Silences Orbax's informational warnings (read-only opens, restores) for the block."""
    absl_logger = logging.getLogger("absl")
    level = absl_logger.level
    absl_logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        absl_logger.setLevel(level)
