"""Data layer: the split interaction type, readers, named data sets, downloads, synthetic data."""

from ciess_env.data.datasets import (
    CANONICAL_STATS,
    DATASETS,
    DatasetStats,
    canonical_name,
    from_pairs,
    load_dataset,
    resolve_data_dir,
)
from ciess_env.data.download import REMOTE_FILES, RemoteFile, fetch, fetch_dataset
from ciess_env.data.interactions import InteractionData, Interactions, SplitName
from ciess_env.data.readers import read_lightgcn, read_ml1m_ratings, read_ml100k, read_table
from ciess_env.data.split import carve_validation, split_per_user
from ciess_env.data.synthetic import make_synthetic

__all__ = [
    "CANONICAL_STATS",
    "DATASETS",
    "REMOTE_FILES",
    "DatasetStats",
    "InteractionData",
    "Interactions",
    "RemoteFile",
    "SplitName",
    "canonical_name",
    "carve_validation",
    "fetch",
    "fetch_dataset",
    "from_pairs",
    "load_dataset",
    "make_synthetic",
    "read_lightgcn",
    "read_ml1m_ratings",
    "read_ml100k",
    "read_table",
    "resolve_data_dir",
    "split_per_user",
]
