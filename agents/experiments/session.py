"""One environment, many agents: the shared plumbing of ``compare`` and the CLI.

A :class:`SearchSession` builds the env once (so the full-size model is pretrained once) and
gives every agent the same data, backbone, budgets and retraining settings.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pandas as pd
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from tqdm import tqdm

import ciess_env  # noqa: F401  (registers the env ids)
from agents.experiments.checkpoint import CheckpointError, CheckpointMeta, SearchRun, read_meta
from agents.protocol import AgentBuilder, LearningAgent, Proposal, rollout
from agents.registry import AgentSpec, agent_spec, make_agent, make_budget_search, wrap_env_for
from ciess_env.budget import PAPER_BUDGETS
from ciess_env.budget_log import BudgetEntry, BudgetLog
from ciess_env.config import StepConfig
from ciess_env.env import EmbeddingSizeEnv
from ciess_env.errors import InvalidArgumentError, InvalidTypeError
from ciess_env.vector import EntityVecEnv
from ciess_env.wrappers import RecordBudgetLog

__all__ = ["SearchSession", "best_entry", "search_curve"]

logger = logging.getLogger(__name__)


class SearchSession:
    """An environment shared by several agents.

    Args:
        env_id: A registered CIESS env id.
        seed: Seed of the env and the agents.
        env_kwargs: Overrides passed to ``gym.make``.
        progress_bar: Show progress bars while agents learn.
        log_budgets: Budgets whose top masks each search's log keeps
            (:class:`~ciess_env.wrappers.RecordBudgetLog`); ``None`` keeps every mask.
        log_top_l: Masks kept per budget.
    """

    def __init__(
        self,
        env_id: str,
        *,
        seed: int = 0,
        env_kwargs: dict[str, Any] | None = None,
        progress_bar: bool = True,
        log_budgets: Sequence[float] | None = PAPER_BUDGETS,
        log_top_l: int = 3,
    ) -> None:
        self.env_id = env_id
        self.seed = int(seed)
        self.env_kwargs = dict(env_kwargs or {})
        self.progress_bar = progress_bar
        self.log_budgets = None if log_budgets is None else tuple(log_budgets)
        self.log_top_l = int(log_top_l)
        self._gym_env = gym.make(env_id, **self.env_kwargs)
        self.env: EmbeddingSizeEnv = self._gym_env.unwrapped  # type: ignore[assignment]
        self.data = self.env.data
        # One pruning search per (search, budgets, settings), shared by the agents that read it
        # (``AgentSpec.search_of``): its result and seconds.
        self._pruned: dict[str, tuple[list[Any], float]] = {}

    # ------------------------------------------------------------- proposals
    def propose(
        self, agent: str, budgets: Sequence[float], *, episodes: int, **kwargs: Any
    ) -> Proposal:
        """Agent ``agent``'s candidate masks per budget (:mod:`agents.protocol`).

        The one entry point for every kind: the spec's own ``propose`` or its kind's runs here
        (a heuristic's assignments, one RL search, one search per budget, a pruning search).

        Args:
            agent: A registered agent name (:data:`agents.registry.AGENT_SPECS`).
            budgets: Target sparsities c.
            episodes: Search episodes (per budget for one-budget agents; unused by heuristics
                and pruners).
            **kwargs: The agent's keyword arguments.

        Raises:
            UnknownNameError: (a ValueError) for an unknown name, suggesting the closest one.
        """
        spec = agent_spec(agent)
        return spec.proposer(self, spec, budgets, episodes=episodes, **kwargs)

    # ------------------------------------------------------------ heuristics
    def heuristic(self, name: str, c: float, **kwargs: Any):
        """Build heuristic ``name`` (kind ``"heuristic"``: "es", "mr", "mde") at sparsity ``c``."""
        spec = agent_spec(name, kinds=("heuristic",), what="heuristic")
        return spec.builder(c, self.env, seed=self.seed, **kwargs)

    def heuristic_log(self, name: str, budgets: Sequence[float], **kwargs: Any) -> BudgetLog:
        """A budget log holding baseline ``name``'s assignment at each budget (no search)."""
        log = BudgetLog(self.data.n_users, self.data.n_items, d_max=self.env.d_max)
        for i, c in enumerate(budgets):
            agent = self.heuristic(name, c, **kwargs)
            users, items = agent.sizes()
            log.record(
                episode=0,
                step=i + 1,
                user_sizes=users,
                item_sizes=items,
                sparsity=agent.sparsity,
                mean_quality=float("nan"),
            )
        return log

    # --------------------------------------------------------------- pruners
    def prune(
        self, agent: str | AgentSpec, budgets: Sequence[float], **kwargs: Any
    ) -> tuple[list[Any], float]:
        """A pruner's masks for ``budgets`` (e.g. PEP's) and the seconds its search took.

        The search runs once per session for the same budgets and settings: agents that share
        it (``AgentSpec.search_of``, e.g. ``"pep-prefix"``) reuse the result and its time. PEP
        trains for the env's per-step schedule (``train_config``; the paper's 2,000 batches on
        ML-1M) unless ``max_batches`` says otherwise.

        Args:
            agent: A registered pruner (kind ``"pruner"``), or its spec.
            budgets: Target sparsities c.
            **kwargs: The pruner's settings (for PEP: fields of :class:`agents.pep.PEPConfig`).

        Returns:
            One mask per budget (for PEP a :class:`agents.pep.PEPMask`), and the search seconds.
        """
        name = agent.name if isinstance(agent, AgentSpec) else agent
        spec = agent_spec(name, kinds=("pruner",), what="pruner")
        searcher = agent_spec(spec.kwargs_key)
        key = _as_json([searcher.name, [float(c) for c in budgets], kwargs])
        if key not in self._pruned:
            t0 = time.perf_counter()
            masks = searcher.builder(self.env, budgets, seed=self.seed, **kwargs)
            self._pruned[key] = (list(masks), time.perf_counter() - t0)
        return self._pruned[key]

    # ------------------------------------------------------------- RL search
    def search(
        self,
        agent: str | AgentBuilder,
        *,
        episodes: int,
        checkpoint_dir: str | Path | None = None,
        stop_after: int | None = None,
        deterministic_masks: bool = False,
        **kwargs: Any,
    ) -> tuple[BudgetLog, pd.DataFrame]:
        """Let an agent search for ``episodes`` episodes on the per-entity vector env.

        A named agent's search is checkpointed and resumable (below). Any other agent enters
        through the agent protocol (:mod:`agents.protocol`): an agent with ``learn`` learns, any
        other is rolled out with its ``predict``; such a search runs in one sitting.

        Args:
            agent: A registered agent of kind ``"rl"`` (built by
                :func:`~agents.registry.make_agent` with ``kwargs``), or any
                :data:`~agents.protocol.AgentBuilder` ``(vec_env, seed) -> Agent``.
            episodes: Episodes of T steps.
            checkpoint_dir: Write a checkpoint here after every episode (agent, replay buffer,
                random states, budget logs), so :meth:`resume` can continue the search.
            stop_after: End this sitting after that many episodes (checkpoint first); the
                search continues with :meth:`resume`.
            deterministic_masks: After every episode, also score the policy's noise-free mask
                (``predict(..., deterministic=True)``) and log it in
                :attr:`last_deterministic_log` (one env step of compute per episode).
            **kwargs: Agent keyword arguments (``seed`` defaults to the session's).

        Returns:
            The budget log of this search alone, and its per-step curve (:func:`search_curve`).
            :attr:`last_search_finished` says whether every episode ran.
        """
        if episodes < 1:
            msg = f"`episodes` must be >= 1, got {episodes!r}."
            raise InvalidArgumentError(msg)
        if not isinstance(agent, str):
            if (
                kwargs
                or checkpoint_dir is not None
                or stop_after is not None
                or deterministic_masks
            ):
                msg = (
                    "keyword arguments, checkpoint_dir, stop_after and deterministic_masks are "
                    f"for named agents only; got an agent builder {agent!r}."
                )
                raise InvalidTypeError(msg)
            return self._search_protocol(agent, episodes)
        name = agent_spec(agent, kinds=("rl",), what="agent for a search of all budgets").name
        # e.g. DiscreteSizes for esapn; the recorder sees the sizes the base env applied.
        recorder = RecordBudgetLog(
            wrap_env_for(name, self.env), budgets=self.log_budgets, top_l=self.log_top_l
        )
        vec = EntityVecEnv(recorder)
        vec.seed(self.seed)
        kwargs.setdefault("seed", self.seed)
        model = make_agent(name, vec, **kwargs)
        if not isinstance(model, BaseAlgorithm):  # a registered agent outside SB3
            if checkpoint_dir is not None or stop_after is not None or deterministic_masks:
                msg = (
                    f"checkpoint_dir, stop_after and deterministic_masks need an SB3 agent; "
                    f"agent {name!r} built a {type(model).__name__}."
                )
                raise InvalidTypeError(msg)
            return self._search_model(model, vec, recorder, episodes, name)
        meta = CheckpointMeta(
            env_id=self.env_id, env_kwargs=self.env_kwargs, seed=self.seed, agent=name,
            agent_class="", agent_kwargs=kwargs, episodes=int(episodes),
            deterministic_masks=bool(deterministic_masks),
        )  # fmt: skip
        run = SearchRun.start(
            self.env, vec, model, meta, log=recorder.budget_log, checkpoint_dir=checkpoint_dir
        )
        return self._run(run, stop_after=stop_after)

    def _search_protocol(
        self, builder: AgentBuilder, episodes: int
    ) -> tuple[BudgetLog, pd.DataFrame]:
        """The search of an agent built by ``builder`` (no checkpoints)."""
        recorder = RecordBudgetLog(self.env, budgets=self.log_budgets, top_l=self.log_top_l)
        vec = EntityVecEnv(recorder)
        vec.seed(self.seed)
        model = builder(vec, self.seed)
        return self._search_model(
            model, vec, recorder, episodes, getattr(builder, "__name__", "agent")
        )

    def _search_model(
        self, model: Any, vec: EntityVecEnv, recorder: RecordBudgetLog, episodes: int, name: str
    ) -> tuple[BudgetLog, pd.DataFrame]:
        """Search with a built agent in one sitting: SB3's learn, ``learn`` or a rollout."""
        if isinstance(model, BaseAlgorithm):
            self._learn(model, vec, episodes, desc=f"search {name}")
        elif isinstance(model, LearningAgent):
            model.learn(total_timesteps=episodes * self.env.max_episode_steps * vec.num_envs)
        else:
            rollout(model, vec, episodes * self.env.max_episode_steps)
        log = recorder.budget_log
        self.last_model = model
        self.last_deterministic_log = BudgetLog(
            self.env.n_users, self.env.n_items, d_max=self.env.d_max
        )
        self.last_search_finished = True
        return log, search_curve(log)

    def resume(
        self, checkpoint_dir: str | Path, *, stop_after: int | None = None
    ) -> tuple[BudgetLog, pd.DataFrame]:
        """Continue a search from the checkpoint :meth:`search` wrote in ``checkpoint_dir``.

        The session must have the checkpoint's env id, env kwargs and seed. The result equals,
        bit for bit on the CPU, that of a search that was never interrupted.

        A damaged newest checkpoint (truncated, unreadable) is set aside with a warning and
        the previous one continued instead (:meth:`SearchRun.resume`), with the same result.

        Raises:
            CheckpointNotFoundError: if ``checkpoint_dir`` holds no checkpoint.
            CheckpointDamagedError: if every checkpoint there is damaged; names the files.
            CheckpointError: if the session does not match the checkpoint.
        """
        meta = read_meta(checkpoint_dir)
        mine = (self.env_id, self.seed, _as_json(self.env_kwargs))
        theirs = (meta.env_id, meta.seed, _as_json(meta.env_kwargs))
        if mine != theirs:
            msg = (
                f"the checkpoint in {checkpoint_dir} is for env {theirs[0]!r}, seed {theirs[1]}, "
                f"env_kwargs {theirs[2]}; this session has {mine[0]!r}, seed {mine[1]}, "
                f"env_kwargs {mine[2]}. Build the SearchSession with the checkpoint's settings."
            )
            raise CheckpointError(msg)
        run = SearchRun.resume(self.env, checkpoint_dir)
        return self._run(run, stop_after=stop_after)

    def _run(self, run: SearchRun, *, stop_after: int | None) -> tuple[BudgetLog, pd.DataFrame]:
        steps_per_episode = self.env.max_episode_steps
        with tqdm(
            total=run.meta.episodes * steps_per_episode,
            initial=run.meta.episodes_done * steps_per_episode,
            desc=f"search {run.meta.agent}",
            unit="step",
            disable=not self.progress_bar,
        ) as bar:
            run.run(stop_after=stop_after, callbacks=[_TqdmCallback(bar)])
        log = run.log
        self.last_model = run.model
        self.last_deterministic_log = run.deterministic_log
        self.last_search_finished = run.finished
        return log, search_curve(log)

    def budget_search(
        self, name: str, c: float, *, episodes: int, **kwargs: Any
    ) -> tuple[BudgetLog, pd.DataFrame]:
        """Search for the one budget ``c`` for ``episodes`` × T env steps.

        ``name`` is a one-budget RL agent (kind ``"budget-rl"``, trained on the per-entity
        vector env with ``target_sparsity=c``) or a black-box search (kind ``"budget-search"``,
        one trial per env step on the single env).
        The env's λ is restored afterwards (a Lagrangian agent steers it).

        Returns:
            The budget log of this search alone, and its per-step curve.

        Raises:
            ValueError: for a name that is neither, or ``episodes < 1``.
        """
        spec = agent_spec(name, kinds=("budget-rl", "budget-search"), what="one-budget agent")
        if episodes < 1:
            msg = f"`episodes` must be >= 1, got {episodes!r}."
            raise InvalidArgumentError(msg)
        budgets = None if self.log_budgets is None else (float(c),)
        recorder = RecordBudgetLog(self.env, budgets=budgets, top_l=self.log_top_l)
        lam = self.env.lam
        kwargs.setdefault("seed", self.seed)
        try:
            if spec.kind == "budget-search":
                model: Any = make_budget_search(name, recorder, c, **kwargs)
                model.learn(episodes * self.env.max_episode_steps, progress_bar=self.progress_bar)
            else:
                vec = EntityVecEnv(recorder)
                vec.seed(self.seed)
                model = make_agent(name, vec, target_sparsity=c, **kwargs)
                self._learn(model, vec, episodes, desc=f"search {name} at {c:g}")
        finally:
            self.env.lam = lam
        log = recorder.budget_log
        self.last_model = model
        return log, search_curve(log)

    def _learn(self, model: Any, vec: EntityVecEnv, episodes: int, *, desc: str) -> None:
        steps = episodes * self.env.max_episode_steps
        with tqdm(total=steps, desc=desc, unit="step", disable=not self.progress_bar) as bar:
            # log_interval: SB3 would dump its logger once per finished sub-env (every entity)
            # at each episode end; the budget log already holds every step.
            model.learn(
                total_timesteps=steps * vec.num_envs,
                callback=_TqdmCallback(bar),
                log_interval=10**9,
            )

    # -------------------------------------------------------------- retrain
    def final_batches(self) -> int:
        """Cap on one final retraining, which stops early on validation (paper §2.3).

        The larger of the full-size model's early-stopping count and the paper's per-step
        scratch schedule, so small tables get the room they need: on ML-1M the full-size
        LightGCN peaks after a few hundred batches, far too early for a pruned table. Each
        candidate then stops at its own best batch count.
        """
        return max(1, int(self.env.pretrained.best_batches), int(self.env.train_config.n_batches))

    def final_step(self, n_batches: int | None = None) -> StepConfig:
        """The :class:`~ciess_env.config.StepConfig` of this env's final retrainings.

        The env's backbone, size range, device and hyperparameters, a fresh model
        (``retrain="scratch"``) and the env's schedule capped at ``n_batches``: what
        :func:`~agents.experiments.selective.selective_retrain`,
        :func:`~agents.experiments.selective.retrain_pruned` and
        :func:`ciess_env.retrain.final_retrain` take.

        Args:
            n_batches: Cap on each (early-stopped) retraining; default :meth:`final_batches`.
        """
        if n_batches is None:
            n_batches = self.final_batches()
        return self.env.step_config.replace(
            train=replace(self.env.train_config, n_batches=n_batches), retrain="scratch"
        )

    def close(self) -> None:
        """Release the env."""
        self._gym_env.close()


def search_curve(log: BudgetLog) -> pd.DataFrame:
    """Per-step search statistics of a budget log (paper Fig. 3: reward and mean size).

    The reward column is the step's mean reward exactly as the env returned it, i.e.
    :func:`ciess_env.spaces.entity_rewards` under the env's ``reward`` variant ("paper" or
    "code") averaged over entities; it is never recomputed here with another formula.
    """
    rows = []
    first = min((e.episode for e in log.steps), default=0)
    for e in log.steps:
        rows.append(
            {
                "episode": e.episode - first,
                "step": e.step,
                "mean_quality": e.mean_quality,
                "reward": e.reward,
                "mean_user_size": e.mean_user_size,
                "mean_item_size": e.mean_item_size,
                "sparsity": e.sparsity,
                "recall@20": e.recall_20,
            }
        )
    return pd.DataFrame(rows)


def best_entry(log: BudgetLog) -> BudgetEntry:
    """The logged step with the highest mean reward (the "best step" of a search).

    Raises:
        ValueError: if the log is empty or no entry carries a reward.
    """
    rewards = log.column("reward")
    if not np.any(~np.isnan(rewards)):
        msg = (
            f"`log` must hold at least one step with a reward, got {len(log)} entries without; "
            "record a search through the env (heuristic logs carry no reward)."
        )
        raise InvalidArgumentError(msg)
    return log[int(np.nanargmax(rewards))]


def _as_json(value: Any) -> str:
    """A canonical text of keyword arguments, to compare a session with a checkpoint."""
    return json.dumps(value, sort_keys=True, default=repr)


class _TqdmCallback(BaseCallback):
    """Advance a progress bar by one per environment step (one step = every entity)."""

    def __init__(self, bar: tqdm) -> None:
        super().__init__()
        self.bar = bar

    def _on_step(self) -> bool:
        self.bar.update(1)
        return True
