"""The ``torch.distributed.checkpoint`` call a ``state_dict()`` serves, if any: what the container
needs to know of it to check a distributed save and load as ``load_state_dict`` checks one state.

DCP calls ``Stateful.state_dict()`` with no argument, on every rank, in ``dcp.save`` (to write what
it returns) and in ``dcp.load`` (whose result names exactly the keys to read: a key the checkpoint
lacks is DCP's error, one it holds beyond them is never read). So the container looks at the call it
serves, through the caller's frames:

* in ``dcp.save``, every rank of the save's process group is inside the same collective call, so the
  ranks can compare their states (``all_gather_object``) before anything is written;
* in ``dcp.load``, the checkpoint's metadata says which keys were saved under the container's key: the
  container names those, DCP reads them all, and ``load_state_dict`` judges the whole saved state
  with its own reasons (a count of companions or schedulers, a spec, ``min_lr``).

Where the call cannot be seen (DCP's internals changed, a planner that does not flatten), the
container behaves as before; a warning says what is not checked.
"""

from __future__ import annotations

import dataclasses
import sys
import warnings
from collections.abc import Mapping
from typing import Any

_SAVER = "torch.distributed.checkpoint.state_dict_saver"
_LOADER = "torch.distributed.checkpoint.state_dict_loader"


@dataclasses.dataclass(frozen=True)
class DCPCall:
    """A ``dcp.save`` or ``dcp.load`` in progress: its kind, process group (None: the default
    group), the state dict it was given, and (load) its storage reader."""

    kind: str
    process_group: Any
    state_dict: Mapping[str, Any] | None
    storage_reader: Any = None

    def key_of(self, obj: object) -> str | None:
        """The key under which ``obj`` was given to the call."""
        if not isinstance(self.state_dict, Mapping):
            return None
        return next((k for k, v in self.state_dict.items() if v is obj), None)

    def saved_under(self, key: str) -> dict[str, Any] | None:
        """What the checkpoint being loaded holds under ``key``, as a nested template of its saved
        keys (each value None, for DCP to fill in); None where the metadata does not say."""
        try:
            metadata = self.storage_reader.read_metadata()
            paths = metadata.planner_data
        except Exception as e:
            warnings.warn(f"the checkpoint's keys could not be read ({type(e).__name__}); loaded as named",
                          UserWarning, stacklevel=4)  # fmt: skip
            return None
        if not isinstance(paths, Mapping):
            return None
        template: dict[str, Any] = {}
        for path in paths.values():
            if isinstance(path, tuple) and len(path) > 1 and path[0] == key:
                _set(template, path[1:])
        return template


def current_call() -> DCPCall | None:
    """The DCP save or load whose ``state_dict()`` call is on the stack, if any."""
    frame = sys._getframe(1)
    while frame is not None:
        module, name = frame.f_globals.get("__name__"), frame.f_code.co_name
        if module == _SAVER and name in ("save", "async_save"):
            local = frame.f_locals
            return DCPCall("save", local.get("process_group"), local.get("state_dict"))
        if module == _LOADER and name == "load":
            local = frame.f_locals
            return DCPCall(
                "load", local.get("process_group"), local.get("state_dict"), local.get("storage_reader")
            )
        frame = frame.f_back  # type: ignore[assignment]
    return None


def _set(tree: Any, path: tuple[Any, ...]) -> None:
    """Puts a None leaf at ``path`` (str keys are dicts, int keys lists) of the nested ``tree``."""
    head, rest = path[0], path[1:]
    if isinstance(tree, list):
        while len(tree) <= head:
            tree.append(None)
    if not rest:
        tree[head] = None
        return
    current = tree[head] if isinstance(tree, list) else tree.get(head)
    if current is None:
        tree[head] = [] if isinstance(rest[0], int) else {}
    _set(tree[head], rest)
