"""EntityVecEnv: the per-entity SB3 VecEnv contract, and that SB3 agents learn on it."""

from __future__ import annotations

import re

import numpy as np
import pytest
from stable_baselines3 import DDPG, SAC, TD3
from stable_baselines3.common.monitor import Monitor

from ciess_env.env import EmbeddingSizeEnv
from ciess_env.vector import EntityVecEnv
from ciess_env.wrappers import RecordBudgetLog

DATA = {"n_users": 30, "n_items": 20, "mean_interactions": 6}


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A private pretrain cache for this module."""
    return str(tmp_path_factory.mktemp("ciess-cache"))


def make_venv(cache_dir: str, **overrides: object) -> EntityVecEnv:
    kwargs = {
        "preset": "tiny",
        "dataset_kwargs": DATA,
        "cache_dir": cache_dir,
        "max_episode_steps": 3,
        **overrides,
    }
    return EntityVecEnv("CIESS-MF-Synthetic-v0", **kwargs)


def test_shapes_are_per_entity(cache_dir: str) -> None:
    """50 entities → num_envs 50, obs (50, 4), rewards (50,), dones (50,), one info each."""
    venv = make_venv(cache_dir)
    assert venv.num_envs == 50
    assert venv.observation_space.shape == (4,)
    assert venv.action_space.shape == (1,)
    obs = venv.reset()
    assert obs.shape == (50, 4)
    obs, rewards, dones, infos = venv.step(np.zeros((50, 1), dtype=np.float32))
    assert obs.shape == (50, 4)
    assert rewards.shape == (50,)
    assert dones.shape == (50,)
    assert not dones.any()
    assert len(infos) == 50
    np.testing.assert_allclose(rewards, venv.last_info["entity_rewards"])
    assert infos[0]["size"] == 65


def test_truncation_marks_every_entity_done_with_terminal_observation(cache_dir: str) -> None:
    """At step T all sub-envs are done with terminal_observation, truncated, then auto-reset."""
    venv = make_venv(cache_dir)
    venv.reset()
    low = -np.ones((50, 1), dtype=np.float32)
    for _ in range(2):
        _, _, dones, _ = venv.step(low)
        assert not dones.any()
    obs, _, dones, infos = venv.step(low)
    assert dones.all()
    assert all(info["TimeLimit.truncated"] is True for info in infos)
    terminal = np.stack([info["terminal_observation"] for info in infos])
    assert np.all(terminal[:, 2] == -1.0)  # size d_min at the end of the episode
    assert np.all(obs[:, 2] == 1.0)  # auto-reset: size d_max


def test_attribute_methods_act_on_the_shared_env(cache_dir: str) -> None:
    """get_attr/set_attr/env_method/env_is_wrapped answer once per index for the shared env."""
    venv = make_venv(cache_dir)
    assert venv.get_attr("lam", indices=[0, 49]) == [0.4, 0.4]
    venv.set_attr("lam", 2.0)
    assert venv.env.unwrapped.lam == 2.0
    out = venv.env_method("sizes_to_action", np.full(30, 1), np.full(20, 1), indices=0)
    assert out[0].shape == (50,)
    assert venv.env_is_wrapped(Monitor) == [False] * 50
    assert len(venv.seed(3)) == 50
    with pytest.raises(ValueError, match=re.escape("`actions` must have shape (50, 1)")):
        venv.step_async(np.zeros((49, 1)))


def test_vector_env_wraps_an_env_instance(cache_dir: str) -> None:
    """A ready EmbeddingSizeEnv can be wrapped; seeding the vec env makes reset reproducible."""
    env = EmbeddingSizeEnv(dataset="synthetic", backbone="mf", preset="tiny",
                           dataset_kwargs=DATA, cache_dir=cache_dir)  # fmt: skip
    venv = EntityVecEnv(env)
    venv.seed(5)
    a = venv.reset()
    venv.seed(5)
    np.testing.assert_array_equal(a, venv.reset())


@pytest.mark.parametrize("algo", [TD3, DDPG, SAC], ids=lambda a: a.__name__)
def test_sb3_agents_learn_to_shrink_sizes_under_a_large_memory_weight(
    algo: type, cache_dir: str
) -> None:
    """λ = 4: after 20 env steps (1,000 transitions) the greedy mean size is below d_max / 2."""
    kwargs = {"lam": 4.0, "d_max": 16, "max_episode_steps": 5, "batches_per_step": 2}
    recorder = RecordBudgetLog(make_venv(cache_dir, **kwargs).env, budgets=None)
    venv = EntityVecEnv(recorder)
    model = algo(
        "MlpPolicy", venv, buffer_size=2_000, batch_size=64, learning_starts=50,
        gradient_steps=4, learning_rate=3e-3, policy_kwargs={"net_arch": [16]}, seed=0,
    )  # fmt: skip
    model.learn(total_timesteps=50 * 20)
    action, _ = model.predict(venv.reset(), deterministic=True)
    users, items = venv.env.unwrapped.action_to_sizes(action)
    mean_size = float(np.concatenate([users, items]).mean())
    assert mean_size < 16 / 2
    assert len(recorder.budget_log) == len(recorder.budget_log.steps) == 20
