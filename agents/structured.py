"""Structured black-box search: four numbers → a mask that spends the budget exactly.

The strong non-RL baseline of issue 15: instead of one size per entity, search a small family
of size assignments that always meets the budget ``c`` exactly, and score each member by one
env step (retrain, evaluate on validation), as the RL agents are scored. Every RL agent should
at least match it; if it does not, the per-entity freedom is not buying anything.

The family (:class:`StructuredSizes`; the mapping itself is
:func:`ciess_env.structured_action.structured_sizes`, shared with the RL wrapper
:class:`~ciess_env.structured_action.StructuredAction`), for a kept-size cap
``C = ⌊(1 − c)·d_max·N⌋``:

* ``item_ratio`` ρ: log2 of the items' mean size over the users' mean size, which fixes the
  items' share of the cap, ``C_items = C · n_items 2^ρ / (n_users + n_items 2^ρ)`` (clipped
  so that both sides stay within ``[d_min, d_max]``). ρ = 0 is ES's split.
* ``user_power`` / ``item_power`` α: within a side, ``d ∝ f^α`` with ``f`` the training
  frequency (MDE's rule per side; α = 0 is equal sizes, α < 0 favours rare entities).
* ``floor`` φ ∈ [0, 1]: every size is at least ``d_min + ⌊φ (k − d_min)⌋``, ``k`` the side's
  mean size; φ = 1 is ES within the side.

Each side is then made integral by :func:`agents.baselines.fit_to_budget`, the same
budget-exact rounding ES, MR and MDE use, so every mask has total size ``C``: sparsity is
``c`` up to less than one size unit, like ES. ES (ρ = 0, α = 0) and MDE (α = 0.3, ρ from
MDE's own split) are points of the family and are the search's first two trials, so on the
validation proxy the search can only end at or above both.

:class:`StructuredSearch` searches the four numbers with Optuna's TPE (seeded sampler; the
``optuna`` extra: ``pip install 'ciess-env[optuna]'``) or a dependency-free cross-entropy
method (``method="cem"``). The objective is the step's mean quality ratio q̄
(``info["mean_quality_ratio"]``), the score selective retraining ranks logged masks by; the
memory term of the reward is constant within the family, so maximising q̄ is maximising the
reward. Trials are independent env steps, so the search works with any step design; with the
same seed, the same env and the same number of trials it returns the same table on the CPU.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import pandas as pd

from agents.baselines import FrequencyBaseline, PopularityProportional
from ciess_env.errors import CallOrderError, InvalidArgumentError
from ciess_env.structured_action import (
    PARAMETER_RANGES,
    item_share,
    side_caps,
    structured_sizes,
)

__all__ = [
    "PARAMETER_RANGES",
    "StructuredSearch",
    "StructuredSizes",
    "TrialLog",
    "item_share",
    "warm_starts",
]

Method = Literal["tpe", "cem"]


class StructuredSizes(FrequencyBaseline):
    """Sizes from the items' budget share, a popularity power per side and a floor.

    See the module docstring for the family. The total size equals the cap exactly.

    Args:
        c: Target sparsity.
        user_freq: (n_users,) training interaction counts (counts below 1 count as 1).
        item_freq: (n_items,) training interaction counts.
        item_ratio: log2 of items' mean size over users' mean size (0: ES's split).
        user_power: Users' popularity power α (0: equal sizes, 0.3: MDE's default).
        item_power: Items' popularity power α.
        floor: φ ∈ [0, 1]; the smallest size of a side is ``d_min + ⌊φ (k − d_min)⌋``.
        d_min: Smallest size.
        d_max: Largest size.
        flat_actions: See :class:`~agents.baselines.SizeBaseline`.

    Raises:
        ValueError: on non-finite frequencies or parameters, or ``floor`` outside [0, 1].
    """

    def __init__(
        self,
        c: float,
        *,
        user_freq: np.ndarray,
        item_freq: np.ndarray,
        item_ratio: float = 0.0,
        user_power: float = 0.0,
        item_power: float = 0.0,
        floor: float = 0.0,
        d_min: int = 1,
        d_max: int = 128,
        flat_actions: bool = False,
    ) -> None:
        super().__init__(
            c,
            user_freq=user_freq,
            item_freq=item_freq,
            d_min=d_min,
            d_max=d_max,
            flat_actions=flat_actions,
        )
        params = {
            "item_ratio": item_ratio,
            "user_power": user_power,
            "item_power": item_power,
            "floor": floor,
        }
        for name, value in params.items():
            if not math.isfinite(float(value)):
                msg = f"`{name}` must be a finite number, got {value!r}."
                raise InvalidArgumentError(msg)
        if not 0.0 <= float(floor) <= 1.0:
            msg = f"`floor` must be in [0, 1] (a fraction of the side's mean size), got {floor!r}."
            raise InvalidArgumentError(msg)
        self.params = {k: float(v) for k, v in params.items()}

    @classmethod
    def from_params(cls, c: float, params: Mapping[str, float], **kwargs: Any) -> StructuredSizes:
        """Build from a ``{name: value}`` dict with the keys of :data:`PARAMETER_RANGES`."""
        unknown = set(params) - set(PARAMETER_RANGES)
        if unknown:
            msg = f"`params` keys must be among {sorted(PARAMETER_RANGES)}, got {sorted(unknown)}."
            raise InvalidArgumentError(msg)
        return cls(c, **dict(params), **kwargs)

    def side_caps(self) -> tuple[int, int]:
        """``(users' total size, items' total size)``; they sum to the cap exactly."""
        return side_caps(
            self.params["item_ratio"], n_users=self.n_users, n_items=self.n_items,
            cap=self.budget, d_min=self.d_min, d_max=self.d_max,
        )  # fmt: skip

    def _assign(self) -> np.ndarray:
        users, items = structured_sizes(
            self.params, user_freq=self.user_freq, item_freq=self.item_freq, cap=self.budget,
            d_min=self.d_min, d_max=self.d_max,
        )  # fmt: skip
        return np.concatenate([users, items])


def sizes_kwargs(env: gym.Env) -> dict[str, Any]:
    """:class:`StructuredSizes`'s arguments for ``env``'s data (frequencies, size range).

    ``flat_actions``: the masks' ``predict`` gives the single env's (N,) action layout.
    """
    base = env.unwrapped
    return {
        "user_freq": np.asarray(base.data.user_freq),
        "item_freq": np.asarray(base.data.item_freq),
        "d_min": int(base.d_min),
        "d_max": int(base.d_max),
        "flat_actions": True,
    }


def warm_starts(c: float, user_freq: np.ndarray, item_freq: np.ndarray, **kw: Any) -> list[dict]:
    """ES and MDE as points of the family: every budget search's first two trials.

    The searches here and ``sac-structured`` (:mod:`agents.structured_rl`) start alike.
    """
    es = {"item_ratio": 0.0, "user_power": 0.0, "item_power": 0.0, "floor": 0.0}
    mde = PopularityProportional(c, user_freq=user_freq, item_freq=item_freq, **kw)
    users, items = mde.sizes()
    ratio = float(np.clip(np.log2(items.mean() / users.mean()), *PARAMETER_RANGES["item_ratio"]))
    return [
        es,
        {"item_ratio": ratio, "user_power": mde.alpha, "item_power": mde.alpha, "floor": 0.0},
    ]


class _CEM:
    """Cross-entropy method in the unit cube: Gaussian, refit to the elite of each generation."""

    def __init__(self, dim: int, *, population: int, elite: float, seed: int | None) -> None:
        if population < 2:
            msg = f"`population` must be >= 2, got {population!r}."
            raise InvalidArgumentError(msg)
        if not 0.0 < elite <= 1.0:
            msg = f"`elite` must be in (0, 1], got {elite!r}."
            raise InvalidArgumentError(msg)
        self.population = population
        self.n_elite = max(2, round(elite * population))
        self.mean = np.full(dim, 0.5)
        self.std = np.full(dim, 0.3)
        self.rng = np.random.default_rng(seed)
        self._queue: list[np.ndarray] = []
        self._generation: list[tuple[np.ndarray, float]] = []

    def enqueue(self, u: np.ndarray) -> None:
        self._queue.append(np.clip(u, 0.0, 1.0))

    def ask(self) -> np.ndarray:
        if self._queue:
            return self._queue.pop(0)
        return np.clip(self.rng.normal(self.mean, self.std), 0.0, 1.0)

    def tell(self, u: np.ndarray, value: float) -> None:
        self._generation.append((u, value))
        if len(self._generation) < self.population:
            return
        ranked = sorted(self._generation, key=lambda t: -t[1])[: self.n_elite]
        elite = np.stack([u for u, _ in ranked])
        self.mean = elite.mean(axis=0)
        self.std = np.maximum(elite.std(axis=0), 0.02)  # keep exploring a little
        self._generation = []


class TrialLog:
    """The trials of a search of the family and its best mask: the part every such search shares.

    :class:`StructuredSearch` (TPE, CEM) and :class:`agents.structured_rl.StructuredRL` (SAC,
    PPO on :class:`~ciess_env.structured_action.StructuredAction`) record each env step with
    :meth:`_record`; both then answer ``trials``, ``best``, ``sizes`` and ``predict`` alike.
    """

    def _start_log(self) -> None:
        self._rows: list[dict[str, Any]] = []
        self._best: StructuredSizes | None = None
        self._best_value = -math.inf

    def _record(self, sizes: StructuredSizes, info: Mapping[str, Any], **extra: float) -> float:
        """Log one step that applied ``sizes`` (its env ``info``); return its q̄."""
        value = float(info["mean_quality_ratio"])
        self._rows.append(
            {
                "trial": len(self._rows),
                **sizes.params,
                **extra,
                "mean_quality": value,
                "recall@20": float(info["recall@20"]),
                "sparsity": float(info["sparsity"]),
            }
        )
        if value > self._best_value:
            self._best, self._best_value = sizes, value
        return value

    # -------------------------------------------------------------- results
    @property
    def trials(self) -> pd.DataFrame:
        """One row per trial (env step): the four parameters, q̄, validation R@20, sparsity."""
        return pd.DataFrame(self._rows)

    @property
    def best(self) -> StructuredSizes:
        """The best mask so far (highest q̄).

        Raises:
            CallOrderError: (a RuntimeError) before the first trial.
        """
        if self._best is None:
            msg = "No trial has run yet; call learn(n_trials) first."
            raise CallOrderError(msg)
        return self._best

    def sizes(self) -> tuple[np.ndarray, np.ndarray]:
        """The best mask: ``(user_sizes, item_sizes)``."""
        return self.best.sizes()

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, None]:
        """The (N,) actions of the best mask (the single env's action layout), like SB3."""
        return self.best.predict(observation, state, episode_start, deterministic)


class StructuredSearch(TrialLog):
    """Search :class:`StructuredSizes` at one budget by env steps (TPE or CEM), SB3-like.

    ``learn(n_trials)`` runs ``n_trials`` env steps (resetting the env when an episode is
    truncated); ``predict`` returns the actions of the best mask found so far, which is also
    :meth:`sizes`. Every trial is in :attr:`trials`; calling ``learn`` again continues the
    same search.

    Args:
        env: A CIESS env (``gym.make(...)`` or an ``EmbeddingSizeEnv``); the search steps it.
        c: Target sparsity.
        method: ``"tpe"`` (Optuna's TPE, needs the ``optuna`` extra) or ``"cem"``.
        seed: Seeds the sampler and the env's first reset.
        warm_start: Start with ES and MDE (see the module docstring).
        n_startup_trials: TPE's random trials before it models the objective.
        population: CEM generation size.
        elite: CEM elite fraction.

    Raises:
        ValueError: on an unknown method, or a budget the env cannot meet.
        ImportError: for ``method="tpe"`` without Optuna, saying how to install it.
    """

    def __init__(
        self,
        env: gym.Env,
        c: float,
        *,
        method: Method = "tpe",
        seed: int | None = 0,
        warm_start: bool = True,
        n_startup_trials: int = 6,
        population: int = 8,
        elite: float = 0.25,
    ) -> None:
        if method not in ("tpe", "cem"):
            msg = f"`method` must be 'tpe' or 'cem', got {method!r}."
            raise InvalidArgumentError(msg)
        self.env = env
        self.c = float(c)
        self.method = method
        self.seed = seed
        self._kw = sizes_kwargs(env)
        StructuredSizes(self.c, **self._kw)  # validates the budget now, not at the first trial
        self._names = list(PARAMETER_RANGES)
        self._start_log()
        self._needs_reset = True
        starts = warm_starts(self.c, **self._kw) if warm_start else []
        if method == "tpe":
            self._study = _tpe_study(seed, n_startup_trials)
            for params in starts:
                self._study.enqueue_trial(params)
        else:
            self._cem = _CEM(len(self._names), population=population, elite=elite, seed=seed)
            for params in starts:
                self._cem.enqueue(self._to_unit(params))

    # --------------------------------------------------------------- params
    def _to_unit(self, params: Mapping[str, float]) -> np.ndarray:
        return np.array([(params[k] - lo) / (hi - lo) for k, (lo, hi) in PARAMETER_RANGES.items()])

    def _from_unit(self, u: np.ndarray) -> dict[str, float]:
        return {
            k: float(lo + x * (hi - lo))
            for (k, (lo, hi)), x in zip(PARAMETER_RANGES.items(), u, strict=True)
        }

    # ----------------------------------------------------------------- loop
    def evaluate(self, sizes: StructuredSizes) -> dict[str, Any]:
        """One env step with ``sizes``; returns the step's info (q̄, Recall@20, sparsity...)."""
        base = self.env.unwrapped
        if self._needs_reset:
            self.env.reset(seed=self.seed if not self._rows else None)
            self._needs_reset = False
        users, items = sizes.sizes()
        _, _, terminated, truncated, info = self.env.step(base.sizes_to_action(users, items))
        self._needs_reset = bool(terminated or truncated)
        return info

    def learn(self, n_trials: int, progress_bar: bool = False) -> StructuredSearch:
        """Run ``n_trials`` more trials (env steps).

        Raises:
            ValueError: if ``n_trials`` is not a positive integer.
        """
        if not isinstance(n_trials, int) or n_trials < 1:
            msg = f"`n_trials` must be a positive integer, got {n_trials!r}."
            raise InvalidArgumentError(msg)
        from tqdm import tqdm

        for _ in tqdm(range(n_trials), desc=f"structured {self.method}", disable=not progress_bar):
            if self.method == "tpe":
                trial = self._study.ask()
                params = {
                    k: trial.suggest_float(k, lo, hi) for k, (lo, hi) in PARAMETER_RANGES.items()
                }
            else:
                u = self._cem.ask()
                params = self._from_unit(u)
            sizes = StructuredSizes.from_params(self.c, params, **self._kw)
            value = self._record(sizes, self.evaluate(sizes))
            if self.method == "tpe":
                self._study.tell(trial, value)
            else:
                self._cem.tell(u, value)
        return self


def _tpe_study(seed: int | None, n_startup_trials: int) -> Any:
    try:
        import optuna
    except ImportError as err:  # pragma: no cover - depends on the installation
        msg = (
            "StructuredSearch(method='tpe') needs Optuna: pip install 'ciess-env[optuna]' "
            "(or use method='cem', which needs nothing extra)."
        )
        raise ImportError(msg) from err
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = optuna.samplers.TPESampler(
            seed=seed, n_startup_trials=n_startup_trials, multivariate=True
        )
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # one line per trial otherwise
    return optuna.create_study(direction="maximize", sampler=sampler)
