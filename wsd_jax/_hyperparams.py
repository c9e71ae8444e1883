"""Reading the learning rate back from an ``optax.inject_hyperparams`` state, for logging."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

_INJECTED = (optax.InjectHyperparamsState, optax.InjectStatefulHyperparamsState)


def learning_rate_from_state(opt_state: Any, name: str = "learning_rate") -> jax.Array:
    """The rate held by the one ``inject_hyperparams`` state inside ``opt_state``.

    Which step it belongs to: ``inject_hyperparams`` stores the rate it *used* for the last applied
    update. After ``n >= 1`` updates (``count == n``) that is ``schedule(n - 1)``; right after
    ``init`` (``count == 0``) it is ``schedule(0)``, the rate the first update will use.

    Args:
      opt_state: an optimizer state, possibly nested (``optax.chain``, ``MultiSteps``, a Flax linen
        ``TrainState.opt_state`` or a Flax NNX ``nnx.Optimizer.opt_state``).
      name: the injected hyperparameter's name.

    Raises:
      ValueError: if no injected state, or more than one, holds ``name``.

    Example:
      >>> import jax.numpy as jnp, optax
      >>> from wsd_jax import wsd_schedule
      >>> tx = optax.inject_hyperparams(optax.adamw, hyperparam_dtype=jnp.float32)(
      ...     learning_rate=wsd_schedule(1e-3, total_steps=100, warmup_steps=10))
      >>> float(learning_rate_from_state(tx.init({"w": jnp.zeros(3)})))
      0.0
    """
    found = [
        node.hyperparams[name]
        for node in jax.tree_util.tree_leaves(opt_state, is_leaf=lambda x: isinstance(x, _INJECTED))
        if isinstance(node, _INJECTED) and name in node.hyperparams
    ]
    if len(found) != 1:
        raise ValueError(
            f"expected exactly one optax.inject_hyperparams state holding {name!r} in opt_state, "
            f"found {len(found)}; wrap the optimizer as optax.inject_hyperparams(optax.adamw)(...)"
        )
    # [...] unwraps Flax NNX variables (nnx.Optimizer.opt_state) and is the identity on arrays.
    return jnp.asarray(found[0][...])
