"""Registration: ids, cheap import, gym.make overrides, the module:id form, real data."""

from __future__ import annotations

import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import ciess_env


def test_every_backbone_dataset_pair_is_registered() -> None:
    """32 ids CIESS-{LightGCN,NGCF,NCF,MF}-{ML1M,ML100K,Yelp2018,Synthetic}-{v0,v1} exist."""
    expected = {
        f"CIESS-{b}-{d}-{v}"
        for b in ("LightGCN", "NGCF", "NCF", "MF")
        for d in ("ML1M", "ML100K", "Yelp2018", "Synthetic")
        for v in ("v0", "v1")
    }
    assert set(ciess_env.ENV_IDS) == expected
    assert expected <= set(gym.registry)


def test_registered_defaults_follow_the_paper() -> None:
    """λ is 0.4 on ML-1M and 0.2 on Yelp2018, d_max 128, T = 10 for the env and TimeLimit."""
    ml1m = gym.spec("CIESS-LightGCN-ML1M-v0")
    yelp = gym.spec("CIESS-NGCF-Yelp2018-v0")
    assert ml1m.kwargs["lam"] == 0.4
    assert yelp.kwargs["lam"] == 0.2
    assert ml1m.kwargs["d_max"] == 128
    assert ml1m.max_episode_steps == ml1m.kwargs["max_episode_steps"] == 10
    assert ml1m.entry_point == "ciess_env.env:EmbeddingSizeEnv"


def test_v1_differs_from_v0_only_in_the_step_design(tmp_path) -> None:
    """-v1 stops each step's retraining on validation; -v0 keeps the code's scratch step."""
    for b in ("LightGCN", "NGCF", "NCF", "MF"):
        for d in ("ML1M", "ML100K", "Yelp2018", "Synthetic"):
            v0, v1 = gym.spec(f"CIESS-{b}-{d}-v0"), gym.spec(f"CIESS-{b}-{d}-v1")
            assert "retrain" not in v0.kwargs
            assert v1.kwargs == {**v0.kwargs, "retrain": "converge:50/4"}
            assert v1.max_episode_steps == v0.max_episode_steps
    tiny = {"preset": "tiny", "cache_dir": str(tmp_path),
            "dataset_kwargs": {"n_users": 20, "n_items": 10, "mean_interactions": 4}}  # fmt: skip
    assert str(gym.make("CIESS-MF-Synthetic-v0", **tiny).unwrapped.design) == "scratch"
    env = gym.make("CIESS-MF-Synthetic-v1", **tiny)
    assert str(env.unwrapped.design) == "converge:50/4"
    # a user's own retrain= still wins over the version's
    assert str(gym.make("CIESS-MF-Synthetic-v1", retrain="fast", **tiny).unwrapped.design) == (
        "nested:20"
    )


def test_make_kwargs_override_defaults(tmp_path) -> None:
    """gym.make(id, lam=..., d_max=...) reaches the env."""
    env = gym.make("CIESS-MF-Synthetic-v0", lam=1.5, d_max=32, preset="tiny",
                   dataset_kwargs={"n_users": 20, "n_items": 10, "mean_interactions": 4},
                   cache_dir=str(tmp_path))  # fmt: skip
    assert env.unwrapped.lam == 1.5
    assert env.unwrapped.d_max == 32
    assert env.unwrapped.train_config.n_batches == 8


def test_import_is_cheap(tmp_path) -> None:
    """`import ciess_env` registers the ids without importing torch or the env module."""
    code = (
        "import sys, ciess_env, gymnasium as gym\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
        "assert 'ciess_env.env' not in sys.modules, 'env imported'\n"
        "assert 'CIESS-LightGCN-ML1M-v0' in gym.registry\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path)


def test_module_prefix_makes_without_prior_import(tmp_path) -> None:
    """gym.make("ciess_env:<id>") works in a fresh interpreter that never imported ciess_env."""
    code = (
        "import gymnasium as gym\n"
        "env = gym.make('ciess_env:CIESS-MF-Synthetic-v0', preset='tiny', cache_dir='.',\n"
        "               dataset_kwargs={'n_users': 20, 'n_items': 10, 'mean_interactions': 4})\n"
        "print(env.spec.id, env.action_space.shape)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    assert out.stdout.split("\n")[0] == "CIESS-MF-Synthetic-v0 (30,)"


def test_version_comes_from_metadata() -> None:
    """ciess_env.__version__ is the installed distribution's version."""
    from importlib.metadata import version

    assert ciess_env.__version__ == version("ciess-env")


def _tiny_real_env(env_id: str, data_dir, cache_dir) -> gym.Env:
    """A real-data env with seconds-scale budgets and sizes up to 16."""
    return gym.make(env_id, data_dir=str(data_dir), preset="tiny", batch_size=512,
                    batches_per_step=2, pretrain_max_batches=2, pretrain_eval_every=2,
                    d_max=16, cache_dir=str(cache_dir))  # fmt: skip


@pytest.mark.real_data
@pytest.mark.parametrize("env_id", ["CIESS-LightGCN-ML100K-v0", "CIESS-LightGCN-ML1M-v0"])
def test_check_env_on_real_data(env_id: str, real_data_dir, tmp_path) -> None:
    """check_env passes on the real data sets with a seconds-scale budget."""
    env = _tiny_real_env(env_id, real_data_dir, tmp_path)
    check_env(env.unwrapped)
    env.close()


@pytest.mark.real_data
@pytest.mark.slow
def test_yelp2018_env_resets_and_steps_within_its_spaces(real_data_dir, tmp_path) -> None:
    """Yelp2018's env resets and steps inside its spaces at the data set's real size.

    check_env's API checks do not depend on the data (the test above runs them on two real
    sets); it would evaluate six times, and one full ranking of Yelp2018 (31,668 users ×
    38,048 items) takes seconds even at width 16, so here one reset and one step.
    """
    env = _tiny_real_env("CIESS-LightGCN-Yelp2018-v0", real_data_dir, tmp_path)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (31_668 + 38_048, env.observation_space.shape[1])
    assert env.observation_space.contains(obs)
    action = env.action_space.sample()
    obs, reward, terminated, truncated, info = env.step(action)
    assert env.observation_space.contains(obs)
    assert np.isfinite(reward).all()
    assert (terminated, truncated) == (False, False)
    assert 0.0 < info["sparsity"] < 1.0
    env.close()
