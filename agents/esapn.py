"""An ESAPN-style agent: RL over a few discrete candidate sizes, through the env.

ESAPN (Liu et al., SIGIR 2020) is the RL method CIESS set out to beat: each user and item
chooses among six candidate sizes rather than any size in [1, 128] (CIESS paper §6). Here it is
built from public parts, to show that another agent needs nothing but a wrapper:

* the env is wrapped in :class:`ciess_env.wrappers.DiscreteSizes` (candidates
  :data:`~ciess_env.wrappers.ESAPN_SIZES`), and :class:`~ciess_env.vector.EntityVecEnv` turns it
  into one ``Discrete(6)`` sub-environment per user and item;
* SB3's ``DQN`` with one shared 256-256 Q-network (the entity-type feature tells users from
  items), one gradient step per env step on a batch of 4,096 transitions from a replay buffer of
  100 steps of every entity (as the paper's TD3), ε-greedy exploration decaying from 1 to 0.05
  over the first half of the search, target network synced once per episode.

Differences from ESAPN: ESAPN's policy decides per entity whether to *enlarge* its current size
to the next candidate (sizes only grow, from the smallest), with a frequency-aware state and a
REINFORCE-style update; here the action picks a candidate directly and the reward is the env's
(paper Eq. 10), so the comparison with CIESS isolates the action space (6 choices vs 128).
Like ESAPN, the agent cannot target a budget: the env's budget log collects every assignment it
tried, and selective retraining keeps those that meet each budget (a budget it never reached
reports no result).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
from stable_baselines3 import DQN
from stable_baselines3.common.vec_env import VecEnv

from ciess_env.wrappers import ESAPN_SIZES, DiscreteSizes

__all__ = ["make_esapn", "wrap_esapn_env"]


def wrap_esapn_env(env: gym.Env, sizes: tuple[int, ...] = ESAPN_SIZES) -> DiscreteSizes:
    """The env as ESAPN sees it: every entity picks one of ``sizes``."""
    return DiscreteSizes(env, sizes)


def make_esapn(env: VecEnv, **kw: Any) -> DQN:
    """SB3 ``DQN`` with the defaults above on a per-entity vector env with ``Discrete`` actions.

    Args:
        env: ``EntityVecEnv(wrap_esapn_env(env))``.
        **kw: Overrides of the DQN constructor's arguments.
    """
    kw.pop("d_min", None)
    kw.pop("d_max", None)
    n = env.num_envs
    params: dict[str, Any] = {
        "learning_rate": 1e-3,
        "buffer_size": 100 * n,
        "learning_starts": 0,
        "batch_size": 4096,
        "gamma": 0.99,
        "train_freq": 1,
        "gradient_steps": 1,
        # SB3 counts timesteps over all sub-environments: N per env step, 10 N per episode.
        "target_update_interval": 10 * n,
        "exploration_fraction": 0.5,
        "exploration_initial_eps": 1.0,
        "exploration_final_eps": 0.05,
        "policy_kwargs": {"net_arch": [256, 256]},
    }
    params.update(kw)
    return DQN("MlpPolicy", env, **params)
