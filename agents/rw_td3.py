"""CIESS's agent: TD3 whose exploration is a critic-guided random walk over sizes (paper §2–§3).

:class:`RandomWalkTD3` is ``stable_baselines3.TD3`` with one hook overridden,
``_sample_action``; SB3's ``learn()``/``collect_rollouts``/``train`` loop is untouched. For every
entity of the per-entity vector env at once:

1. the actor proposes a size (deterministic output, mapped to ``[d_min, d_max]`` and rounded);
2. a 5-step random walk on the size graph (``t = 5``) yields 6 candidate sizes (Eqs. 12–13);
3. the critic's first head scores all candidates in one batched call, the argmax wins (Eq. 14);
4. Gaussian noise (σ = 6 sizes) is added, and the result is rounded and clipped.

The transition stores the executed size as its [−1, 1] action, so the actor and critic learn
from what was actually run (paper §3).

Implementation details: differences from the CIESS reference
1. Step order (walk → argmax → noise) follows the reference code; the paper adds the noise to
   the proposal *before* the walk and executes the argmax. Both are available
   (``noise_stage="after_critic"`` / ``"before_walk"``).
2. ``noise="per_entity"`` (the paper, default) draws one noise value per entity;
   ``noise="shared"`` draws one scalar for all entities per step, as the reference code does,
   so the executed mask stays a function of the state shifted by one offset; ``noise="none"``
   executes the critic's pick as it is (the walk is then the only exploration). Per-entity noise
   of σ = 6 sizes is as large as the sizes the search settles on (4–25), which is why the
   variants exist (``benchmarks/search_diagnosis.py``).
3. Target policy smoothing is SB3's: noise per sample rather than one scalar per batch; its
   scale is given in sizes (σ = 2, clip 5) and converted to action units.
4. Gradient-norm clipping is off by default. The reference clips every network at 0.01, but
   Adam divides the gradient by its running RMS, so the clip mostly rescales updates
   inconsistently across steps; pass ``max_grad_norm=0.01`` to reproduce it.
5. Before ``learning_starts`` SB3's warm-up samples uniform random actions; the default
   ``learning_starts=0`` skips that phase, as the paper acts with the actor from the first step.
   ``learning_starts`` counts entity-steps (SB3 adds ``num_envs`` per vector-env step).

Logged metrics (SB3 logger, recorded after every env step): ``rollout/mean_size`` (mean
executed size), ``rollout/mean_proposal_size`` (mean actor proposal), ``rollout/walk_moved``
(fraction of entities whose critic argmax differs from the proposal).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, NamedTuple

import numpy as np
import torch as th
from stable_baselines3 import TD3
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.noise import ActionNoise
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import GymEnv, Schedule
from stable_baselines3.common.vec_env import VecEnv

from agents.policies import EntityTD3Policy
from agents.random_walk import random_walk as walk_sizes
from agents.random_walk import walk_tables
from ciess_env.errors import CallOrderError, InvalidArgumentError
from ciess_env.spaces import action_to_sizes, sizes_to_action, validate_size_range

__all__ = ["ExplorationStep", "RandomWalkTD3", "env_size_bounds", "sizes_per_action_unit"]

NoiseMode = Literal["per_entity", "shared", "none"]
_NOISE_MODES = ("per_entity", "shared", "none")
NoiseStage = Literal["after_critic", "before_walk"]


class ExplorationStep(NamedTuple):
    """What one exploration step decided, per entity (all (n,) int64 sizes but ``candidates``).

    Attributes:
        proposal: The actor's size (noisy when ``noise_stage="before_walk"``).
        candidates: (n, walk_steps + 1) walk from the proposal; just the proposal when the walk
            is off.
        chosen: The candidate with the highest Q1.
        executed: The size sent to the env (``chosen`` plus noise when ``"after_critic"``).
    """

    proposal: np.ndarray
    candidates: np.ndarray
    chosen: np.ndarray
    executed: np.ndarray


def env_size_bounds(
    env: VecEnv | None, d_min: int | None = None, d_max: int | None = None
) -> tuple[int, int]:
    """Resolve the size range: explicit values, else the env's ``d_min``/``d_max``, else 1/128.

    Args:
        env: The (vector) env, or None.
        d_min: Explicit smallest size, or None.
        d_max: Explicit largest size, or None.

    Returns:
        ``(d_min, d_max)``.

    Raises:
        ValueError: if an explicit value contradicts the env's, or the range is empty.
    """
    from_env: dict[str, int] = {}
    if env is not None:
        for name in ("d_min", "d_max"):
            try:
                from_env[name] = int(env.get_attr(name, indices=[0])[0])
            except (AttributeError, NotImplementedError, TypeError, IndexError):
                pass
    resolved = {}
    for name, given, default in (("d_min", d_min, 1), ("d_max", d_max, 128)):
        if given is not None and name in from_env and int(given) != from_env[name]:
            msg = f"`{name}` must match the env's {name}={from_env[name]}, got {given}."
            raise InvalidArgumentError(msg)
        resolved[name] = int(given) if given is not None else from_env.get(name, default)
    return validate_size_range(resolved["d_min"], resolved["d_max"])


def sizes_per_action_unit(d_min: int, d_max: int) -> float:
    """Sizes per unit of the [−1, 1] action: the action spans ``d_max − d_min`` sizes over 2."""
    return (d_max - d_min) / 2.0


class RandomWalkTD3(TD3):
    """TD3 with CIESS's random-walk exploration, paper defaults for the per-entity vector env.

    Everything not listed here is SB3's ``TD3`` (``learn``, ``predict``, ``save``/``load``).
    ``predict`` returns the actor's deterministic action; exploration happens only inside
    ``learn``. Timesteps count entity-steps: one env step adds ``num_envs`` (= |U| + |V|).

    Args:
        policy: ``"EntityPolicy"`` (one actor/critic pair per side, paper §2; default),
            ``"MlpPolicy"`` (shared networks) or a policy class.
        env: The per-entity vector env (observation (4,), action (1,) in [−1, 1]).
        learning_rate: Actor learning rate (reference: 1e-3), or an SB3 schedule.
        critic_learning_rate: Critic learning rate (reference: 3e-3); needs an
            :class:`~agents.policies.EntityTD3Policy`. None: the critic uses ``learning_rate``.
        buffer_size: Replay capacity in transitions; None: 100 env steps of every entity
            (reference: 100 × |U| and 100 × |V|).
        learning_starts: Entity-steps of SB3's uniform-random warm-up (0: none, as the paper).
        batch_size: Minibatch (reference: 4,096).
        tau: Polyak coefficient (reference: 0.005).
        gamma: Discount (reference: 0.99).
        train_freq: Env steps between updates (reference: every step).
        gradient_steps: Gradient steps per update (reference: 1).
        replay_buffer_class: SB3 replay buffer class.
        replay_buffer_kwargs: Its keyword arguments.
        optimize_memory_usage: SB3's memory-efficient buffer.
        policy_delay: Critic updates per actor update (reference: 2).
        target_noise_sizes: Std of target policy smoothing, in sizes (reference: 2).
        target_noise_clip_sizes: Its clip, in sizes (reference: 5).
        random_walk: Explore with the walk + critic argmax; False gives the paper's "w/o random
            walk" ablation (proposal + noise, Table 2).
        walk_threshold: Largest size step between graph neighbours, ``t`` (paper: 5).
        walk_steps: Walk length (paper: 5, so 6 candidates).
        exploration_noise_sizes: Std of the Gaussian exploration noise, in sizes (paper: 6).
        noise: ``"per_entity"`` (paper), ``"shared"`` (reference code: one scalar per step) or
            ``"none"`` (no Gaussian noise; ``"per-entity"`` is accepted for ``"per_entity"``).
        noise_stage: ``"after_critic"`` (reference code) or ``"before_walk"`` (paper Eq. 11).
        max_grad_norm: Per-network gradient-norm clip (reference: 0.01); None: off.
        d_min: Smallest size; None: the env's ``d_min`` attribute, else 1.
        d_max: Largest size; None: the env's ``d_max`` attribute, else 128.
        stats_window_size: SB3 rollout statistics window.
        tensorboard_log: TensorBoard folder, or None.
        policy_kwargs: Extra policy keywords (default net: 256-256).
        verbose: SB3 verbosity.
        seed: Seeds SB3 (networks, buffer sampling) and the walk/noise generator.
        device: Torch device.
        _init_setup_model: SB3 internal (False while loading).

    Raises:
        ValueError: on an invalid option, a non-(1,) action space, or an option the chosen
            policy cannot honour.
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        **TD3.policy_aliases,
        "EntityPolicy": EntityTD3Policy,
    }

    def __init__(
        self,
        policy: str | type[BasePolicy] = "EntityPolicy",
        env: GymEnv | str | None = None,
        learning_rate: float | Schedule = 1e-3,
        *,
        critic_learning_rate: float | None = 3e-3,
        buffer_size: int | None = None,
        learning_starts: int = 0,
        batch_size: int = 4096,
        tau: float = 0.005,
        gamma: float = 0.99,
        train_freq: int | tuple[int, str] = 1,
        gradient_steps: int = 1,
        replay_buffer_class: type[ReplayBuffer] | None = None,
        replay_buffer_kwargs: dict[str, Any] | None = None,
        optimize_memory_usage: bool = False,
        policy_delay: int = 2,
        target_noise_sizes: float = 2.0,
        target_noise_clip_sizes: float = 5.0,
        random_walk: bool = True,
        walk_threshold: int = 5,
        walk_steps: int = 5,
        exploration_noise_sizes: float = 6.0,
        noise: NoiseMode = "per_entity",
        noise_stage: NoiseStage = "after_critic",
        max_grad_norm: float | None = None,
        d_min: int | None = None,
        d_max: int | None = None,
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: th.device | str = "auto",
        _init_setup_model: bool = True,
    ) -> None:
        noise = _check_options(
            noise, noise_stage, walk_threshold, walk_steps, exploration_noise_sizes
        )
        super().__init__(
            policy=policy,
            env=env,  # type: ignore[arg-type]
            learning_rate=learning_rate,
            buffer_size=1 if buffer_size is None else buffer_size,
            learning_starts=learning_starts,
            batch_size=batch_size,
            tau=tau,
            gamma=gamma,
            train_freq=train_freq,
            gradient_steps=gradient_steps,
            replay_buffer_class=replay_buffer_class,
            replay_buffer_kwargs=replay_buffer_kwargs,
            optimize_memory_usage=optimize_memory_usage,
            policy_delay=policy_delay,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            # A copy: SB3 keeps the dict and _configure_policy_kwargs edits it, which would leak
            # critic_lr_scale into the caller's (possibly shared) kwargs.
            policy_kwargs=None if policy_kwargs is None else dict(policy_kwargs),
            verbose=verbose,
            seed=seed,
            device=device,
            _init_setup_model=False,
        )
        if self.env is not None and self.action_space.shape != (1,):
            msg = f"`env.action_space` must be a Box of shape (1,), got {self.action_space!r}."
            raise InvalidArgumentError(msg)
        self.d_min, self.d_max = env_size_bounds(self.env, d_min, d_max)
        if buffer_size is None:
            self.buffer_size = 100 * (self.n_envs if self.env is not None else 1)
        scale = sizes_per_action_unit(self.d_min, self.d_max)
        self.target_policy_noise = target_noise_sizes / scale
        self.target_noise_clip = target_noise_clip_sizes / scale
        self.random_walk = random_walk
        self.walk_threshold = walk_threshold
        self.walk_steps = walk_steps
        self.exploration_noise_sizes = exploration_noise_sizes
        self.noise = noise
        self.noise_stage = noise_stage
        if _init_setup_model:  # while loading (False), the saved policy_kwargs take over
            self._configure_policy_kwargs(learning_rate, critic_learning_rate, max_grad_norm)
        self._explore_rng = np.random.default_rng(seed)
        self._last_exploration: ExplorationStep | None = None
        if _init_setup_model:
            self._setup_model()

    def _configure_policy_kwargs(
        self,
        learning_rate: float | Schedule,
        critic_learning_rate: float | None,
        max_grad_norm: float | None,
    ) -> None:
        self.policy_kwargs.setdefault("net_arch", [256, 256])
        is_entity = isinstance(self.policy_class, type) and issubclass(
            self.policy_class, EntityTD3Policy
        )
        if not is_entity:
            for name, value in (
                ("critic_learning_rate", critic_learning_rate),
                ("max_grad_norm", max_grad_norm),
            ):
                if value is not None:
                    msg = (
                        f"`{name}` must be None unless the policy is an EntityTD3Policy, "
                        f"got {value!r} with {self.policy_class.__name__}. Pass {name}=None."
                    )
                    raise InvalidArgumentError(msg)
            return
        if critic_learning_rate is not None:
            base = learning_rate if not callable(learning_rate) else learning_rate(1.0)
            self.policy_kwargs["critic_lr_scale"] = float(critic_learning_rate) / float(base)
        if max_grad_norm is not None:
            self.policy_kwargs["max_grad_norm"] = float(max_grad_norm)

    def set_random_seed(self, seed: int | None = None) -> None:
        """Seed SB3's generators and (re)create the walk/noise generator from ``seed``."""
        super().set_random_seed(seed)
        self._explore_rng = np.random.default_rng(seed)

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "_explore_rng", "_last_exploration"]

    # --- exploration -------------------------------------------------------------------------

    def _add_noise(self, sizes: np.ndarray) -> np.ndarray:
        """Add N(0, σ) in sizes (per entity or one shared draw), round half up, clip.

        ``noise="none"`` returns the sizes unchanged and draws nothing from the generator.
        """
        if self.noise == "none":
            return np.clip(sizes, self.d_min, self.d_max).astype(np.int64)
        if self.noise == "shared":
            eps = self._explore_rng.normal(0.0, self.exploration_noise_sizes)
        else:
            eps = self._explore_rng.normal(0.0, self.exploration_noise_sizes, size=sizes.shape)
        noisy = np.floor(sizes + eps + 0.5)
        return np.clip(noisy, self.d_min, self.d_max).astype(np.int64)

    def _score_candidates(self, obs: th.Tensor, candidates: np.ndarray) -> np.ndarray:
        """Q1 of every (entity, candidate) pair in one critic call, (n, n_candidates)."""
        n, k = candidates.shape
        actions = sizes_to_action(candidates, d_min=self.d_min, d_max=self.d_max)
        actions_t = th.as_tensor(actions.reshape(-1, 1), device=self.device)
        with th.no_grad():
            q = self.critic.q1_forward(obs.repeat_interleave(k, dim=0), actions_t)
        return q.reshape(n, k).cpu().numpy()

    def explore(self, observation: np.ndarray) -> ExplorationStep:
        """Run CIESS's exploration for every entity of a batch of observations (paper §3).

        Args:
            observation: (n, obs_dim) observations, one row per entity.

        Returns:
            The :class:`ExplorationStep` with proposals, candidates, argmax and executed sizes.
        """
        obs_t, _ = self.policy.obs_to_tensor(observation)
        n = obs_t.shape[0]
        with th.no_grad():
            raw = self.actor(obs_t).cpu().numpy()  # type: ignore[operator]
        proposal = action_to_sizes(raw, n=n, d_min=self.d_min, d_max=self.d_max)
        if self.noise_stage == "before_walk":
            proposal = self._add_noise(proposal)
        if self.random_walk:
            candidates = walk_sizes(
                proposal,
                d_min=self.d_min,
                d_max=self.d_max,
                threshold=self.walk_threshold,
                n_steps=self.walk_steps,
                rng=self._explore_rng,
            )
            best = np.argmax(self._score_candidates(obs_t, candidates), axis=1)
            chosen = candidates[np.arange(n), best]
        else:
            candidates = proposal[:, None].copy()
            chosen = proposal
        executed = chosen if self.noise_stage == "before_walk" else self._add_noise(chosen)
        return ExplorationStep(proposal, candidates, chosen, executed)

    def _sample_action(
        self,
        learning_starts: int,
        action_noise: ActionNoise | None = None,
        n_envs: int = 1,
    ) -> tuple[np.ndarray, np.ndarray]:
        """SB3 hook: CIESS exploration once warm-up is over; SB3's uniform warm-up before.

        Returns:
            ``(action, buffer_action)``: the env action (unscaled from [−1, 1] to the action
            space, which for the per-entity env is [−1, 1] itself) and the [−1, 1] action
            stored in the replay buffer, both (n_envs, 1).
        """
        if self.num_timesteps < learning_starts:
            self._last_exploration = None
            return super()._sample_action(learning_starts, action_noise, n_envs)
        if self._last_obs is None:
            msg = "`_last_obs` must be set before sampling actions; call learn(), got None."
            raise CallOrderError(msg)
        step = self.explore(self._last_obs)  # type: ignore[arg-type]
        self._last_exploration = step
        buffer_action = sizes_to_action(step.executed, d_min=self.d_min, d_max=self.d_max)
        buffer_action = buffer_action.reshape(n_envs, 1)
        return self.policy.unscale_action(buffer_action), buffer_action

    def _on_step(self) -> None:
        super()._on_step()
        step = self._last_exploration
        if step is not None:
            self.logger.record("rollout/mean_size", float(step.executed.mean()))
            self.logger.record("rollout/mean_proposal_size", float(step.proposal.mean()))
            self.logger.record("rollout/walk_moved", float(np.mean(step.chosen != step.proposal)))


def _check_options(
    noise: str, noise_stage: str, walk_threshold: int, walk_steps: int, sigma: float
) -> NoiseMode:
    """Validate the exploration options; return ``noise`` in its canonical spelling."""
    canonical = noise.replace("-", "_") if isinstance(noise, str) else noise
    if canonical not in _NOISE_MODES:
        msg = f"`noise` must be 'per_entity', 'shared' or 'none', got {noise!r}."
        raise InvalidArgumentError(msg)
    if noise_stage not in ("after_critic", "before_walk"):
        msg = f"`noise_stage` must be 'after_critic' or 'before_walk', got {noise_stage!r}."
        raise InvalidArgumentError(msg)
    walk_tables(1, 2, walk_threshold)  # validates the threshold
    if not isinstance(walk_steps, int) or walk_steps < 1:
        msg = f"`walk_steps` must be a positive integer, got {walk_steps!r}."
        raise InvalidArgumentError(msg)
    if not sigma >= 0:
        msg = f"`exploration_noise_sizes` must be ≥ 0, got {sigma!r}."
        raise InvalidArgumentError(msg)
    return canonical  # type: ignore[return-value]
