"""WSD learning-rate schedules for JAX and optax.

>>> import optax
>>> from wsd_jax import wsd_schedule
>>> tx = optax.adamw(learning_rate=wsd_schedule(3e-4, total_steps=10_000, warmup_steps=500))
"""

from wsd_core import Phase as Phase
from wsd_core import SavePlan as SavePlan
from wsd_core import WSDSpec as WSDSpec
from wsd_jax._checkpoint import WSDCheckpointManager as WSDCheckpointManager
from wsd_jax._hyperparams import learning_rate_from_state as learning_rate_from_state
from wsd_jax._integrity import CheckpointIntegrityError as CheckpointIntegrityError
from wsd_jax._schedule import WSDSchedule as WSDSchedule
from wsd_jax._schedule import wsd_schedule as wsd_schedule

__all__ = [
    "CheckpointIntegrityError",
    "Phase",
    "SavePlan",
    "WSDCheckpointManager",
    "WSDSchedule",
    "WSDSpec",
    "learning_rate_from_state",
    "wsd_schedule",
]
