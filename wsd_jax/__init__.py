"""WSD learning-rate schedules for JAX and optax (``pip install 'wsd-schedule[jax]'``).

Checkpointing with Orbax (``WSDCheckpointManager``) needs the ``orbax`` extra as well and is imported
on first use, so the schedule works without it.

>>> import optax
>>> from wsd_jax import wsd_schedule
>>> tx = optax.adamw(learning_rate=wsd_schedule(3e-4, total_steps=10_000, warmup_steps=500))
"""

from typing import TYPE_CHECKING, Any

try:
    import jax as _jax  # noqa: F401
    import optax as _optax  # noqa: F401
except ImportError as _missing:
    raise ImportError(
        f"wsd_jax needs jax and optax ({_missing.name} is missing): pip install 'wsd-schedule[jax]'"
    ) from _missing

from wsd_core import Phase as Phase
from wsd_core import SavePlan as SavePlan
from wsd_core import WSDSpec as WSDSpec
from wsd_core import __version__ as __version__
from wsd_jax._hyperparams import learning_rate_from_state as learning_rate_from_state
from wsd_jax._hyperparams import rate_of_last_update as rate_of_last_update
from wsd_jax._integrity import CheckpointIntegrityError as CheckpointIntegrityError
from wsd_jax._lock import WriterLockError as WriterLockError
from wsd_jax._schedule import WSDCompanion as WSDCompanion
from wsd_jax._schedule import WSDSchedule as WSDSchedule
from wsd_jax._schedule import wsd_companion as wsd_companion
from wsd_jax._schedule import wsd_schedule as wsd_schedule

if TYPE_CHECKING:  # imported on first use (below); named here for type checkers and the API docs
    from wsd_jax._checkpoint import WSDCheckpointManager as WSDCheckpointManager
    from wsd_jax._orbax import orbax_policies as orbax_policies
    from wsd_jax._orbax import spec_from_restored as spec_from_restored
    from wsd_jax._orbax import spec_restore_args as spec_restore_args
    from wsd_jax._orbax import spec_save_args as spec_save_args

__all__ = [
    "CheckpointIntegrityError",
    "Phase",
    "SavePlan",
    "WSDCheckpointManager",
    "WSDCompanion",
    "WSDSchedule",
    "WSDSpec",
    "WriterLockError",
    "__version__",
    "learning_rate_from_state",
    "orbax_policies",
    "rate_of_last_update",
    "spec_from_restored",
    "spec_restore_args",
    "spec_save_args",
    "wsd_companion",
    "wsd_schedule",
]


_ORBAX_PARTS = (
    "WSDCheckpointManager",
    "orbax_policies",
    "spec_save_args",
    "spec_restore_args",
    "spec_from_restored",
)


def __getattr__(name: str) -> Any:
    """Imports the Orbax checkpoint manager on first use, naming the extra if Orbax is missing."""
    if name in _ORBAX_PARTS:
        try:
            from wsd_jax import _checkpoint, _orbax
        except ImportError as e:
            if e.name is None or not e.name.startswith(("orbax", "etils")):
                raise
            raise ImportError(f"{name} needs Orbax: pip install 'wsd-schedule[jax,orbax]'") from e
        return getattr(_checkpoint if name == "WSDCheckpointManager" else _orbax, name)
    raise AttributeError(f"module 'wsd_jax' has no attribute {name!r}")
