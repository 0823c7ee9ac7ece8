"""CIESS embedding-size search as Gymnasium environments.

Importing this package registers the ``CIESS-<Backbone>-<Dataset>-v0`` and ``-v1`` ids and
nothing else:
the entry points are strings, and the env classes (which import torch) load on first use, so
``import ciess_env`` builds no model and reads no data.

>>> import gymnasium as gym
>>> "CIESS-LightGCN-ML1M-v0" in gym.registry
True
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import gymnasium

from ciess_env._lazy import lazy_exports

if TYPE_CHECKING:
    from ciess_env.budget_log import BudgetEntry, BudgetLog
    from ciess_env.entity_vector import EntityVectorEnv
    from ciess_env.env import EmbeddingSizeEnv
    from ciess_env.structured_action import StructuredAction
    from ciess_env.vector import EntityVecEnv
    from ciess_env.wrappers import RecordBudgetLog

__all__ = [
    "BACKBONE_IDS",
    "DATASET_IDS",
    "ENV_IDS",
    "ENV_VERSIONS",
    "BudgetEntry",
    "BudgetLog",
    "EmbeddingSizeEnv",
    "EntityVecEnv",
    "EntityVectorEnv",
    "RecordBudgetLog",
    "StructuredAction",
    "__version__",
    "register_envs",
]

#: Paper episode length T (§1.2); registered both as a kwarg and as the TimeLimit.
_MAX_EPISODE_STEPS = 10

#: Id version → the env kwargs it fixes beyond the specs' defaults. A version never changes
#: once published (Gymnasium's rule): a change of what an id does gets a new version.
#: v0 is the paper's code (every step retrains a fresh model for the code's 2,000 batches);
#: v1 stops each step's retraining on validation (every 50 batches, patience 4), the design
#: that ranks masks most like their final-retrained quality on ML-1M at a lower cost
#: (``benchmarks/results/fidelity_ground_truth_ml-1m.md``).
ENV_VERSIONS: dict[str, dict[str, Any]] = {
    "v0": {},
    "v1": {"retrain": "converge:50/4"},
}

#: Backbone part of an env id → backbone name (from the backbone specs).
BACKBONE_IDS: dict[str, str] = {}
#: Data set part of an env id → (data set name, paper λ) (from the data set specs).
DATASET_IDS: dict[str, tuple[str, float]] = {}
#: Every registered id.
ENV_IDS: tuple[str, ...] = ()


def register_envs() -> tuple[str, ...]:
    """Register ``CIESS-<Backbone>-<Dataset>-<version>`` for every spec pair and version.

    The versions and what each fixes are :data:`ENV_VERSIONS`.

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
            for version, fixed in ENV_VERSIONS.items():
                env_id = f"CIESS-{b_id}-{d_id}-{version}"
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
                        **fixed,
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
    "EntityVectorEnv": "ciess_env.entity_vector",
    "RecordBudgetLog": "ciess_env.wrappers",
    "StructuredAction": "ciess_env.structured_action",
}


def _version() -> str:
    from ciess_env._meta import package_version

    return package_version()


# The heavy public names (they import torch) and ``__version__`` load on first access.
__getattr__, __dir__ = lazy_exports(__name__, _LAZY, globals(), computed={"__version__": _version})
