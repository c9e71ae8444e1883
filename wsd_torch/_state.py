"""What both torch schedulers save beside their step, and the check made when loading it."""

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
            "this scheduler state has no 'spec' entry: it was not saved by a WSD scheduler "
            "(expected the output of WSDLR.state_dict() or WSDDeviceLR.state_dict())"
        )
    saved = WSDSpec.from_dict(state["spec"])
    if saved != spec and not allow_spec_change:
        raise ValueError(
            f"the saved scheduler state was made with a different spec:\n  saved:   {saved}\n"
            f"  current: {spec}\nTo continue a trunk or branch a cooldown from it on purpose, build "
            "the scheduler with the new spec (see WSDSpec.extend / continue_from / branch_cooldown) "
            "and pass allow_spec_change=True."
        )
