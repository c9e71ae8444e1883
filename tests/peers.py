"""The peers' own scheduler code, for the preset tests.

transformers and pytorch_accelerated are imported as installed (the ``peers`` extra). torchtitan,
Megatron-LM and OLMo-core cannot be imported here without heavy dependencies (datasets, wandb,
tensorboard; CUDA libraries), so their scheduler module is read from their released wheel, downloaded
without dependencies by ``make`` into ``.venv/peer-wheels``, and executed with its *unrelated*
imports stubbed (torchtitan's config base class and logger, Megatron's rank-aware logging helper,
OLMo-core's config classes and rank lookup). The scheduler code itself runs unmodified.
"""

from __future__ import annotations

import enum
import importlib.util
import logging
import sys
import types
import zipfile
from pathlib import Path
from typing import Any

WHEELS = Path(sys.prefix) / "peer-wheels"


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _wheel(prefix: str) -> Path | None:
    found = sorted(WHEELS.glob(f"{prefix}-*.whl")) if WHEELS.is_dir() else []
    return found[-1] if found else None


def _exec_from_wheel(wheel: Path, member: str, name: str, stubs: dict[str, dict[str, Any]]) -> Any:
    """Executes `member` of `wheel` as module `name`, with `stubs` in sys.modules meanwhile."""
    source = zipfile.ZipFile(wheel).read(member).decode()
    saved = {k: sys.modules.get(k) for k in [*stubs, name]}
    try:
        for mod_name, attrs in stubs.items():
            module = types.ModuleType(mod_name)
            module.__path__ = []  # every stub may act as a package
            module.__dict__.update(attrs)
            sys.modules[mod_name] = module
        module = types.ModuleType(name)
        module.__package__ = name.rpartition(".")[0]
        module.__file__ = f"{wheel}!{member}"
        sys.modules[name] = module
        exec(compile(source, module.__file__, "exec"), module.__dict__)
        return module
    finally:
        for k, old in saved.items():
            if old is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = old


def torchtitan_lr_scheduler() -> Any:
    wheel = _wheel("torchtitan")
    if wheel is None:
        return None

    class Configurable:
        class Config:
            pass

    return _exec_from_wheel(
        wheel,
        "torchtitan/components/optimizer/lr_scheduler.py",
        "torchtitan.components.optimizer.lr_scheduler",
        {
            "torchtitan": {},
            "torchtitan.config": {"Configurable": Configurable},
            "torchtitan.tools": {},
            "torchtitan.tools.logging": {"logger": logging.getLogger("torchtitan-stub")},
            "torchtitan.components": {},
            "torchtitan.components.optimizer": {},
            "torchtitan.components.optimizer.optimizer": {"OptimizersContainer": list},
        },
    )


def megatron_param_scheduler() -> Any:
    wheel = _wheel("megatron_core")
    if wheel is None:
        return None
    return _exec_from_wheel(
        wheel,
        "megatron/core/optimizer_param_scheduler.py",
        "megatron.core.optimizer_param_scheduler",
        {
            "megatron": {},
            "megatron.core": {},
            "megatron.core.utils": {"log_single_rank": lambda *args, **kwargs: None},
        },
    )


def olmo_core_scheduler() -> Any:
    """OLMo-core 3.0's ``olmo_core/optim/scheduler.py``, with stand-ins for the four modules it imports
    that are not about scheduling (config base classes, its error type, the rank lookup and two field
    names)."""
    wheel = _wheel("ai2_olmo_core")
    if wheel is None:
        return None

    class Config:
        pass

    class Registrable:
        @classmethod
        def register(cls, name: str) -> Any:
            return lambda registered: registered

    class OLMoConfigurationError(Exception):
        pass

    return _exec_from_wheel(
        wheel,
        "olmo_core/optim/scheduler.py",
        "olmo_core.optim.scheduler",
        {
            "olmo_core": {},
            "olmo_core.config": {"Config": Config, "Registrable": Registrable, "StrEnum": enum.StrEnum},
            "olmo_core.exceptions": {"OLMoConfigurationError": OLMoConfigurationError},
            "olmo_core.distributed": {},
            "olmo_core.distributed.utils": {"get_rank": lambda: 0},
            "olmo_core.optim": {},
            "olmo_core.optim.config": {"INITIAL_LR_FIELD": "initial_lr", "LR_FIELD": "lr"},
        },
    )


def levanter_optimizer_config() -> Any:
    """marin-levanter's ``levanter/optim/config.py`` (its ``OptimizerConfig.lr_scheduler`` and the
    ``LrSchedule`` classes), with stand-ins for what it imports that is not about schedules (draccus's
    registry, equinox, haliax, levanter's tracker and gradient utilities). The schedule code (optax's
    schedules joined by ``join_schedules``) runs unmodified, on the installed jax and optax."""
    wheel = _wheel("marin_levanter")
    if wheel is None or not installed("jax") or not installed("optax"):
        return None

    class ChoiceRegistry:
        @classmethod
        def register_subclass(cls, name: str) -> Any:
            return lambda registered: registered

    stand_in = lambda *args, **kwargs: None
    return _exec_from_wheel(
        wheel,
        "levanter/optim/config.py",
        "levanter.optim.config",
        {
            "draccus": {"ChoiceRegistry": ChoiceRegistry},
            "equinox": {"Module": object, "is_array": stand_in},
            "haliax": {"is_named_array": stand_in},
            "levanter": {},
            "levanter.tracker": {"log_hyperparameters": stand_in},
            "levanter.optim": {},
            "levanter.optim.clip_update_norm": {"ClipUpdateNormConfig": object},
            "levanter.optim.skipstep": {"SkipStepConfig": object},
            "levanter.optim.util": {
                "log_norm_passthrough": stand_in,
                "scan_aware_clip_by_block_rms": stand_in,
            },
            "levanter.utils": {},
            "levanter.utils.jax_utils": {"leaf_key_paths": stand_in},
        },
    )


def megatron_microbatches() -> Any:
    """Megatron-LM's ``num_microbatches_calculator.py`` (its batch-size ramp, ``rampup_batch_size``)."""
    wheel = _wheel("megatron_core")
    if wheel is None:
        return None
    return _exec_from_wheel(
        wheel,
        "megatron/core/num_microbatches_calculator.py",
        "megatron.core.num_microbatches_calculator",
        {"megatron": {}, "megatron.core": {}},
    )
