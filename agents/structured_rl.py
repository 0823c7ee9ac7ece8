"""SB3's SAC and PPO searching the structured action space, one search per budget.

The agents of issue 33: an off-the-shelf SB3 algorithm on
:class:`~ciess_env.structured_action.StructuredAction` (the four-number family of
:mod:`agents.structured`, whose every mask spends the budget exactly), with no custom policy.
:class:`StructuredRL` gives them the interface of the black-box searches
(:class:`~agents.structured.StructuredSearch`): ``learn(n_trials)`` runs that many env steps,
``predict`` returns the best mask found, and the masks go through the same selective and final
retraining as every other agent (``compare``, ``SearchSession.budget_search``, the CLI).

Defaults (``docs/structured_action.md`` has the curves and the ML-100K study):

* ``gamma = 0``: each step retrains a fresh model, so a step's reward depends on its own action
  only and the state carries no consequence of it; the problem is a bandit, and discounting
  future rewards would only add the critic's bootstrapping noise.
* SAC is given TPE's search length (10 env steps per budget on ML-100K), so no step is spent
  on uniform warm-up: its first two actions are ES and MDE (``warm_start``, the two masks
  structured TPE tries first; :class:`WarmStartSAC`), it learns from the second step on
  (``learning_starts = 1``) and its policy acts from the third. An update costs milliseconds
  and an env step seconds, so it takes ``gradient_steps = 128`` updates per env step (a
  64-64 network, a 10k buffer, ``lr = 1e-3``). The reward it learns from is q̄ in percent
  points above the first (ES) step (``reward_unit = 0.01``, :class:`RelativeReward`): q̄
  moves by hundredths across the family, which a critic resolves badly; the entropy weight
  is fixed at 0.05 on that scale (SB3's automatic weight starts at 1, which keeps the policy
  uniform for hundreds of steps; SCALL fixes α = 0.2 on a reward rescaled to [0, 10]).
  Before issue 33's second session the defaults were 10 uniform steps (``learning_starts``),
  4 updates per step, α = 0.005 on raw q̄ and no warm start; at 10 steps that never left
  the warm-up (``benchmarks/results/structured_rl_ml100k_v1.md``).
* PPO updates after every episode (``n_steps = 10``), 10 epochs of minibatches of 10, initial
  action std e^−0.5 ≈ 0.6 (std 1 would put most actions at the edges after clipping); it
  takes no warm start (its updates assume the policy chose every action).
"""

from __future__ import annotations

from typing import Any, Literal

import gymnasium as gym
import numpy as np
from stable_baselines3 import PPO, SAC
from stable_baselines3.common.callbacks import BaseCallback

from agents.structured import StructuredSizes, TrialLog, sizes_kwargs, warm_starts
from ciess_env.errors import InvalidArgumentError
from ciess_env.structured_action import StructuredAction

__all__ = ["ALGORITHMS", "RelativeReward", "StructuredRL", "WarmStartSAC"]

Algorithm = Literal["sac", "ppo"]


class _Default:
    """The type of :data:`_DEFAULT`: "not given", where ``None`` is a value (no reward unit)."""

    def __repr__(self) -> str:
        return "<the algorithm's default>"


_DEFAULT = _Default()

#: Algorithm → its defaults on the structured action (overridable by keyword).
ALGORITHMS: dict[str, dict[str, Any]] = {
    "sac": {
        "warm_start": True,
        "reward_unit": 0.01,
        "learning_rate": 1e-3,
        "buffer_size": 10_000,
        "learning_starts": 1,
        "batch_size": 64,
        "gamma": 0.0,
        "train_freq": 1,
        "gradient_steps": 128,
        "ent_coef": 0.05,
        "policy_kwargs": {"net_arch": [64, 64]},
    },
    "ppo": {
        "learning_rate": 1e-3,
        "n_steps": 10,
        "batch_size": 10,
        "n_epochs": 10,
        "gamma": 0.0,
        "gae_lambda": 1.0,
        "policy_kwargs": {"net_arch": [64, 64], "log_std_init": -0.5},
    },
}


