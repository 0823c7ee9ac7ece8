"""EntityVectorEnv: the per-entity view as a Gymnasium ``VectorEnv`` (spaces, autoreset, seeds)."""

from __future__ import annotations

import re

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.utils.env_checker import data_equivalence
from gymnasium.utils.passive_env_checker import check_obs
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space
from gymnasium.wrappers.vector import ClipAction, RecordEpisodeStatistics

from ciess_env.entity_vector import EntityVectorEnv
from ciess_env.vector import EntityVecEnv
from ciess_env.wrappers import DiscreteSizes

DATA = {"n_users": 30, "n_items": 20, "mean_interactions": 6}
N = 50
T = 3


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A private pretrain cache for this module."""
    return str(tmp_path_factory.mktemp("ciess-cache"))


def make_envs(cache_dir: str, **kwargs: object) -> EntityVectorEnv:
    return EntityVectorEnv(
        "CIESS-MF-Synthetic-v1", preset="tiny", dataset_kwargs=DATA, cache_dir=cache_dir,
        max_episode_steps=T, **kwargs,
    )  # fmt: skip


def rollout(envs: VectorEnv, seed: int, steps: int) -> list:
    """Everything a seeded run of fixed actions returns (actions drawn from their own seed)."""
    out = [envs.reset(seed=seed)]
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        out.append(envs.step(rng.uniform(-1, 1, (N, 1)).astype(np.float32)))
    return out


def test_single_and_batched_spaces(cache_dir: str) -> None:
    """One entity: (4,) obs, (1,) action; batched: Gymnasium's batch_space of them."""
    envs = make_envs(cache_dir)
    assert isinstance(envs, VectorEnv)
    assert envs.num_envs == N
    assert envs.single_observation_space == spaces.Box(-1, 1, (4,), np.float32)
    assert envs.single_action_space == spaces.Box(-1, 1, (1,), np.float32)
    assert envs.observation_space == batch_space(envs.single_observation_space, N)
    assert envs.action_space == batch_space(envs.single_action_space, N)
    assert envs.action_space.shape == (N, 1)
    assert envs.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP

    discrete = EntityVectorEnv(DiscreteSizes(envs.env, sizes=(8, 32, 128)))
    assert discrete.single_action_space == spaces.Discrete(3)
    assert discrete.action_space == spaces.MultiDiscrete([3] * N)
    discrete.reset(seed=0)
    _, _, _, _, infos = discrete.step(np.full(N, 1))
    np.testing.assert_array_equal(infos["size"], 32)


def test_returns_pass_gymnasiums_checks(cache_dir: str) -> None:
    """Obs in the batched space (Gymnasium's check_obs), vector infos with masks, fresh arrays."""
    envs = make_envs(cache_dir)
    obs, infos = envs.reset(seed=0)
    check_obs(obs, envs.observation_space, "reset")
    assert set(infos) == {"size", "_size", "quality_ratio", "_quality_ratio"}
    np.testing.assert_array_equal(infos["size"], 128)
    assert infos["_size"].dtype == np.bool_
    assert infos["_size"].all()
    obs2, rewards, terminations, truncations, infos = envs.step(envs.action_space.sample())
    check_obs(obs2, envs.observation_space, "step")
    assert obs2 is not obs
    assert not np.shares_memory(obs, obs2)
    assert rewards.shape == terminations.shape == truncations.shape == (N,)
    assert rewards.dtype == np.float64
    assert terminations.dtype == truncations.dtype == np.bool_
    np.testing.assert_allclose(rewards, envs.last_info["entity_rewards"], rtol=1e-6)
    np.testing.assert_array_equal(
        infos["size"], np.concatenate([envs.last_info["user_sizes"], envs.last_info["item_sizes"]])
    )


def test_same_seed_same_run_and_seed_list_equals_its_first_entry(cache_dir: str) -> None:
    """reset(seed=s) is reproducible (Gymnasium's data_equivalence); a list uses its first seed."""
    envs = make_envs(cache_dir)
    a = rollout(envs, 7, 2)
    b = rollout(envs, 7, 2)
    assert data_equivalence(a, b, exact=True)
    c = [envs.reset(seed=[7] + [None] * (N - 1))]
    rng = np.random.default_rng(7)
    c += [envs.step(rng.uniform(-1, 1, (N, 1)).astype(np.float32)) for _ in range(2)]
    assert data_equivalence(a, c, exact=True)
    with pytest.raises(ValueError, match=re.escape("a list of 50 seeds (one per sub-environment)")):
        envs.reset(seed=[1, 2])


def test_next_step_autoreset(cache_dir: str) -> None:
    """Step T truncates every entity; step T+1 ignores actions, resets, reward 0, no flags."""
    envs = make_envs(cache_dir)
    envs.reset(seed=0)
    low = -np.ones((N, 1), dtype=np.float32)
    for _ in range(T - 1):
        _, _, terminations, truncations, _ = envs.step(low)
        assert not truncations.any()
        assert not terminations.any()
    obs, _, terminations, truncations, infos = envs.step(low)
    assert truncations.all()
    assert not terminations.any()
    assert np.all(obs[:, 2] == -1.0)  # the last observation: every size d_min
    np.testing.assert_array_equal(infos["size"], 1)
    obs, rewards, terminations, truncations, infos = envs.step(low)
    assert np.all(obs[:, 2] == 1.0)  # the reset observation: every size d_max
    np.testing.assert_array_equal(rewards, 0.0)
    assert not terminations.any()
    assert not truncations.any()
    np.testing.assert_array_equal(infos["size"], 128)
    obs, rewards, _, truncations, _ = envs.step(low)  # a normal step of the new episode
    assert np.all(obs[:, 2] == -1.0)
    assert not truncations.any()
    assert np.all(rewards != 0.0)


