"""OptEmbed — a supernet of random prefix sizes, then an evolutionary search of sizes.

OptEmbed (Lyu et al., CIKM 2022, ``fuyuanlyu/OptEmbed``) trains one *supernet* in which every
sample draws a uniform random prefix size per field, so any size assignment can be scored
without retraining; an evolutionary search then picks the sizes with the best validation score,
and the chosen model is retrained from the supernet's initial weights. The lightweight-embedding
benchmark of Tran et al. (2024) runs it on LightGCN with one size per user and per item and a
**target sparsity**, which is the variant built here:

1. **Supernet** — the full-width backbone trained with a fresh uniform size in
   ``[d_min, d_max]`` for every user and item at every batch (the package's nested-prefix
   training, :class:`ciess_env.recommenders.BPRTrainer` with ``nested=True``), kept at its best
   full-size validation score (:func:`agents.magprune.trained_full_model`, cached).
2. **Evolution** (:func:`evolve`) — a candidate is a size per user and item. The initial
   population draws sizes with ``P(d) ∝ α^(d_max − d + 1)``, ``α`` fitted so that the expected
   size is ``d_max · (1 − c)`` (:func:`fit_alpha`), redrawing candidates above the budget.
   Each generation keeps the ``keep_top`` fittest (validation NDCG@20 of the supernet at those
   sizes), adds ``n_crossover`` uniform per-entity crossovers of two of them and
   ``n_mutation`` mutants (each size redrawn from the same law with probability
   ``mutation_prob``); children above the budget are rejected and redrawn.
3. **Retraining** — the best sizes through the package's final retraining
   (:func:`agents.experiments.selective.selective_retrain`) with the run's seed, i.e. from the
   supernet's initial weights (OptEmbed rewinds to them).

Every candidate keeps at most ``⌊(1 − c) · d_max · N⌋`` parameters, so the sizes reached are
at least as sparse as ``c`` and usually a little sparser (the table reports the sparsity
reached). Departures from the original and from the benchmark: ``docs/baselines.md``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from agents.magprune import _metric_reader, config_from_kwargs, trained_full_model
from agents.protocol import BudgetCandidates, Proposal
from ciess_env.budget import kept_budget, sparsity
from ciess_env.budget_log import BudgetLog
from ciess_env.data import InteractionData
from ciess_env.errors import InvalidArgumentError
from ciess_env.metrics import evaluate
from ciess_env.recommenders import Backbone

if TYPE_CHECKING:
    import gymnasium as gym

    from ciess_env.env import EmbeddingSizeEnv

__all__ = [
    "OptEmbedConfig",
    "OptEmbedResult",
    "evolve",
    "fit_alpha",
    "optembed_from_env",
    "optembed_log",
    "optembed_proposal",
    "optembed_search",
    "sample_sizes",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class OptEmbedConfig:
    """Settings of OptEmbed's evolutionary search (defaults: the benchmark's).

    Attributes:
        generations: Generations after the initial population (30).
        population: Size of the initial population (20).
        keep_top: Fittest candidates kept as parents each generation (15).
        n_crossover: Crossover children per generation (10).
        n_mutation: Mutants per generation (10).
        mutation_prob: Chance that a mutant redraws each entity's size (0.1).
        metric: Fitness on validation, ``"ndcg@K"`` or ``"recall@K"`` (NDCG@20).
        max_tries: Draws per wanted child before a generation gives up on the rest (children
            above the budget are rejected).
    """

    generations: int = 30
    population: int = 20
    keep_top: int = 15
    n_crossover: int = 10
    n_mutation: int = 10
    mutation_prob: float = 0.1
    metric: str = "ndcg@20"
    max_tries: int = 100

    def __post_init__(self) -> None:
        for name in ("generations", "n_crossover", "n_mutation"):
            value = getattr(self, name)
            if not _whole(value) or value < 0:
                msg = f"`{name}` must be a whole number >= 0, got {value!r}."
                raise InvalidArgumentError(msg)
        for name in ("population", "keep_top", "max_tries"):
            value = getattr(self, name)
            if not _whole(value) or value < 1:
                msg = f"`{name}` must be a whole number >= 1, got {value!r}."
                raise InvalidArgumentError(msg)
        if self.n_crossover and self.keep_top < 2:
            msg = f"crossover needs two parents: `keep_top` must be >= 2, got {self.keep_top}."
            raise InvalidArgumentError(msg)
        if not 0.0 <= float(self.mutation_prob) <= 1.0:
            msg = f"`mutation_prob` must be in [0, 1], got {self.mutation_prob!r}."
            raise InvalidArgumentError(msg)
        _metric_reader(self.metric)


def _whole(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


@dataclass(frozen=True)
class OptEmbedResult:
    """OptEmbed's sizes for one budget.

    Attributes:
        budget: Target sparsity c.
        user_sizes: (n_users,) int64 prefix sizes.
        item_sizes: (n_items,) int64.
        validation_score: The supernet's validation metric at these sizes.
        alpha: The fitted ``α`` of the size law.
        evaluations: Distinct candidates scored.
        history: Best fitness after the initial population and after each generation.
        d_max: Table width.
    """

    budget: float
    user_sizes: np.ndarray
    item_sizes: np.ndarray
    validation_score: float
    alpha: float
    evaluations: int
    history: list[float] = field(default_factory=list)
    d_max: int = 128

    @property
    def sparsity(self) -> float:
        """``1 − Σ sizes / (d_max · N)``."""
        return sparsity(self.user_sizes, self.item_sizes, self.d_max)


def _log_probs(alpha: float, d_min: int, d_max: int) -> np.ndarray:
    """``P(d) ∝ α^(d_max − d + 1)`` over ``d = d_min..d_max`` (computed in logs)."""
    d = np.arange(d_min, d_max + 1, dtype=np.float64)
    z = (d_max - d + 1) * math.log(alpha)
    z -= z.max()
    p = np.exp(z)
    return p / p.sum()


def fit_alpha(c: float, d_min: int, d_max: int) -> float:
    """The ``α`` whose size law has mean ``d_max · (1 − c)`` (clipped to ``[d_min, d_max]``).

    The mean falls as ``α`` grows, so ``log α`` is found by bisection.

    Raises:
        InvalidArgumentError: for ``c`` outside [0, 1) or a bad size range.
    """
    kept_budget(c, 1, 1)
    if not (_whole(d_min) and _whole(d_max) and 1 <= d_min <= d_max):
        msg = f"need whole numbers 1 <= d_min <= d_max, got d_min={d_min!r}, d_max={d_max!r}."
        raise InvalidArgumentError(msg)
    target = min(max(d_max * (1.0 - c), d_min), d_max)
    sizes = np.arange(d_min, d_max + 1, dtype=np.float64)
    lo, hi = -30.0, 30.0  # log α
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if float(_log_probs(math.exp(mid), d_min, d_max) @ sizes) > target:
            lo = mid
        else:
            hi = mid
    return math.exp(0.5 * (lo + hi))


def sample_sizes(
    rng: np.random.Generator, n: int, alpha: float, d_min: int, d_max: int, count: int = 1
) -> np.ndarray:
    """(count, n) int64 sizes drawn i.i.d. from ``P(d) ∝ α^(d_max − d + 1)``."""
    p = _log_probs(alpha, d_min, d_max)
    return rng.choice(np.arange(d_min, d_max + 1, dtype=np.int64), size=(count, n), p=p)


def evolve(
    supernet: Backbone,
    data: InteractionData,
    c: float,
    config: OptEmbedConfig | None = None,
    *,
    seed: int = 0,
) -> OptEmbedResult:
    """OptEmbed's evolutionary search of per-entity sizes on a trained supernet, for budget c.

    Args:
        supernet: A nested-prefix-trained backbone (its sizes are set per candidate and
            restored to what they were afterwards).
        data: The data set (validation scores the candidates).
        c: Target sparsity in [0, 1).
        config: Search settings.
        seed: Seeds every draw (same seed, same supernet ⇒ same sizes).

    Returns:
        The fittest candidate found.

    Raises:
        InvalidArgumentError: for ``c`` outside [0, 1), a budget below ``d_min`` per entity,
            or a supernet of another data set's shape.
    """
    config = config or OptEmbedConfig()
    if (supernet.n_users, supernet.n_items) != (data.n_users, data.n_items):
        msg = (
            f"`supernet` ({supernet.n_users} users, {supernet.n_items} items) is not a model of "
            f"`data` ({data.n_users} users, {data.n_items} items)."
        )
        raise InvalidArgumentError(msg)
    d_min, d_max, n_u = supernet.d_min, supernet.d_max, supernet.n_users
    n = n_u + supernet.n_items
    cap = kept_budget(c, n, d_max)
    if cap < d_min * n:
        msg = (
            f"budget c={c} keeps {cap} parameters, fewer than d_min={d_min} for each of the {n} "
            "users and items; lower c."
        )
        raise InvalidArgumentError(msg)
    alpha = fit_alpha(c, d_min, d_max)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), round(c * 1e6)]))
    read = _metric_reader(config.metric)
    saved = (supernet.user_sizes.clone(), supernet.item_sizes.clone())
    scores: dict[bytes, float] = {}

    def fitness(sizes: np.ndarray) -> float:
        key = sizes.tobytes()
        if key not in scores:
            supernet.set_sizes(sizes[:n_u], sizes[n_u:])
            scores[key] = read(evaluate(supernet, data, "validation"))
        return scores[key]

    def draw(make, wanted: int) -> list[np.ndarray]:
        """Up to ``wanted`` candidates within the budget, ``make(k)`` drawing k at a time."""
        out: list[np.ndarray] = []
        for _ in range(config.max_tries):
            if len(out) >= wanted:
                break
            batch = make(wanted - len(out))
            out += [row for row in batch if int(row.sum()) <= cap]
        return out[:wanted]

    def initial(k: int) -> np.ndarray:
        return sample_sizes(rng, n, alpha, d_min, d_max, k)

    try:
        population = draw(initial, config.population)
        if not population:  # the law's mean sits at the cap; fall back to equal sizes
            population = [np.full(n, cap // n, dtype=np.int64)]
        history = [max(fitness(p) for p in population)]
        for gen in range(config.generations):
            ranked = sorted(population, key=fitness, reverse=True)
            parents = ranked[: config.keep_top]

            def cross(k: int, parents: list = parents) -> np.ndarray:
                if len(parents) < 2:
                    return np.empty((0, n), dtype=np.int64)
                pairs = np.stack([rng.choice(len(parents), 2, replace=False) for _ in range(k)])
                a = np.stack([parents[i] for i in pairs[:, 0]])
                b = np.stack([parents[i] for i in pairs[:, 1]])
                return np.where(rng.random((k, n)) < 0.5, a, b)

            def mutate(k: int, parents: list = parents) -> np.ndarray:
                base = np.stack([parents[i] for i in rng.integers(0, len(parents), k)])
                fresh = sample_sizes(rng, n, alpha, d_min, d_max, k)
                return np.where(rng.random((k, n)) < config.mutation_prob, fresh, base)

            children = draw(cross, config.n_crossover) + draw(mutate, config.n_mutation)
            population = parents + children
            history.append(max(fitness(p) for p in population))
            logger.info("OptEmbed c=%.2f generation %d: best %.4f", c, gen + 1, history[-1])
        best = max(population, key=fitness)
    finally:
        supernet.set_sizes(*saved)
    return OptEmbedResult(
        budget=float(c), user_sizes=best[:n_u].copy(), item_sizes=best[n_u:].copy(),
        validation_score=fitness(best), alpha=alpha, evaluations=len(scores), history=history,
        d_max=d_max,
    )  # fmt: skip


def optembed_log(results: Sequence[OptEmbedResult]) -> BudgetLog:
    """A budget log of OptEmbed's sizes, one entry per result, scored by the supernet.

    Retrain each budget from its own one-entry log (``optembed_log([r])``, ``top_l=1``), as
    ``compare`` does: a sparser budget's entry also meets a denser budget.
    """
    first = results[0]
    log = BudgetLog(first.user_sizes.size, first.item_sizes.size, d_max=first.d_max)
    for i, r in enumerate(results):
        log.record(
            episode=0, step=i + 1, user_sizes=r.user_sizes, item_sizes=r.item_sizes,
            sparsity=r.sparsity, mean_quality=r.validation_score,
        )  # fmt: skip
    return log


def optembed_from_env(
    env: EmbeddingSizeEnv,
    budgets: Sequence[float],
    *,
    seed: int | None = None,
    **kwargs: Any,
) -> list[OptEmbedResult]:
    """OptEmbed on the env's data and backbone: the supernet (seed ``seed``), one search per budget.

    Args:
        env: The (unwrapped) env.
        budgets: Target sparsities c.
        seed: Seed of the supernet's initialisation and training and of the evolution
            (default the env's ``pretrain_seed``); the final retraining with the same seed
            starts from the supernet's initial weights.
        **kwargs: Fields of :class:`OptEmbedConfig`.
    """
    config = config_from_kwargs(OptEmbedConfig, kwargs, "OptEmbed")
    budgets = [float(c) for c in budgets]
    if not budgets:
        msg = "`budgets` must hold at least one target sparsity, e.g. [0.8, 0.9, 0.95]."
        raise InvalidArgumentError(msg)
    for c in budgets:
        kept_budget(c, 1, 1)
    seed = env.pretrain_config.seed if seed is None else int(seed)
    supernet = trained_full_model(env, seed=seed, nested=True)
    return [evolve(supernet, env.data, c, config, seed=seed) for c in budgets]


def optembed_search(
    env: gym.Env, budgets: Sequence[float], *, seed: int, **kwargs: Any
) -> list[OptEmbedResult]:
    """The builder of the ``"optembed"`` agent (kind ``"pruner"``): one result per budget."""
    return optembed_from_env(env.unwrapped, budgets, seed=seed, **kwargs)


def optembed_proposal(
    session: Any, spec: Any, budgets: Sequence[float], *, episodes: int, **kwargs: Any
) -> Proposal:
    """``"optembed"``'s proposal: each budget's sizes, retrained like a heuristic's assignment.

    The sizes are at least as sparse as the budget; ``compare(fill_budget=True)`` grows them
    to it (they are ``fillable``).
    """
    results, search_s = session.prune(spec, budgets, **kwargs)
    candidates = [BudgetCandidates(r.budget, optembed_log([r]), top_l=1) for r in results]
    return Proposal(candidates, search_s, log=optembed_log(results), pruned=results)
