"""Backbone names → classes, and the one factory every other layer uses."""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import torch

from ciess_env.data.interactions import InteractionData, Interactions
from ciess_env.errors import CIESSError, InvalidArgumentError, suggest
from ciess_env.recommenders.base import Backbone
from ciess_env.recommenders.lightgcn import LightGCN
from ciess_env.recommenders.mf import MF
from ciess_env.recommenders.ncf import NCF
from ciess_env.recommenders.ngcf import NGCF

__all__ = ["BACKBONES", "check_hparams", "make_backbone"]

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


#: Arguments every backbone takes from the factory, not from ``hparams``.
_FACTORY_ARGS = frozenset({"self", "data", "d_max", "d_min", "generator", "device"})


def check_hparams(name: str, hparams: dict[str, Any] | None) -> dict[str, Any]:
    """Check backbone hyperparameters up front, so a bad one fails where it was given.

    Unknown keys are found from the backbone's signature; values are checked by building the
    backbone once on a two-user, two-item data set (milliseconds), so the rule is exactly the
    constructor's own.

    Args:
        name: A key of :data:`BACKBONES`.
        hparams: The hyperparameters (``None``: none).

    Returns:
        A copy of ``hparams``.

    Raises:
        InvalidArgumentError: naming ``backbone_kwargs``, the backbone and the bad key or value.
    """
    key = name.lower()
    if key not in BACKBONES:
        raise suggest(name, BACKBONES, what="backbone")
    hparams = dict(hparams or {})
    params = inspect.signature(BACKBONES[key].__init__).parameters
    known = sorted(set(params) - _FACTORY_ARGS)
    for k in hparams:
        if k not in known:
            msg = (
                f"`backbone_kwargs` has unknown key {k!r} for backbone {key!r}; "
                f"it takes {', '.join(known)}."
            )
            raise InvalidArgumentError(msg)
    pairs = Interactions.from_arrays(np.array([0, 1]), np.array([0, 1]))
    probe = InteractionData("probe", 2, 2, pairs, pairs, pairs, np.arange(2), np.arange(2))
    try:
        BACKBONES[key](probe, d_max=2, d_min=1, **hparams)
    except (CIESSError, TypeError, ValueError) as err:
        msg = f"`backbone_kwargs` are invalid for backbone {key!r}: {err}"
        raise InvalidArgumentError(msg) from err
    return hparams
