"""A tiny stand-in for the per-entity vector env, so agent tests need no recommender.

Same observation/action layout as ``ciess_env.vector.EntityVecEnv``: one sub-env per user and
item (users first), observation ``[type (−1 user, +1 item), popularity, size, 2q − 1]`` in
[−1, 1], action (1,) in [−1, 1] mapped to a size, one step for all entities at once. The
"quality" is a cheap saturating proxy ``q = 1 − exp(−d / s)``, with a scale ``s`` that grows with
popularity, and the reward is the paper's ``q − λ (d / d_max)²``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from gymnasium import spaces
from stable_baselines3.common.vec_env import VecEnv

from ciess_env.spaces import action_to_sizes, scale_popularity, scale_sizes


class FakeEntityVecEnv(VecEnv):
    """Per-entity vector env with a synthetic quality; episodes end by truncation."""

    def __init__(
        self,
        n_users: int = 12,
        n_items: int = 8,
        *,
        lam: float = 0.4,
        d_min: int = 1,
        d_max: int = 128,
        episode_length: int = 10,
        seed: int = 0,
    ) -> None:
        rng = np.random.default_rng(seed)
        self.n_users, self.n_items = n_users, n_items
        self.d_min, self.d_max = d_min, d_max
        self.lam, self.episode_length = lam, episode_length
        self.render_mode = None
        self.user_freq = rng.integers(1, 200, n_users)
        self.item_freq = rng.integers(1, 300, n_items)
        n = n_users + n_items
        self.entity_type = np.r_[-np.ones(n_users), np.ones(n_items)].astype(np.float32)
        self.popularity = np.r_[
            scale_popularity(self.user_freq), scale_popularity(self.item_freq)
        ].astype(np.float32)
        self.quality_scale = 4.0 + 20.0 * (self.popularity + 1.0)
        self.sizes = np.full(n, d_max, dtype=np.int64)
        self.t = 0
        self._actions: np.ndarray | None = None
        super().__init__(
            n,
            spaces.Box(-1.0, 1.0, (4,), np.float32),
            spaces.Box(-1.0, 1.0, (1,), np.float32),
        )

    def _quality(self) -> np.ndarray:
        return 1.0 - np.exp(-self.sizes / self.quality_scale)

    def _obs(self) -> np.ndarray:
        size = scale_sizes(self.sizes, d_min=self.d_min, d_max=self.d_max)
        q = (2.0 * self._quality() - 1.0).astype(np.float32)
        return np.stack([self.entity_type, self.popularity, size, q], axis=1)

    def reset(self) -> np.ndarray:
        """Start an episode with every size at d_max (paper §1.2)."""
        self.sizes[:] = self.d_max
        self.t = 0
        return self._obs()

    def step_async(self, actions: np.ndarray) -> None:
        """Store the (n, 1) actions for step_wait."""
        self._actions = np.asarray(actions)

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        """Apply the sizes; reward q − λ(d/d_max)²; truncate and auto-reset after T steps."""
        self.sizes = action_to_sizes(
            self._actions, n=self.num_envs, d_min=self.d_min, d_max=self.d_max
        )
        rewards = (self._quality() - self.lam * (self.sizes / self.d_max) ** 2).astype(np.float32)
        self.t += 1
        obs = self._obs()
        done = self.t >= self.episode_length
        dones = np.full(self.num_envs, done)
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        if done:
            for i, info in enumerate(infos):
                info["terminal_observation"] = obs[i]
                info["TimeLimit.truncated"] = True
            obs = self.reset()
        return obs, rewards, dones, infos

    def close(self) -> None:
        """Nothing to release."""

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        """The env-level attribute, once per requested index."""
        value = getattr(self, attr_name)
        return [value] * len(self._get_indices(indices))

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        """Set an env-level attribute."""
        setattr(self, attr_name, value)

    def env_method(self, method_name: str, *args: Any, indices: Any = None, **kw: Any) -> list:
        """Call an env-level method once; repeat its result per index."""
        return [getattr(self, method_name)(*args, **kw)] * len(self._get_indices(indices))

    def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
        """Never wrapped."""
        return [False] * len(self._get_indices(indices))


@pytest.fixture
def make_env() -> type[FakeEntityVecEnv]:
    """The fake env class, for tests that need non-default settings or several instances."""
    return FakeEntityVecEnv


@pytest.fixture
def fake_env() -> FakeEntityVecEnv:
    """12 users + 8 items, λ = 0.4, sizes 1..128."""
    return FakeEntityVecEnv()


@pytest.fixture
def tiny_kwargs() -> dict[str, Any]:
    """Small networks and batches so that agent tests stay fast on two cores."""
    return {
        "batch_size": 64,
        "policy_kwargs": {"net_arch": [32, 32]},
        "seed": 0,
        "device": "cpu",
    }
