"""The check made when a state saved with its spec (Orbax or torch) is loaded under a spec."""

from __future__ import annotations

from wsd_core._spec import WSDSpec


def check_saved_spec(saved: WSDSpec, spec: WSDSpec, allow_spec_change: bool) -> None:
    """Refuses a state saved under another spec unless the caller explicitly changes the spec.

    ``saved`` is the spec the state was saved with (already parsed by the caller: an Orbax checkpoint's
    spec item, a torch scheduler state's ``spec`` entry). A mismatch is most often a mistake (the wrong
    config for a checkpoint) and would silently change the rate sequence; continuing a trunk or
    branching a cooldown is the deliberate case.
    """
    if saved != spec and not allow_spec_change:
        raise ValueError(
            f"the saved state was made with a different spec:\n  saved:   {saved}\n"
            f"  current: {spec}\nTo continue a trunk or branch a cooldown from it on purpose, build "
            "the scheduler or checkpoint manager with the new spec (see WSDSpec.extend / continue_from / "
            "branch_cooldown) and pass allow_spec_change=True; a torch scheduler or container that a "
            "framework loads (HF Trainer, Lightning, DCP) takes on_spec_change='continue' at construction."
        )
