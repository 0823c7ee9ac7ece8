"""The ESAPN-style agent: the DiscreteSizes wrapper, Discrete sub-envs, DQN through the env."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3 import DQN
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from agents.registry import make_agent, wrap_env_for
from ciess_env.budget_log import BudgetLog
from ciess_env.env import EmbeddingSizeEnv
from ciess_env.vector import EntityVecEnv
from ciess_env.wrappers import ESAPN_SIZES, DiscreteSizes, RecordBudgetLog

DATA = {"n_users": 30, "n_items": 20, "mean_interactions": 6}


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("ciess-cache"))


def make_env(cache_dir: str, **kw: object) -> EmbeddingSizeEnv:
    return EmbeddingSizeEnv(
        dataset="synthetic", backbone="mf", preset="tiny", dataset_kwargs=DATA,
        cache_dir=cache_dir, max_episode_steps=3, **kw,
    )  # fmt: skip


def test_wrapper_maps_indices_to_candidate_sizes(cache_dir: str) -> None:
    env = DiscreteSizes(make_env(cache_dir))
    assert env.action_space == spaces.MultiDiscrete(np.full(50, 6))
    env.reset(seed=0)
    idx = np.arange(50) % 6
    _, _, _, _, info = env.step(idx)
    sizes = np.asarray(ESAPN_SIZES)[idx]
    np.testing.assert_array_equal(info["user_sizes"], sizes[:30])
    np.testing.assert_array_equal(info["item_sizes"], sizes[30:])


# Gymnasium's checker warns that a wrapped env is being checked: that is the point here.
@pytest.mark.filterwarnings("ignore:.*is different from the unwrapped version")
def test_wrapped_env_passes_gymnasium_and_sb3_checkers(cache_dir: str) -> None:
    env = DiscreteSizes(make_env(cache_dir), sizes=(1, 8, 64))
    gym_check_env(env, skip_render_check=True)
    sb3_check_env(env, warn=False, skip_render_check=True)


def test_bad_sizes_and_actions_raise_clear_errors(cache_dir: str) -> None:
    base = make_env(cache_dir)
    with pytest.raises(ValueError, match="strictly increasing integers"):
        DiscreteSizes(base, sizes=(4, 2))
    with pytest.raises(ValueError, match=r"must lie in \[d_min, d_max\] = \[1, 128\]"):
        DiscreteSizes(base, sizes=(2, 256))
    env = DiscreteSizes(base)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"must have shape \(50,\)"):
        env.step(np.zeros(49, dtype=np.int64))
    with pytest.raises(ValueError, match=r"indices must lie in \[0, 6\), got values in \[0, 6\]"):
        env.step(np.r_[np.zeros(49, dtype=np.int64), 6])


def test_vector_env_has_one_discrete_sub_env_per_entity(cache_dir: str) -> None:
    venv = EntityVecEnv(DiscreteSizes(make_env(cache_dir)))
    assert venv.num_envs == 50
    assert venv.action_space == spaces.Discrete(6)
    venv.reset()
    _, rewards, _, infos = venv.step(np.full(50, 2))
    assert rewards.shape == (50,)
    assert {i["size"] for i in infos} == {8}


def test_esapn_agent_searches_through_the_env_and_is_deterministic(cache_dir: str) -> None:
    """DQN fills the budget log with candidate-size assignments; same seed, same log."""

    def run() -> BudgetLog:
        recorder = RecordBudgetLog(wrap_env_for("esapn", make_env(cache_dir)), budgets=None)
        venv = EntityVecEnv(recorder)
        venv.seed(0)
        model = make_agent("esapn", venv, seed=0, batch_size=64)
        assert isinstance(model, DQN)
        model.learn(total_timesteps=6 * venv.num_envs)
        return recorder.budget_log

    a, b = run(), run()
    assert len(a) == 6
    for ea, eb in zip(a, b, strict=True):
        assert set(np.unique(ea.user_sizes)) <= set(ESAPN_SIZES)
        np.testing.assert_array_equal(ea.user_sizes, eb.user_sizes)
        np.testing.assert_array_equal(ea.item_sizes, eb.item_sizes)


def test_make_agent_says_how_to_build_the_discrete_env(cache_dir: str) -> None:
    venv = EntityVecEnv(make_env(cache_dir))
    with pytest.raises(ValueError, match=r"Discrete action space for agent 'esapn'.*wrap_env_for"):
        make_agent("esapn", venv)
