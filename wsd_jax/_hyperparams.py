"""Reading the learning rate back from an ``optax.inject_hyperparams`` state, for logging."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

_INJECTED = (optax.InjectHyperparamsState, optax.InjectStatefulHyperparamsState)


def learning_rate_from_state(
    opt_state: Any, name: str = "learning_rate", *, schedule: Callable[[Any], Any] | None = None
) -> jax.Array:
    """The rate of the last applied update, from an optimizer state.

    With ``optax.inject_hyperparams`` the state holds the rate itself. Without it, give the
    ``schedule``: the rate is recomputed from the state's update count (the one
    ``optax.scale_by_schedule`` keeps, which ``optax.adamw(learning_rate=schedule)`` and the like
    use), correctly at count 0 whatever the count's integer type (Flax NNX's is uint32).

    Which step it belongs to: after ``n >= 1`` updates (``count == n``) the rate of update ``n - 1``,
    ``schedule(n - 1)``; right after ``init`` (``count == 0``) ``schedule(0)``, the rate the first
    update will use.

    Args:
      opt_state: an optimizer state, possibly nested (``optax.chain``, ``MultiSteps``, a Flax linen
        ``TrainState.opt_state`` or a Flax NNX ``nnx.Optimizer.opt_state``).
      name: the injected hyperparameter's name.
      schedule: the schedule the optimizer was built with, for states without ``inject_hyperparams``.

    Raises:
      ValueError: if no injected state (or, with ``schedule``, no schedule count), or more than one,
        is found.

    Examples:
      >>> import jax.numpy as jnp, optax
      >>> from wsd_jax import wsd_schedule
      >>> schedule = wsd_schedule(1e-3, total_steps=100, warmup_steps=10)
      >>> tx = optax.inject_hyperparams(optax.adamw, hyperparam_dtype=jnp.float32)(learning_rate=schedule)
      >>> float(learning_rate_from_state(tx.init({"w": jnp.zeros(3)})))
      0.0
      >>> plain = optax.adamw(schedule).init({"w": jnp.zeros(3)})
      >>> float(learning_rate_from_state(plain, schedule=schedule))
      0.0
    """
    injected = _find(opt_state, _INJECTED, lambda node: name in node.hyperparams)
    if len(injected) == 1:
        # [...] unwraps Flax NNX variables (nnx.Optimizer.opt_state) and is the identity on arrays.
        return jnp.asarray(injected[0].hyperparams[name][...])
    if schedule is None or injected:
        raise ValueError(
            f"expected exactly one optax.inject_hyperparams state holding {name!r} in opt_state, "
            f"found {len(injected)}; wrap the optimizer as optax.inject_hyperparams(optax.adamw)(...), "
            "or pass schedule= to recompute the rate from the update count"
        )
    counts = _find(opt_state, (optax.ScaleByScheduleState,), lambda node: True)
    if len(counts) != 1:
        raise ValueError(
            f"expected exactly one optax.scale_by_schedule state (the count of a schedule-driven "
            f"optimizer) in opt_state, found {len(counts)}"
        )
    return rate_of_last_update(schedule, counts[0].count[...])


def rate_of_last_update(schedule: Callable[[Any], Any], count: Any) -> jax.Array:
    """``schedule(count - 1)`` for ``count >= 1`` and ``schedule(0)`` at 0, with no wrap-around for an
    unsigned count (``count - 1`` of a uint32 0 is 2**32 - 1)."""
    count = jnp.asarray(count)
    return schedule(jnp.maximum(count, 1) - 1)


def _find(tree: Any, types: tuple[type, ...], keep: Callable[[Any], bool]) -> list[Any]:
    return [
        node
        for node in jax.tree_util.tree_leaves(tree, is_leaf=lambda x: isinstance(x, types))
        if isinstance(node, types) and keep(node)
    ]
