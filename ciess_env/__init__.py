"""CIESS embedding-size search as Gymnasium environments.

Importing this package registers the ``CIESS-<Backbone>-<Dataset>-v0`` ids and nothing else:
the entry points are strings, and the env classes (which import torch) load on first use, so
``import ciess_env`` builds no model and reads no data.

>>> import gymnasium as gym
>>> "CIESS-LightGCN-ML1M-v0" in gym.registry
True
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

import gymnasium

if TYPE_CHECKING:
    from ciess_env.budget_log import BudgetEntry, BudgetLog
    from ciess_env.env import EmbeddingSizeEnv
    from ciess_env.vector import EntityVecEnv
    from ciess_env.wrappers import RecordBudgetLog

__all__ = [
    "BACKBONE_IDS",
    "DATASET_IDS",
    "ENV_IDS",
    "BudgetEntry",
    "BudgetLog",
    "EmbeddingSizeEnv",
    "EntityVecEnv",
    "RecordBudgetLog",
    "__version__",
    "register_envs",
]

#: Paper episode length T (§1.2); registered both as a kwarg and as the TimeLimit.
_MAX_EPISODE_STEPS = 10

#: Backbone part of an env id → backbone name (from the backbone specs).
BACKBONE_IDS: dict[str, str] = {}
#: Data set part of an env id → (data set name, paper λ) (from the data set specs).
DATASET_IDS: dict[str, tuple[str, float]] = {}
#: Every registered id.
ENV_IDS: tuple[str, ...] = ()


def register_envs() -> tuple[str, ...]:
    """Register ``CIESS-<Backbone>-<Dataset>-v0`` for every backbone × data set spec.

    Called on import for the built-in specs; call it again after
    :func:`~ciess_env.recommenders.register_backbone` or
    :func:`~ciess_env.data.register_dataset` to get the new ids. Ids already registered are
    kept as they are (re-imports, notebooks).

    Returns:
        Every CIESS id now registered (also :data:`ENV_IDS`).
    """
    global ENV_IDS
    from ciess_env.data.specs import DATASET_SPECS
    from ciess_env.recommenders.registry import BACKBONE_SPECS

    BACKBONE_IDS.update({b.env_name: b.name for b in BACKBONE_SPECS.values()})
    DATASET_IDS.update({d.env_name: (d.name, d.lam) for d in DATASET_SPECS.values()})
    ids = []
    for b_id, backbone in BACKBONE_IDS.items():
        for d_id, (dataset, lam) in DATASET_IDS.items():
            env_id = f"CIESS-{b_id}-{d_id}-v0"
            ids.append(env_id)
            if env_id in gymnasium.registry:
                continue
            gymnasium.register(
                id=env_id,
                entry_point="ciess_env.env:EmbeddingSizeEnv",
                max_episode_steps=_MAX_EPISODE_STEPS,
                kwargs={
                    "dataset": dataset,
                    "backbone": backbone,
                    "lam": lam,
                    "d_max": 128,
                    "max_episode_steps": _MAX_EPISODE_STEPS,
                },
            )
    ENV_IDS = tuple(ids)
    return ENV_IDS


register_envs()

_LAZY = {
    "BudgetEntry": "ciess_env.budget_log",
    "BudgetLog": "ciess_env.budget_log",
    "EmbeddingSizeEnv": "ciess_env.env",
    "EntityVecEnv": "ciess_env.vector",
    "RecordBudgetLog": "ciess_env.wrappers",
}


def __getattr__(name: str) -> Any:
    """Load the heavy public names (they import torch) and ``__version__`` on first access."""
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("ciess-env")
        except PackageNotFoundError:  # running from a source tree that was never installed
            return "0+unknown"
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    msg = f"module 'ciess_env' has no attribute {name!r}"
    raise AttributeError(msg)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
