"""The team reward and a λ that changes between steps (agents built for the budget)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import ciess_env  # noqa: F401  (registers the env ids)
from ciess_env import spaces
from ciess_env.env import EmbeddingSizeEnv
from ciess_env.vector import EntityVecEnv


def test_team_reward_gives_everyone_the_table_quality_on_known_values() -> None:
    q = np.array([1.0, 0.5, 0.0, 0.5])
    sizes = np.array([128, 64, 32, 64])
    r = spaces.entity_rewards(q=q, quality=q * 0.3, sizes=sizes, lam=0.4, d_max=128, variant="team")
    np.testing.assert_allclose(r, 0.5 - 0.4 * np.array([1.0, 0.25, 0.0625, 0.25]))
    paper = spaces.entity_rewards(q=q, quality=q, sizes=sizes, lam=0.4, d_max=128)
    assert r.mean() == pytest.approx(paper.mean())  # same scalar reward, other credit
    with pytest.raises(ValueError, match="must be one of"):
        spaces.entity_rewards(q=q, quality=q, sizes=sizes, lam=0.4, d_max=128, variant="diff")


def test_size_penalty_is_the_memory_term_of_every_variant() -> None:
    sizes, q = np.array([1, 16, 128]), np.array([0.2, 0.6, 0.9])
    for variant in spaces.REWARD_VARIANTS:
        zero = spaces.entity_rewards(
            q=q, quality=q, sizes=sizes, lam=0.0, d_max=128, variant=variant
        )
        one = spaces.entity_rewards(
            q=q, quality=q, sizes=sizes, lam=1.0, d_max=128, variant=variant
        )
        penalty = spaces.size_penalty(sizes, d_max=128, variant=variant)
        np.testing.assert_allclose(zero - one, penalty)
    assert spaces.size_penalty(np.array([1]), d_max=128, variant="code")[0] == 0.0


def test_env_team_reward_is_the_mean_quality_ratio_minus_own_cost(tiny_kwargs) -> None:
    env = EmbeddingSizeEnv(reward="team", **tiny_kwargs)
    paper = EmbeddingSizeEnv(**tiny_kwargs)
    rng = np.random.default_rng(0)
    us, its = rng.integers(1, 129, 40), rng.integers(1, 129, 30)
    out = []
    for e in (env, paper):
        e.reset(seed=3)
        out.append(e.step(e.sizes_to_action(us, its)))
    (_, r_team, *_, info), (_, r_paper, *_, info_paper) = out
    d = np.concatenate([us, its])
    expected = info["mean_quality_ratio"] - 0.4 * (d / 128) ** 2
    np.testing.assert_allclose(info["entity_rewards"], expected, atol=1e-6)
    assert info["mean_quality_ratio"] == info_paper["mean_quality_ratio"]  # same seed, same step
    assert r_team == pytest.approx(r_paper, abs=1e-6)
    assert not np.allclose(info["entity_rewards"], info_paper["entity_rewards"])


def test_unknown_reward_is_named(tiny_kwargs) -> None:
    with pytest.raises(ValueError, match=r"`reward` must be one of \['paper', 'code', 'team'\]"):
        EmbeddingSizeEnv(reward="difference", **tiny_kwargs)


def test_lam_changes_between_steps_without_a_rebuild(tiny_kwargs) -> None:
    kwargs = {k: v for k, v in tiny_kwargs.items() if k not in ("dataset", "backbone")}
    env = gym.make("CIESS-MF-Synthetic-v0", **kwargs)
    vec = EntityVecEnv(env)
    vec.seed(0)
    vec.reset()
    vec.step(np.zeros((70, 1), dtype=np.float32))
    vec.set_attr("lam", 2.0)
    assert env.unwrapped.lam == 2.0
    obs, rewards, _, infos = vec.step(np.zeros((70, 1), dtype=np.float32))
    q = (obs[:, 3].astype(np.float64) + 1) / 2
    d = np.array([i["size"] for i in infos], dtype=np.float64)
    np.testing.assert_allclose(rewards, q - 2.0 * (d / 128) ** 2, atol=1e-6)
    with pytest.raises(ValueError, match="`lam` must be a finite number >= 0"):
        env.unwrapped.lam = -1.0
    with pytest.raises(ValueError, match="`lam` must be a finite number >= 0"):
        env.unwrapped.lam = float("nan")
