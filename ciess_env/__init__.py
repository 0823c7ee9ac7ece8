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
]

#: Backbone part of an env id → backbone name of :func:`ciess_env.recommenders.make_backbone`.
BACKBONE_IDS: dict[str, str] = {"LightGCN": "lightgcn", "NGCF": "ngcf", "NCF": "ncf", "MF": "mf"}

#: Data set part of an env id → (data set name, paper λ). λ = 0.4 is the paper's best on ML-1M
#: and 0.2 on Yelp2018 (§5.4); ML-100K and the synthetic set are MovieLens-like, so 0.4.
DATASET_IDS: dict[str, tuple[str, float]] = {
    "ML1M": ("ml-1m", 0.4),
    "ML100K": ("ml-100k", 0.4),
    "Yelp2018": ("yelp2018", 0.2),
    "Synthetic": ("synthetic", 0.4),
}

#: Paper episode length T (§1.2); registered both as a kwarg and as the TimeLimit.
_MAX_EPISODE_STEPS = 10

#: Every registered id.
ENV_IDS: tuple[str, ...] = tuple(f"CIESS-{b}-{d}-v0" for b in BACKBONE_IDS for d in DATASET_IDS)


def _register_all() -> None:
    for b_id, backbone in BACKBONE_IDS.items():
        for d_id, (dataset, lam) in DATASET_IDS.items():
            env_id = f"CIESS-{b_id}-{d_id}-v0"
            if env_id in gymnasium.registry:  # re-import (importlib.reload, notebooks)
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


_register_all()

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
