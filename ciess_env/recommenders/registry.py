"""Backbone names → classes, and the one factory every other layer uses."""

from __future__ import annotations

from typing import Any

import torch

from ciess_env.data.interactions import InteractionData
from ciess_env.errors import suggest
from ciess_env.recommenders.base import Backbone
from ciess_env.recommenders.lightgcn import LightGCN
from ciess_env.recommenders.mf import MF
from ciess_env.recommenders.ncf import NCF
from ciess_env.recommenders.ngcf import NGCF

__all__ = ["BACKBONES", "make_backbone"]

#: Registered backbones by lowercase name (used in env ids, configs and the CLI).
BACKBONES: dict[str, type[Backbone]] = {
    "lightgcn": LightGCN,
    "mf": MF,
    "ncf": NCF,
    "ngcf": NGCF,
}


def make_backbone(
    name: str,
    data: InteractionData,
    *,
    d_max: int = 128,
    d_min: int = 1,
    seed: int = 0,
    device: torch.device | str = "cpu",
    **hparams: Any,
) -> Backbone:
    """Build backbone ``name`` for ``data`` with a seeded initialisation, all sizes ``d_max``.

    The initial weights are drawn on the CPU from a ``torch.Generator`` seeded with ``seed`` and
    then moved to ``device``, so the same seed gives the same initial model on every device and
    the global torch RNG is never touched.

    Args:
        name: A key of :data:`BACKBONES` (case-insensitive).
        data: The data set; graph backbones build their adjacency from its training split.
        d_max: Table width and largest size (paper: 128).
        d_min: Smallest size (paper: 1).
        seed: Seed of the initialisation.
        device: Torch device of the model.
        **hparams: Backbone-specific keyword arguments (e.g. ``n_layers=2``, ``l2=1e-3``).

    Returns:
        The model, in training mode.

    Raises:
        UnknownNameError: (a ``ValueError``) for an unknown name; the message lists the
            valid names and suggests the closest.
        TypeError: for a keyword the backbone does not take.
    """
    key = name.lower()
    if key not in BACKBONES:
        raise suggest(name, BACKBONES, what="backbone")
    generator = torch.Generator().manual_seed(int(seed))
    return BACKBONES[key](
        data, d_max=d_max, d_min=d_min, generator=generator, device=device, **hparams
    )
