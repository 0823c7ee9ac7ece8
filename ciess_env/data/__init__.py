"""Data layer: the split interaction type, readers, named data sets, downloads, synthetic data."""

from ciess_env.data.interactions import InteractionData, Interactions, SplitName

__all__ = ["InteractionData", "Interactions", "SplitName"]
