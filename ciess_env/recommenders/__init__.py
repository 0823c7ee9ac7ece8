"""Masked-embedding backbones, BPR training and pretraining (the "backbone" layer).

>>> from ciess_env.recommenders import make_backbone, paper_train_config, train_bpr
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ciess_env._lazy import lazy_exports

if TYPE_CHECKING:
    from ciess_env.config import TrainConfig
    from ciess_env.recommenders.base import Backbone, BPRLoss
    from ciess_env.recommenders.lightgcn import LightGCN
    from ciess_env.recommenders.mf import MF
    from ciess_env.recommenders.ncf import NCF
    from ciess_env.recommenders.ngcf import NGCF
    from ciess_env.recommenders.pretraining import (
        Converged,
        PretrainResult,
        pretrain,
        pretrain_cache_key,
        train_until_converged,
    )
    from ciess_env.recommenders.registry import (
        BACKBONE_SPECS,
        BACKBONES,
        BackboneSpec,
        backbone_spec,
        make_backbone,
        register_backbone,
    )
    from ciess_env.recommenders.sampling import BPRBatch, BPRSampler
    from ciess_env.recommenders.trainer import (
        BPRTrainer,
        TrainResult,
        paper_train_config,
        train_bpr,
    )

__all__ = [
    "BACKBONES",
    "BACKBONE_SPECS",
    "MF",
    "NCF",
    "NGCF",
    "BPRBatch",
    "BPRLoss",
    "BPRSampler",
    "BPRTrainer",
    "Backbone",
    "BackboneSpec",
    "Converged",
    "LightGCN",
    "PretrainResult",
    "TrainConfig",
    "TrainResult",
    "backbone_spec",
    "make_backbone",
    "paper_train_config",
    "pretrain",
    "pretrain_cache_key",
    "register_backbone",
    "train_bpr",
    "train_until_converged",
]

_EXPORTS = {
    "Backbone": "ciess_env.recommenders.base",
    "BPRLoss": "ciess_env.recommenders.base",
    "LightGCN": "ciess_env.recommenders.lightgcn",
    "MF": "ciess_env.recommenders.mf",
    "NCF": "ciess_env.recommenders.ncf",
    "NGCF": "ciess_env.recommenders.ngcf",
    "Converged": "ciess_env.recommenders.pretraining",
    "PretrainResult": "ciess_env.recommenders.pretraining",
    "pretrain": "ciess_env.recommenders.pretraining",
    "pretrain_cache_key": "ciess_env.recommenders.pretraining",
    "train_until_converged": "ciess_env.recommenders.pretraining",
    "BACKBONES": "ciess_env.recommenders.registry",
    "make_backbone": "ciess_env.recommenders.registry",
    "BACKBONE_SPECS": "ciess_env.recommenders.registry",
    "BackboneSpec": "ciess_env.recommenders.registry",
    "backbone_spec": "ciess_env.recommenders.registry",
    "register_backbone": "ciess_env.recommenders.registry",
    "BPRBatch": "ciess_env.recommenders.sampling",
    "BPRSampler": "ciess_env.recommenders.sampling",
    "BPRTrainer": "ciess_env.recommenders.trainer",
    "TrainConfig": "ciess_env.config",
    "TrainResult": "ciess_env.recommenders.trainer",
    "paper_train_config": "ciess_env.recommenders.trainer",
    "train_bpr": "ciess_env.recommenders.trainer",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