def test_same_step_autoreset_puts_the_last_step_in_final_obs(cache_dir: str) -> None:
    """Step T returns the reset obs; final_obs / final_info hold the truncating step's."""
    envs = make_envs(cache_dir, autoreset_mode="same_step")
    assert envs.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    envs.reset(seed=0)
    low = -np.ones((N, 1), dtype=np.float32)
    for _ in range(T - 1):
        envs.step(low)
    obs, _, _, truncations, infos = envs.step(low)
    assert truncations.all()
    assert np.all(obs[:, 2] == 1.0)
    assert infos["final_obs"].dtype == object
    assert infos["_final_obs"].all()
    final = np.stack(infos["final_obs"])
    assert final.shape == (N, 4)
    assert np.all(final[:, 2] == -1.0)
    np.testing.assert_array_equal(infos["final_info"]["size"], 1)
    np.testing.assert_array_equal(infos["size"], 128)


def test_disabled_autoreset_refuses_to_step_an_ended_episode(cache_dir: str) -> None:
    """Autoreset disabled: stepping past T raises RuntimeError until reset is called."""
    envs = make_envs(cache_dir, autoreset_mode=AutoresetMode.DISABLED)
    envs.reset(seed=0)
    zeros = np.zeros((N, 1), dtype=np.float32)
    for _ in range(T):
        envs.step(zeros)
    with pytest.raises(RuntimeError, match="reset"):
        envs.step(zeros)
    envs.reset()
    assert not envs.step(zeros)[3].any()


def test_gymnasium_vector_wrappers_count_each_entitys_episode(cache_dir: str) -> None:
    """RecordEpisodeStatistics (what cleanrl uses) reports each entity's return after T steps."""
    envs = ClipAction(RecordEpisodeStatistics(make_envs(cache_dir)))
    envs.reset(seed=1)
    total = np.zeros(N)
    for _ in range(T):
        _, rewards, _, _, infos = envs.step(np.full((N, 1), 2.0, dtype=np.float32))  # clipped
        total += rewards
    assert infos["_episode"].all()
    np.testing.assert_allclose(infos["episode"]["r"], total, rtol=1e-6)
    np.testing.assert_array_equal(infos["episode"]["l"], T)


def test_sb3_view_is_the_gymnasium_view(cache_dir: str) -> None:
    """EntityVecEnv (SB3) steps through EntityVectorEnv: same obs, rewards and end of episode."""
    gym_envs = make_envs(cache_dir, autoreset_mode="same_step")
    sb3_env = EntityVecEnv(make_envs(cache_dir).env)
    assert isinstance(sb3_env.vector, EntityVectorEnv)
    obs_g, _ = gym_envs.reset(seed=3)
    sb3_env.seed(3)
    np.testing.assert_array_equal(sb3_env.reset(), obs_g)
    rng = np.random.default_rng(0)
    for _ in range(T):
        actions = rng.uniform(-1, 1, (N, 1)).astype(np.float32)
        obs_g, r_g, _, trunc_g, info_g = gym_envs.step(actions)
        obs_s, r_s, dones, infos = sb3_env.step(actions)
        np.testing.assert_array_equal(obs_s, obs_g)
        np.testing.assert_allclose(r_s, r_g, rtol=1e-6)
        np.testing.assert_array_equal(dones, trunc_g)
    terminal = np.stack([info["terminal_observation"] for info in infos])
    np.testing.assert_array_equal(terminal, np.stack(info_g["final_obs"]))


def test_bad_arguments_are_named(cache_dir: str) -> None:
    """Unknown autoreset mode, partial reset mask, wrong action shape, a non-CIESS env."""
    with pytest.raises(ValueError, match=re.escape("`autoreset_mode` must be one of ['next_step'")):
        make_envs(cache_dir, autoreset_mode="sometimes")
    envs = make_envs(cache_dir)
    mask = np.ones(N, dtype=np.bool_)
    mask[0] = False
    with pytest.raises(ValueError, match="can only reset together"):
        envs.reset(seed=0, options={"reset_mask": mask})
    envs.reset(seed=0, options={"reset_mask": np.ones(N, dtype=np.bool_)})
    with pytest.raises(ValueError, match=re.escape("`actions` must have shape (50, 1)")):
        envs.step(np.zeros((49, 1)))
    with pytest.raises(TypeError, match="must be an EmbeddingSizeEnv"):
        EntityVectorEnv(gym.make("CartPole-v1"))


def test_a_flattened_table_env_gives_the_same_per_entity_view(cache_dir: str) -> None:
    """Over FlattenObservation (the recipe for table-level MLP agents) the rows are unchanged."""
    kwargs = {"preset": "tiny", "dataset_kwargs": DATA, "cache_dir": cache_dir}
    flat = gym.wrappers.FlattenObservation(gym.make("CIESS-MF-Synthetic-v1", **kwargs))
    a = rollout(EntityVectorEnv(flat), 4, 2)
    b = rollout(EntityVectorEnv("CIESS-MF-Synthetic-v1", **kwargs), 4, 2)
    assert a[0][0].shape == (N, 4)
    assert data_equivalence(a, b, exact=True)
