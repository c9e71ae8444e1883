"""The check made when a state saved with its spec (Orbax or torch) is loaded under a spec."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from wsd_core import WSDSpec


def check_saved_spec(state: Mapping[str, Any], spec: WSDSpec, allow_spec_change: bool) -> None:
    """Refuses a state saved under another spec unless the caller explicitly changes the spec.

    A mismatch is most often a mistake (the wrong config for a checkpoint) and would silently change
    the rate sequence; continuing a trunk or branching a cooldown is the deliberate case.
    """
    if "spec" not in state:
        raise ValueError(
            "this state has no 'spec' entry: it was not saved by this library (expected the output of "
            "WSDLR.state_dict(), WSDDeviceLR.state_dict() or a WSDCheckpointManager checkpoint)"
        )
    saved = WSDSpec.from_dict(state["spec"])
    if saved != spec and not allow_spec_change:
        raise ValueError(
            f"the saved state was made with a different spec:\n  saved:   {saved}\n"
            f"  current: {spec}\nTo continue a trunk or branch a cooldown from it on purpose, build "
            "the scheduler or checkpoint manager with the new spec (see WSDSpec.extend / continue_from / "
            "branch_cooldown) and pass allow_spec_change=True; a torch scheduler or container that a "
            "framework loads (HF Trainer, Lightning, DCP) takes on_spec_change='continue' at construction."
        )