class WarmStartSAC(SAC):
    """SB3's SAC whose first env steps take given actions (:attr:`warm_actions`), then its own.

    The same warm start structured TPE gets (ES and MDE as its first two trials): the replay
    buffer starts with two informative points instead of uniform samples, and the policy acts
    from the third step on (``learning_starts`` counts these steps). Only the action choice of
    those steps changes; they are stored and learnt from like any other transition.
    """

    warm_actions: tuple[np.ndarray, ...] = ()

    def _sample_action(
        self, learning_starts: int, action_noise: Any = None, n_envs: int = 1
    ) -> tuple[np.ndarray, np.ndarray]:
        if self.num_timesteps < len(self.warm_actions):
            action = np.tile(self.warm_actions[self.num_timesteps], (n_envs, 1))
            return action, self.policy.scale_action(action)
        return super()._sample_action(learning_starts, action_noise, n_envs)


class RelativeReward(gym.Wrapper):
    """Reward in units of ``unit`` above the first step's (the warm start's ES step).

    q̄ moves by hundredths across the family; a critic fitted with Adam at ``lr = 1e-3``
    resolves differences of order 1 far better, and a fixed entropy weight then means the
    same on every data set. ``info["raw_reward"]`` keeps the wrapped env's reward.
    """

    def __init__(self, env: gym.Env, unit: float) -> None:
        super().__init__(env)
        self.unit, self.base = float(unit), None

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        """The wrapped step, its reward made relative (the first step fixes the base)."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        if self.base is None:
            self.base = float(reward)
        info = dict(info, raw_reward=float(reward))
        return obs, (float(reward) - self.base) / self.unit, terminated, truncated, info


class StructuredRL(TrialLog):
    """An SB3 agent (SAC or PPO) searching the structured family at one budget ``c``.

    Its ``trials``, ``best``, ``sizes`` and ``predict`` are :class:`~agents.structured.TrialLog`'s
    (as for the black-box searches); ``trials`` also has each step's ``reward``.

    Args:
        env: A CIESS env (``gym.make(...)``, an ``EmbeddingSizeEnv`` or a wrapper of one such
            as :class:`~ciess_env.wrappers.RecordBudgetLog`); it is wrapped in
            :class:`~ciess_env.structured_action.StructuredAction` at ``c``.
        c: Target sparsity.
        algorithm: ``"sac"`` or ``"ppo"``.
        seed: Seeds the agent and the env's first reset.
        floor: Act on the floor parameter too (four numbers; else three).
        groups: Popularity groups per side in the observation.
        reward: The wrapper's reward: ``"quality"`` (q̄, the selection score) or ``"env"``.
        warm_start: SAC only: its first actions are ES's and MDE's (default: the
            algorithm's, :data:`ALGORITHMS`).
        reward_unit: Learn from ``(reward − first step's reward) / reward_unit``; ``None``: the
            wrapper's reward itself (default: the algorithm's).
        **kwargs: Overrides of the algorithm's other defaults (:data:`ALGORITHMS`), passed to
            SB3.

    Raises:
        InvalidArgumentError: on an unknown algorithm, a budget the env cannot meet,
            ``warm_start`` with PPO or a ``reward_unit`` that is not a positive number.
    """

    def __init__(
        self,
        env: gym.Env,
        c: float,
        *,
        algorithm: Algorithm = "sac",
        seed: int | None = 0,
        floor: bool = True,
        groups: int = 8,
        reward: Literal["quality", "env"] = "quality",
        warm_start: bool | None = None,
        reward_unit: float | _Default | None = _DEFAULT,
        **kwargs: Any,
    ) -> None:
        if algorithm not in ALGORITHMS:
            msg = f"`algorithm` must be one of {sorted(ALGORITHMS)}, got {algorithm!r}."
            raise InvalidArgumentError(msg)
        params = {**ALGORITHMS[algorithm], **kwargs}
        # Named parameters (so a sweep or compare checks them up front); unset: the defaults.
        default_warm = params.pop("warm_start", False)
        default_unit = params.pop("reward_unit", None)
        warm = bool(default_warm if warm_start is None else warm_start)
        unit = default_unit if reward_unit is _DEFAULT else reward_unit
        if warm and algorithm != "sac":
            msg = "`warm_start` needs off-policy learning: use it with algorithm='sac'."
            raise InvalidArgumentError(msg)
        if unit is not None and not (isinstance(unit, (int, float)) and unit > 0):
            msg = f"`reward_unit` must be a positive number or None, got {unit!r}."
            raise InvalidArgumentError(msg)
        self.structured = StructuredAction(env, c, floor=floor, groups=groups, reward=reward)
        self.env = self.structured if unit is None else RelativeReward(self.structured, unit)
        self.c = float(c)
        self.algorithm = algorithm
        self.seed = seed
        self._mask_kw = sizes_kwargs(env)
        self.model = _build(algorithm, self.env, seed=seed, **params)
        if warm:
            starts = warm_starts(self.c, **self._mask_kw)
            self.model.warm_actions = tuple(
                self.structured.params_to_action(p)[None, :] for p in starts
            )
        self._start_log()

    def learn(self, n_trials: int, progress_bar: bool = False) -> StructuredRL:
        """Run exactly ``n_trials`` more env steps, learning as the algorithm does.

        SAC stops after exactly ``n_trials`` steps by itself. PPO collects whole rollouts of
        ``n_steps``; it is stopped at the step budget, and a rollout cut short is not learnt
        from (pass multiples of ``n_steps`` — whole episodes by default — to lose nothing).

        Raises:
            InvalidArgumentError: if ``n_trials`` is not a positive integer.
        """
        if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 1:
            msg = f"`n_trials` must be a positive integer, got {n_trials!r}."
            raise InvalidArgumentError(msg)
        callback = _StepCallback(self, n_trials, progress_bar=progress_bar)
        self.model.learn(
            total_timesteps=n_trials, callback=callback, reset_num_timesteps=False,
            log_interval=10**9,
        )  # fmt: skip
        callback.close()
        return self

    def _log_step(self, info: dict[str, Any], reward: float) -> None:
        sizes = StructuredSizes.from_params(self.c, info["structured_params"], **self._mask_kw)
        self._record(sizes, info, reward=float(reward))


def _build(algorithm: str, env: gym.Env, *, seed: int | None, **params: Any) -> Any:
    cls = WarmStartSAC if algorithm == "sac" else PPO
    return cls("MlpPolicy", env, seed=seed, verbose=0, device="cpu", **params)


class _StepCallback(BaseCallback):
    """Record every step's parameters and q̄; stop after exactly ``n`` steps."""

    def __init__(self, agent: StructuredRL, n: int, *, progress_bar: bool) -> None:
        super().__init__()
        self.agent, self.n, self.done = agent, n, 0
        from tqdm import tqdm

        self.bar = tqdm(
            total=n, desc=f"{agent.algorithm}-structured", unit="step", disable=not progress_bar
        )

    def _on_step(self) -> bool:
        for info, reward in zip(self.locals["infos"], self.locals["rewards"], strict=True):
            self.agent._log_step(info, float(info.get("raw_reward", reward)))
        self.done += 1
        self.bar.update(1)
        if self.done < self.n or self.agent.algorithm == "sac":
            return True  # SAC's learn ends at the step budget; stopping here loses the step
        # PPO: stop before another env step, unless this step completes the rollout (kept).
        return self.locals["n_steps"] + 1 >= self.model.n_steps

    def close(self) -> None:
        self.bar.close()
