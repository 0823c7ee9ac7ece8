"""Data layer: the split interaction type, readers, named data sets, downloads, synthetic data."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ciess_env._lazy import lazy_exports

if TYPE_CHECKING:
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
    from ciess_env.data.specs import (
        DATASET_SPECS,
        DatasetSpec,
        Source,
        dataset_spec,
        register_dataset,
    )
    from ciess_env.data.split import carve_validation, split_per_user
    from ciess_env.data.synthetic import make_synthetic

__all__ = [
    "CANONICAL_STATS",
    "DATASETS",
    "DATASET_SPECS",
    "REMOTE_FILES",
    "DatasetSpec",
    "DatasetStats",
    "InteractionData",
    "Interactions",
    "RemoteFile",
    "Source",
    "SplitName",
    "canonical_name",
    "carve_validation",
    "dataset_spec",
    "fetch",
    "fetch_dataset",
    "from_pairs",
    "load_dataset",
    "make_synthetic",
    "read_lightgcn",
    "read_ml1m_ratings",
    "read_ml100k",
    "read_table",
    "register_dataset",
    "resolve_data_dir",
    "split_per_user",
]

_EXPORTS = {
    "CANONICAL_STATS": "ciess_env.data.datasets",
    "DATASETS": "ciess_env.data.datasets",
    "DatasetStats": "ciess_env.data.datasets",
    "canonical_name": "ciess_env.data.datasets",
    "from_pairs": "ciess_env.data.datasets",
    "load_dataset": "ciess_env.data.datasets",
    "resolve_data_dir": "ciess_env.data.datasets",
    "REMOTE_FILES": "ciess_env.data.download",
    "RemoteFile": "ciess_env.data.download",
    "fetch": "ciess_env.data.download",
    "fetch_dataset": "ciess_env.data.download",
    "InteractionData": "ciess_env.data.interactions",
    "Interactions": "ciess_env.data.interactions",
    "SplitName": "ciess_env.data.interactions",
    "read_lightgcn": "ciess_env.data.readers",
    "read_ml1m_ratings": "ciess_env.data.readers",
    "read_ml100k": "ciess_env.data.readers",
    "read_table": "ciess_env.data.readers",
    "DATASET_SPECS": "ciess_env.data.specs",
    "DatasetSpec": "ciess_env.data.specs",
    "Source": "ciess_env.data.specs",
    "dataset_spec": "ciess_env.data.specs",
    "register_dataset": "ciess_env.data.specs",
    "carve_validation": "ciess_env.data.split",
    "split_per_user": "ciess_env.data.split",
    "make_synthetic": "ciess_env.data.synthetic",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
