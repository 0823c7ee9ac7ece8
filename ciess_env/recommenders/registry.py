"""One :class:`BackboneSpec` per backbone, and the one factory every other layer uses.

Every backbone table of the package derives from the specs: the classes (:data:`BACKBONES`),
the paper's per-step schedules (``paper_train_config``), the synthetic schedules of the env and
the env ids (``ciess_env.register_envs``). Adding a backbone is its module plus its spec
(:func:`register_backbone`). The built-in specs name their classes as ``"module:Class"``
strings, so that reading the registry (as ``import ciess_env`` does) imports no torch.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ciess_env.data.interactions import InteractionData, Interactions
from ciess_env.errors import CIESSError, InvalidArgumentError, suggest

if TYPE_CHECKING:
    import torch

    from ciess_env.recommenders.base import Backbone

__all__ = [
    "BACKBONES",
    "BACKBONE_SPECS",
    "BackboneSpec",
    "backbone_spec",
    "check_hparams",
    "make_backbone",
    "register_backbone",
]


@dataclass(frozen=True)
class BackboneSpec:
    """Everything the package knows about one backbone.

    Attributes:
        name: Lowercase key (``make_backbone(name)``, configs, the CLI).
        cls: The :class:`~ciess_env.recommenders.base.Backbone` subclass, or its
            ``"module:Class"`` path (imported on first use).
        env_name: The backbone part of env ids, ``CIESS-<env_name>-<Dataset>-<version>``.
        paper_batches: Batches of one scratch step in the reference code on ML-1M-sized data.
        paper_batches_large: The same on the larger data sets (``DatasetSpec.large``: Yelp2018).
        decay_batches: Batches between learning-rate decays (× 0.9).
        lr_floor: Smallest learning rate.
        synthetic_batches: Batches of one step on the synthetic data set (batches of 2,048),
            chosen so that a step stays short on two CPU cores
            (``benchmarks/results/env.md``).
    """

    name: str
    cls: type[Backbone] | str
    env_name: str
    paper_batches: int
    paper_batches_large: int
    decay_batches: int
    lr_floor: float = 1e-3
    synthetic_batches: int = 150

    def __post_init__(self) -> None:
        if self.name != self.name.lower() or not self.env_name.isalnum():
            msg = (
                "`name` must be lowercase and `env_name` alphanumeric (it is part of an env "
                f"id), got name={self.name!r}, env_name={self.env_name!r}."
            )
            raise InvalidArgumentError(msg)

    def load(self) -> type[Backbone]:
        """The backbone class (imported here when :attr:`cls` is a path)."""
        if not isinstance(self.cls, str):
            return self.cls
        module, _, attr = self.cls.partition(":")
        return getattr(importlib.import_module(module), attr)


#: Every registered backbone by name.
BACKBONE_SPECS: dict[str, BackboneSpec] = {}


class _Classes(Mapping[str, "type[Backbone]"]):
    """A live, read-only view name → class of :data:`BACKBONE_SPECS`."""

    def __getitem__(self, name: str) -> type[Backbone]:
        return BACKBONE_SPECS[name].load()

    def __iter__(self) -> Iterator[str]:
        return iter(BACKBONE_SPECS)

    def __len__(self) -> int:
        return len(BACKBONE_SPECS)

    def __repr__(self) -> str:
        return f"BACKBONES({sorted(BACKBONE_SPECS)})"


#: Registered backbone classes by lowercase name (used in env ids, configs and the CLI).
BACKBONES: Mapping[str, type[Backbone]] = _Classes()


def register_backbone(spec: BackboneSpec, *, replace: bool = False) -> BackboneSpec:
    """Register ``spec``; return it.

    Raises:
        ValueError: if the name is taken (pass ``replace=True`` to re-register).
    """
    if spec.name in BACKBONE_SPECS and not replace:
        msg = f"backbone {spec.name!r} is already registered; pass replace=True to replace it."
        raise InvalidArgumentError(msg)
    BACKBONE_SPECS[spec.name] = spec
    return spec


# The reference code's per-step budgets (paper §8): LightGCN 2,000 batches (Yelp2018 4,000),
# decay every 200; NGCF 3,000 (5,000), every 100; NCF 1,500 (3,000), every 50 with floor 1e-4.
# MF is not in the paper and uses LightGCN's.
for _spec in (
    BackboneSpec("lightgcn", "ciess_env.recommenders.lightgcn:LightGCN", "LightGCN",
                 2000, 4000, 200, synthetic_batches=150),
    BackboneSpec("ngcf", "ciess_env.recommenders.ngcf:NGCF", "NGCF",
                 3000, 5000, 100, synthetic_batches=30),
    BackboneSpec("ncf", "ciess_env.recommenders.ncf:NCF", "NCF",
                 1500, 3000, 50, lr_floor=1e-4, synthetic_batches=60),
    BackboneSpec("mf", "ciess_env.recommenders.mf:MF", "MF",
                 2000, 4000, 200, synthetic_batches=150),
):  # fmt: skip
    register_backbone(_spec)
del _spec


def backbone_spec(name: str) -> BackboneSpec:
    """The spec of backbone ``name`` (case-insensitive).

    Raises:
        UnknownNameError: (a ``ValueError``) naming the valid backbones.
    """
    key = name.lower()
    if key not in BACKBONE_SPECS:
        raise suggest(name, BACKBONE_SPECS, what="backbone")
    return BACKBONE_SPECS[key]


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
    import torch

    cls = backbone_spec(name).load()
    generator = torch.Generator().manual_seed(int(seed))
    return cls(data, d_max=d_max, d_min=d_min, generator=generator, device=device, **hparams)


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
