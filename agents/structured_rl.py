"""SB3's SAC and PPO searching the structured action space, one search per budget.

The agents of issue 33: an off-the-shelf SB3 algorithm on
:class:`~ciess_env.structured_action.StructuredAction` (the four-number family of
:mod:`agents.structured`, whose every mask spends the budget exactly), with no custom policy.
:class:`StructuredRL` gives them the interface of the black-box searches
(:class:`~agents.structured.StructuredSearch`): ``learn(n_trials)`` runs that many env steps,
``predict`` returns the best mask found, and the masks go through the same selective and final
retraining as every other agent (``compare``, ``SearchSession.budget_search``, the CLI).

Defaults (tuned on the synthetic set, ``docs/structured_action.md`` has the curves):

* ``gamma = 0``: each step retrains a fresh model, so a step's reward depends on its own action
  only and the state carries no consequence of it; the problem is a bandit, and discounting
  future rewards would only add the critic's bootstrapping noise.
* SAC learns after ``learning_starts = 10`` uniform steps (one episode), with
  ``gradient_steps = 4`` updates per env step (an env step costs seconds, an update
  milliseconds), a 64-64 network and a 10k buffer. The entropy weight is fixed at 0.005:
  q̄ moves by a few hundredths across the family, and SB3's automatic weight starts at 1,
  which keeps the policy uniform for hundreds of steps (SCALL fixes α = 0.2 on a reward
  rescaled to [0, 10], the same ratio).
* PPO updates after every episode (``n_steps = 10``), 10 epochs of minibatches of 10, initial
  action std e^−0.5 ≈ 0.6 (std 1 would put most actions at the edges after clipping).
"""

from __future__ import annotations

from typing import Any, Literal

import gymnasium as gym
from stable_baselines3.common.callbacks import BaseCallback

from agents.structured import StructuredSizes, TrialLog, sizes_kwargs
from ciess_env.errors import InvalidArgumentError
from ciess_env.structured_action import StructuredAction

__all__ = ["ALGORITHMS", "StructuredRL"]

Algorithm = Literal["sac", "ppo"]

#: Algorithm → its defaults on the structured action (overridable by keyword).
ALGORITHMS: dict[str, dict[str, Any]] = {
    "sac": {
        "learning_rate": 1e-3,
        "buffer_size": 10_000,
        "learning_starts": 10,
        "batch_size": 64,
        "gamma": 0.0,
        "train_freq": 1,
        "gradient_steps": 4,
        "ent_coef": 0.005,
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
        **kwargs: Overrides of the algorithm's defaults (:data:`ALGORITHMS`), passed to SB3.

    Raises:
        InvalidArgumentError: on an unknown algorithm, or a budget the env cannot meet.
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
        **kwargs: Any,
    ) -> None:
        if algorithm not in ALGORITHMS:
            msg = f"`algorithm` must be one of {sorted(ALGORITHMS)}, got {algorithm!r}."
            raise InvalidArgumentError(msg)
        self.env = StructuredAction(env, c, floor=floor, groups=groups, reward=reward)
        self.c = float(c)
        self.algorithm = algorithm
        self.seed = seed
        self._mask_kw = sizes_kwargs(env)
        params = {**ALGORITHMS[algorithm], **kwargs}
        self.model = _build(algorithm, self.env, seed=seed, **params)
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
    from stable_baselines3 import PPO, SAC

    cls = SAC if algorithm == "sac" else PPO
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
            self.agent._log_step(info, float(reward))
        self.done += 1
        self.bar.update(1)
        if self.done < self.n or self.agent.algorithm == "sac":
            return True  # SAC's learn ends at the step budget; stopping here loses the step
        # PPO: stop before another env step, unless this step completes the rollout (kept).
        return self.locals["n_steps"] + 1 >= self.model.n_steps

    def close(self) -> None:
        self.bar.close()
