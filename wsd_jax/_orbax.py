"""For a user's own ``orbax.checkpoint.CheckpointManager``: the spec as an item, the save plan as
Orbax policies. ``WSDCheckpointManager`` is built on the same functions.

Examples:
  >>> import tempfile, jax.numpy as jnp, orbax.checkpoint as ocp
  >>> from wsd_core import WSDSpec
  >>> spec = WSDSpec(1000, decay_steps=100)
  >>> options = ocp.CheckpointManagerOptions(**orbax_policies(spec, interval=250, max_to_keep=2))
  >>> with ocp.CheckpointManager(tempfile.mkdtemp(), options=options) as manager:
  ...     saved = manager.save(900, args=ocp.args.Composite(
  ...         state=ocp.args.StandardSave({"w": jnp.ones(2)}), spec=spec_save_args(spec)))
  ...     manager.wait_until_finished()
  ...     restored = manager.restore(900, args=ocp.args.Composite(spec=spec_restore_args()))
  >>> spec_from_restored(restored["spec"]) == spec
  True
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import orbax.checkpoint as ocp

from wsd_core import SavePlan, WSDSpec
from wsd_core.backend import check_choice, check_int

_policies = ocp.checkpoint_managers


def spec_save_args(spec: WSDSpec) -> Any:
    """The Orbax save args of the spec item (``JsonSave`` of ``spec.to_dict()``).

    Passing the spec itself to ``JsonSave`` is accepted by Orbax and then fails in its background
    thread; this checks the type at once.
    """
    if not isinstance(spec, WSDSpec):
        raise TypeError(f"spec must be a WSDSpec, got {type(spec).__name__}")
    return ocp.args.JsonSave(spec.to_dict())


def spec_restore_args() -> Any:
    """The Orbax restore args of the spec item; turn the result into a spec with ``spec_from_restored``."""
    return ocp.args.JsonRestore()


def spec_from_restored(data: Mapping[str, Any]) -> WSDSpec:
    """The (validated) spec from a restored spec item."""
    return WSDSpec.from_dict(data)


def orbax_policies(
    spec_or_plan: WSDSpec | SavePlan,
    *,
    interval: int | None = None,
    max_to_keep: int | None = 3,
    best_n: int | None = None,
    best_metric: str | Callable[[Mapping[str, Any]], float] | None = None,
    best_mode: str = "min",
) -> dict[str, Any]:
    """``save_decision_policy`` and ``preservation_policy`` for ``ocp.CheckpointManagerOptions``.

    Saves at the plan's steps (each pre-decay step and period end) and every ``interval``; keeps the
    plan's steps forever, the latest ``max_to_keep`` (None: all), and with ``best_n`` the best
    ``best_n`` by ``best_metric`` (a metric name, or a function of the saved metrics dict;
    ``best_mode`` ``"min"`` or ``"max"``). A policy only adds checkpoints to keep: the plan's steps
    are never dropped for a metric.
    """
    plan = spec_or_plan if isinstance(spec_or_plan, SavePlan) else SavePlan.for_spec(spec_or_plan, interval)
    if isinstance(spec_or_plan, SavePlan) and interval is not None:
        raise TypeError("interval is part of the SavePlan: give it to SavePlan.for_spec")
    if max_to_keep is not None:
        max_to_keep = check_int("max_to_keep", max_to_keep, minimum=1)
    save_when: list[Any] = [_policies.SpecificStepsPolicy(sorted(plan.kept_steps))]
    if plan.interval is not None:
        save_when.append(_policies.FixedIntervalPolicy(plan.interval))
    keep: list[Any] = [_policies.CustomSteps(sorted(plan.kept_steps)), _policies.LatestN(max_to_keep)]
    if best_n is not None:
        keep.append(_best_n(best_n, best_metric, best_mode))
    elif best_metric is not None:
        raise TypeError("best_metric needs best_n (how many of the best checkpoints to keep)")
    return {
        "save_decision_policy": _policies.AnySavePolicy(save_when),
        "preservation_policy": _policies.AnyPreservationPolicy(keep),
    }


def _best_n(n: Any, metric: Any, mode: str) -> Any:
    n = check_int("best_n", n, minimum=1)
    mode = check_choice("best_mode", mode, ("min", "max"))
    if isinstance(metric, str):
        name = metric
        get: Callable[[Mapping[str, Any]], float] = lambda metrics: float(metrics[name])
    elif callable(metric):
        get = metric
    else:
        raise TypeError(f"best_metric must be a metric name or a function of the metrics, got {metric!r}")
    # Orbax keeps the n checkpoints that sort last; reverse=True sorts descending (lowest last).
    # Checkpoints saved without metrics are left to the other policies (LatestN, the plan's steps).
    return _policies.BestN(
        get_metric_fn=get, reverse=mode == "min", n=n, keep_checkpoints_without_metrics=False
    )
