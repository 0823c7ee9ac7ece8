"""MagPrune — per-table magnitude pruning of a trained full-width model (Tran et al. 2024).

The lightweight-embedding benchmark of Tran et al. (2024, ``chenxing1999/recsys-benchmark``)
found that plain magnitude pruning of a trained table beats many purpose-built compressors.
Its ``prune(state, p, min_item)``:

1. treats each embedding table on its own (the threshold is **per table**, not global);
2. in every row, protects the ``min_item`` entries of largest ``|w|``;
3. zeroes the smallest entries of the table until the fraction ``p`` is gone.

``min_item`` is chosen on validation NDCG@20 over ``[0, ⌊d_max · (1 − p)⌋]`` (the most that
can be protected while meeting the budget) by a peak search (``"binary"``, the benchmark's
LightGCN default), by trying every value (``"all"``), or fixed (``"none"`` = 0, the benchmark's
NeuMF default, or a number). The benchmark then scores the pruned checkpoint on test, with no
retraining: :func:`published_result` does that here. :func:`agents.experiments.selective.
retrain_pruned` retrains the same elementwise mask through the package's final retraining, as
every other row of a comparison ("magprune-retrain").

Adapted to this package (``docs/baselines.md`` lists every departure):

* The budget is ours, ``⌊(1 − c) · d_max · n⌋`` kept entries per table (the cap of
  :func:`agents.baselines.kept_budget`), so each table — and hence the whole — is at least
  as sparse as ``c``; the benchmark prunes ``⌊numel · p⌋`` entries, which may keep one more.
* Only the user and item tables are pruned (the benchmark's LightGCN script prunes every 2-D
  tensor, which for LightGCN are the same two; NGCF's GNN weights stay dense here).
* NCF keeps one mask per side for its two towers (the package's elementwise masks are per
  side): an entry's magnitude is the L2 norm of its GMF and MLP values, and a kept entry keeps
  both. The benchmark prunes the four NeuMF tables separately.
* The trained table is the package's full-size model (BPR, early stopping on validation;
  :func:`ciess_env.recommenders.pretraining.pretrain`, cached) trained with the run's seed, not
  the benchmark's SGL-WA checkpoint.

Sparsity is counted from non-zeros like PEP's (:class:`MagPruneMask` is a
:class:`~agents.pep.PEPMask`: the same accounting, the same CSR index bytes, the same
"as-prefix" projection).
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from torch.nn.utils import parametrize

from agents.pep import PEPMask
from agents.protocol import BudgetCandidates, Proposal
from ciess_env.budget import kept_budget, sparsity_of_kept
from ciess_env.data import InteractionData
from ciess_env.errors import InvalidArgumentError, suggest
from ciess_env.metrics import evaluate
from ciess_env.recommenders import Backbone, make_backbone
from ciess_env.retrain import BudgetResult

if TYPE_CHECKING:
    import gymnasium as gym

    from ciess_env.env import EmbeddingSizeEnv

__all__ = [
    "MIN_ITEM_MODES",
    "MagPruneConfig",
    "MagPruneMask",
    "config_from_kwargs",
    "magnitude_scores",
    "magprune",
    "magprune_from_env",
    "magprune_masks",
    "prune_table",
    "published_proposal",
    "published_result",
    "trained_full_model",
]

logger = logging.getLogger(__name__)

MinItemMode = Literal["binary", "all", "none"]
#: How ``min_item`` is chosen: peak search, every value, or 0 (an int fixes it).
MIN_ITEM_MODES: tuple[str, ...] = ("binary", "all", "none")


@dataclass(frozen=True)
class MagPruneConfig:
    """Settings of MagPrune.

    Attributes:
        min_item: ``"binary"`` (the benchmark's peak search on validation, default),
            ``"all"`` (every value in range), ``"none"`` (0), or a whole number ``>= 0``.
        metric: Validation metric that chooses ``min_item``: ``"ndcg@K"`` or ``"recall@K"``
            (the benchmark: NDCG@20).
    """

    min_item: int | MinItemMode = "binary"
    metric: str = "ndcg@20"

    def __post_init__(self) -> None:
        m = self.min_item
        is_int = isinstance(m, int | np.integer) and not isinstance(m, bool)
        if not (is_int and m >= 0) and m not in MIN_ITEM_MODES:
            msg = (
                f"`min_item` must be one of {list(MIN_ITEM_MODES)} or a whole number >= 0, "
                f"got {m!r}."
            )
            raise InvalidArgumentError(msg)
        _metric_reader(self.metric)  # refuses a bad name now, not after a model is trained


def config_from_kwargs(cls: type, kwargs: dict[str, Any], what: str) -> Any:
    """``cls(**kwargs)`` for a settings dataclass, naming an unknown key and the closest one."""
    known = {f.name for f in fields(cls)}
    for key in kwargs:
        if key not in known:
            raise suggest(key, known, what=f"{what} setting")
    return cls(**kwargs)


def _metric_reader(metric: str) -> Callable:
    name, _, k = str(metric).partition("@")
    if name not in ("ndcg", "recall") or not k.isdigit() or int(k) < 1:
        msg = f"`metric` must read 'ndcg@K' or 'recall@K' (e.g. 'ndcg@20'), got {metric!r}."
        raise InvalidArgumentError(msg)
    return lambda ev: float(getattr(ev, name)(int(k)))


@dataclass(frozen=True)
class MagPruneMask(PEPMask):
    """MagPrune's kept entries for one budget (a :class:`~agents.pep.PEPMask`).

    ``reached_at_batch`` is ``None`` (no training) and ``threshold_sparsity`` the sparsity of
    the cut.

    Attributes:
        min_item: The protected entries per row that were chosen.
        validation_score: The pruned model's validation metric at that ``min_item``.
        tried: Every ``min_item`` tried → its validation metric.
        published: The pruned trained model's own test row (:func:`published_result`), where
            :func:`magprune_masks` computed it.
    """

    min_item: int = 0
    validation_score: float = math.nan
    tried: dict[int, float] = field(default_factory=dict)
    published: BudgetResult | None = field(default=None, compare=False)


def magnitude_scores(model: Backbone) -> tuple[torch.Tensor, torch.Tensor]:
    """Per side, the (n, d_max) magnitude of every entry: ``|w|``, or the L2 norm over towers.

    The raw weights are read (any table parametrization, e.g. an elementwise mask, is ignored).
    """
    out = []
    for side in ("user", "item"):
        tables = [_raw(model, name).detach().float() for name in model.masked_tables[side]]
        out.append(torch.stack([t.square() for t in tables]).sum(0).sqrt())
    return out[0], out[1]


def _raw(model: Backbone, name: str) -> torch.Tensor:
    if parametrize.is_parametrized(model, name):
        return getattr(model.parametrizations, name).original
    return getattr(model, name)


def _has_parametrization(model: Backbone) -> bool:
    names = [n for side in model.masked_tables.values() for n in side]
    return any(parametrize.is_parametrized(model, n) for n in names)


def prune_table(scores: torch.Tensor, c: float, min_item: int = 0) -> torch.Tensor:
    """Boolean (n, d) mask of the kept entries of one table at sparsity ``c``.

    Keeps the ``⌊(1 − c) · n · d⌋`` entries of largest score, counting the ``min_item`` largest
    of every row as infinitely large (protected). Ties go to the lower flat index, so the mask
    is a deterministic function of the scores.

    Raises:
        InvalidArgumentError: for a ``c`` outside [0, 1), a non-2-D or non-finite ``scores``,
            or a ``min_item`` that cannot be protected within the budget.
    """
    if scores.ndim != 2:
        msg = f"`scores` must be a 2-D (rows, dims) tensor, got shape {tuple(scores.shape)}."
        raise InvalidArgumentError(msg)
    n, d = scores.shape
    keep = kept_budget(c, n, d)
    limit = max_min_item(c, d)
    if not (isinstance(min_item, int | np.integer) and 0 <= min_item <= limit):
        msg = (
            f"`min_item` must be a whole number in [0, {limit}] at sparsity {c} with {d} "
            f"columns (⌊d · (1 − c)⌋: more protected entries than the budget keeps), "
            f"got {min_item!r}."
        )
        raise InvalidArgumentError(msg)
    if not bool(torch.isfinite(scores).all()):
        msg = "`scores` must be finite; the trained table holds NaN or inf (training diverged)."
        raise InvalidArgumentError(msg)
    key = scores.detach().float().clone()
    if min_item > 0:
        top = torch.topk(key, int(min_item), dim=1).indices
        key.scatter_(1, top, math.inf)
    flat = torch.zeros(n * d, dtype=torch.bool, device=key.device)
    if keep > 0:
        order = torch.argsort(key.flatten(), descending=True, stable=True)
        flat[order[:keep]] = True
    return flat.view(n, d)


def max_min_item(c: float, d: int) -> int:
    """The largest ``min_item`` the budget allows: ``⌊d · (1 − c)⌋``."""
    return kept_budget(c, 1, d)


def _peak_search(score: Callable[[int], float], top: int) -> int:
    """The benchmark's ``bin_search``: a peak of ``score`` over ``0..top`` by bisection.

    ``v[i] = score(i − 1)`` with ``v[0] = v[top + 2] = −∞``; a midpoint worse than
    ``score(0)`` moves left, a rising slope right, a falling one left, anything else is the
    peak. Falls back to 0 like the original (which returns index 1, i.e. ``min_item = 0``).
    """
    v: dict[int, float] = {0: -math.inf, top + 2: -math.inf}

    def at(i: int) -> float:
        if i not in v:
            v[i] = score(i - 1)
        return v[i]

    left, right = 1, top + 1
    while left <= right:
        mid = (left + right) // 2
        if at(1) > at(mid):
            right = mid - 1
            continue
        lo, here, hi = at(mid - 1), at(mid), at(mid + 1)
        if lo < here < hi:
            left = mid + 1
        elif lo > here > hi:
            right = mid - 1
        else:
            return mid - 1
    return 0


def magprune(
    model: Backbone,
    data: InteractionData,
    budgets: Sequence[float],
    config: MagPruneConfig | None = None,
) -> list[MagPruneMask]:
    """Prune ``model``'s trained user and item tables to each budget (no training).

    Args:
        model: A trained full-width backbone (its tables are read, never changed).
        data: The data set (validation chooses ``min_item``).
        budgets: Target sparsities c in [0, 1).
        config: MagPrune settings.

    Returns:
        One :class:`MagPruneMask` per budget, in the order of ``budgets``.

    Raises:
        InvalidArgumentError: for an empty ``budgets``, a budget outside [0, 1), a fixed
            ``min_item`` too large for a budget, or a model of another data set's shape.
    """
    config = config or MagPruneConfig()
    budgets = [float(c) for c in budgets]
    if not budgets:
        msg = "`budgets` must hold at least one target sparsity, e.g. [0.8, 0.9, 0.95]."
        raise InvalidArgumentError(msg)
    for c in budgets:
        kept_budget(c, 1, 1)  # one clear error for a budget outside [0, 1)
    if (model.n_users, model.n_items) != (data.n_users, data.n_items):
        msg = (
            f"`model` ({model.n_users} users, {model.n_items} items) is not a model of `data` "
            f"({data.n_users} users, {data.n_items} items)."
        )
        raise InvalidArgumentError(msg)
    read = _metric_reader(config.metric)
    if model.element_masks() is not None or _has_parametrization(model):
        msg = "`model` must be a plain trained model; clear its table parametrizations first."
        raise InvalidArgumentError(msg)
    users, items = magnitude_scores(model)
    out = []
    for c in budgets:
        cache: dict[int, tuple[torch.Tensor, torch.Tensor, float]] = {}

        def score(k: int, c: float = c, cache: dict = cache) -> float:
            if k not in cache:
                um, im = prune_table(users, c, k), prune_table(items, c, k)
                with _masked(model, um, im) as probe:
                    cache[k] = (um, im, read(evaluate(probe, data, "validation")))
                logger.info("MagPrune c=%.2f min_item=%d: %.4f", c, k, cache[k][2])
            return cache[k][2]

        top = max_min_item(c, model.d_max)
        if isinstance(config.min_item, str):
            if config.min_item == "binary":
                best = _peak_search(score, top)
            elif config.min_item == "all":
                values = [score(k) for k in range(top + 1)]
                best = int(np.argmax(values))  # first of equal maxima
            else:
                best = 0
        else:
            best = int(config.min_item)
            if best > top:
                prune_table(users, c, best)  # raises the range error
        value = score(best)
        um, im, _ = cache[best]
        u, i = um.cpu().numpy(), im.cpu().numpy()
        sparsity = sparsity_of_kept(int(u.sum() + i.sum()), u.shape[0] + i.shape[0], u.shape[1])
        out.append(
            MagPruneMask(
                c, u, i, None, sparsity, model.d_min, min_item=best, validation_score=value,
                tried={k: v[2] for k, v in sorted(cache.items())},
            )
        )  # fmt: skip
    return out


@contextlib.contextmanager
def _masked(model: Backbone, user_mask, item_mask) -> Iterator[Backbone]:
    """``model`` with elementwise masks set, in eval mode; the masks are removed afterwards.

    Graph backbones hold a sparse adjacency that cannot be deep-copied, so the masks go on the
    model itself; its raw weights are never changed.
    """
    model.set_element_masks(user_mask, item_mask)
    try:
        yield model.eval()
    finally:
        model.clear_parametrizations()


def published_result(model: Backbone, mask: PEPMask, data: InteractionData) -> BudgetResult:
    """The benchmark's protocol: the trained model with ``mask`` applied, scored on test.

    No retraining (``batches = 0``); ``validation_quality`` is the pruned model's validation
    mean user quality, so the row is comparable with the retrained ones.
    """
    with _masked(model, mask.user_mask, mask.item_mask) as probe:
        val = evaluate(probe, data, "validation")
        test = evaluate(probe, data, "test")
    return BudgetResult(
        budget=float(mask.budget),
        sparsity=float(mask.sparsity),
        candidates=max(1, len(getattr(mask, "tried", {}) or {})),
        validation_quality=float(val.mean_user_quality),
        batches=0,
        recall_5=test.recall(5),
        recall_20=test.recall(20),
        ndcg_5=test.ndcg(5),
        ndcg_20=test.ndcg(20),
    )


def trained_full_model(
    env: EmbeddingSizeEnv, *, seed: int | None = None, nested: bool = False
) -> Backbone:
    """The env's full-size model trained as the env pretrains it, but with seed ``seed``.

    Same schedule, early stopping and cache (:func:`ciess_env.recommenders.pretraining.
    pretrain`), so ``seed = pretrain_seed`` loads the env's own model and other seeds are
    trained once and cached. ``nested=True`` gives the nested-prefix (random size per entity
    and batch) model, OptEmbed's supernet.
    """
    from ciess_env.recommenders.pretraining import pretrain

    settings = env.pretrain_config
    seed = settings.seed if seed is None else int(seed)
    result = pretrain(env.step_config, env.data, settings.replace(seed=seed), nested=nested)
    if result.model is not None:
        return result.model.eval()
    model = make_backbone(
        env.backbone, env.data, d_max=env.d_max, d_min=env.d_min, seed=seed, device=env.device,
        **env.backbone_kwargs,
    )  # fmt: skip
    model.load_state_dict(result.state_dict)
    return model.eval()


def magprune_from_env(
    env: EmbeddingSizeEnv, budgets: Sequence[float], *, seed: int | None = None, **kwargs
) -> tuple[Backbone, list[MagPruneMask]]:
    """MagPrune on the env's data and backbone: the trained model (seed ``seed``) and its masks.

    Args:
        env: The (unwrapped) env.
        budgets: Target sparsities c.
        seed: Seed of the trained full-size model (default the env's ``pretrain_seed``).
        **kwargs: Fields of :class:`MagPruneConfig`.
    """
    config = config_from_kwargs(MagPruneConfig, kwargs, "MagPrune")
    model = trained_full_model(env, seed=seed)
    return model, magprune(model, env.data, budgets, config)


def magprune_masks(
    env: gym.Env, budgets: Sequence[float], *, seed: int, **kwargs: Any
) -> list[MagPruneMask]:
    """The builder of the ``"magprune"`` agents: masks per budget, each with its published row.

    Kind ``"pruner"`` (:mod:`agents.registry`): ``"magprune-retrain"`` retrains the masks like
    PEP's; ``"magprune"`` reports :attr:`MagPruneMask.published` (:func:`published_proposal`).

    Args:
        env: The env (wrapped or not).
        budgets: Target sparsities c.
        seed: Seed of the trained full-size model.
        **kwargs: Fields of :class:`MagPruneConfig`.
    """
    import dataclasses

    base = env.unwrapped
    model, masks = magprune_from_env(base, budgets, seed=seed, **kwargs)
    return [dataclasses.replace(m, published=published_result(model, m, base.data)) for m in masks]


def published_proposal(
    session: Any, spec: Any, budgets: Sequence[float], *, episodes: int, **kwargs: Any
) -> Proposal:
    """``"magprune"``'s proposal: each budget's published row, reported without retraining."""
    masks, search_s = session.prune(spec, budgets, **kwargs)
    candidates = [BudgetCandidates(m.budget, result=m.published) for m in masks]
    return Proposal(candidates, search_s, pruned=masks)
