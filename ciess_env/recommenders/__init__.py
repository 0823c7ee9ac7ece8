"""Masked-embedding backbones, BPR training and pretraining (the "backbone" layer).

>>> from ciess_env.recommenders import make_backbone, paper_train_config, train_bpr
"""

from ciess_env.recommenders.base import Backbone, BPRLoss
from ciess_env.recommenders.lightgcn import LightGCN
from ciess_env.recommenders.mf import MF
from ciess_env.recommenders.ncf import NCF
from ciess_env.recommenders.ngcf import NGCF
from ciess_env.recommenders.pretrain import (
    Converged,
    PretrainResult,
    pretrain,
    pretrain_cache_key,
    train_until_converged,
)
from ciess_env.recommenders.registry import BACKBONES, make_backbone
from ciess_env.recommenders.sampling import BPRBatch, BPRSampler
from ciess_env.recommenders.trainer import (
    BPRTrainer,
    TrainConfig,
    TrainResult,
    paper_train_config,
    train_bpr,
)

__all__ = [
    "BACKBONES",
    "MF",
    "NCF",
    "NGCF",
    "BPRBatch",
    "BPRLoss",
    "BPRSampler",
    "BPRTrainer",
    "Backbone",
    "Converged",
    "LightGCN",
    "PretrainResult",
    "TrainConfig",
    "TrainResult",
    "make_backbone",
    "paper_train_config",
    "pretrain",
    "pretrain_cache_key",
    "train_bpr",
    "train_until_converged",
]
