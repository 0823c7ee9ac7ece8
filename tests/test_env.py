"""EmbeddingSizeEnv: spaces, action mapping, rewards, determinism, check_env, rendering."""

from __future__ import annotations

import re

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import ciess_env
from ciess_env import spaces
from ciess_env.env import EmbeddingSizeEnv
from ciess_env.errors import DataNotFoundError
from ciess_env.retrain import RetrainDesign
from ciess_env.wrappers import RecordBudgetLog

TINY_DATA = {"n_users": 40, "n_items": 30, "mean_interactions": 8}


@pytest.fixture(scope="module")
def tiny_kwargs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Settings for a seconds-scale env: tiny preset, 40 × 30 synthetic users × items."""
    return {
        "preset": "tiny",
        "dataset_kwargs": TINY_DATA,
        "cache_dir": str(tmp_path_factory.mktemp("ciess-cache")),
    }


@pytest.fixture
def env(tiny_kwargs: dict) -> EmbeddingSizeEnv:
    """A tiny MF env on synthetic data (unwrapped)."""
    return EmbeddingSizeEnv(dataset="synthetic", backbone="mf", **tiny_kwargs)


# ------------------------------------------------------------------ formulas
def test_paper_reward_matches_eq10_on_known_values() -> None:
    """R = q − λ(d/d_max)²: q = (1, 0.5, 0), d = (128, 64, 1), λ = 0.4."""
    r = spaces.entity_rewards(
        q=np.array([1.0, 0.5, 0.0]),
        quality=np.array([0.3, 0.2, 0.1]),
        sizes=np.array([128, 64, 1]),
        lam=0.4,
        d_max=128,
    )
    np.testing.assert_allclose(r, [1.0 - 0.4, 0.5 - 0.1, 0.0 - 0.4 / 128**2])


def test_code_reward_uses_raw_quality_and_d_minus_one() -> None:
    """The reference variant: r = quality − λ((d − 1)/d_max)², so size 1 costs nothing."""
    r = spaces.entity_rewards(
        q=np.array([1.0, 1.0]),
        quality=np.array([0.3, 0.2]),
        sizes=np.array([129, 1]),
        lam=0.5,
        d_max=128,
        variant="code",
    )
    np.testing.assert_allclose(r, [0.3 - 0.5, 0.2])


def test_quality_ratio_is_capped_at_one_and_floored_denominator() -> None:
    """Q = min(quality / max(full, 1e-5), 1): above-full quality → 1, zero full → 0."""
    q = spaces.quality_ratio(np.array([0.2, 0.1, 0.0, 1e-6]), np.array([0.1, 0.2, 0.0, 0.0]))
    np.testing.assert_allclose(q, [1.0, 0.5, 0.0, 0.1])


def test_actions_map_to_sizes_and_back_exactly() -> None:
    """−1 → d_min, +1 → d_max, 0 → the rounded midpoint; sizes_to_action inverts every size."""
    sizes = spaces.action_to_sizes(np.array([-1.0, 1.0, 0.0]), n=3, d_min=1, d_max=128)
    assert sizes.tolist() == [1, 128, 65]
    every = np.arange(1, 129)
    back = spaces.action_to_sizes(
        spaces.sizes_to_action(every, d_min=1, d_max=128), n=128, d_min=1, d_max=128
    )
    assert back.tolist() == every.tolist()


def test_out_of_range_actions_are_clipped() -> None:
    """Actions beyond [−1, 1] clip to d_min / d_max instead of failing."""
    sizes = spaces.action_to_sizes(np.array([-7.0, 3.5]), n=2, d_min=1, d_max=128)
    assert sizes.tolist() == [1, 128]


# ------------------------------------------------------------- env contract
def test_observation_has_documented_shape_dtype_and_bounds(env: EmbeddingSizeEnv) -> None:
    """Reset gives (N, 4) float32 in [−1, 1]: type column, sizes at d_max (1.0)."""
    obs, info = env.reset(seed=0)
    assert obs.shape == (70, 4)
    assert obs.dtype == np.float32
    assert env.observation_space.contains(obs)
    assert obs[:40, 0].tolist() == [-1.0] * 40
    assert obs[40:, 0].tolist() == [1.0] * 30
    assert np.all(obs[:, 2] == 1.0)
    assert obs[:40, 1].min() == -1.0
    assert obs[:40, 1].max() == 1.0
    assert info["sparsity"] == 0.0


def test_step_returns_documented_info(env: EmbeddingSizeEnv) -> None:
    """A step at size 16 has sparsity 0.875, and the scalar reward is the per-entity mean."""
    env.reset(seed=0)
    action = env.sizes_to_action(np.full(40, 16), np.full(30, 16))
    obs, reward, terminated, truncated, info = env.step(action)
    assert env.observation_space.contains(obs)
    assert (terminated, truncated) == (False, False)
    assert info["sparsity"] == pytest.approx(0.875)
    assert info["kept_parameters"] == 70 * 16
    assert info["memory_bytes"] == 70 * 16 * 4 + 4 * 71
    assert info["entity_rewards"].shape == (70,)
    assert reward == pytest.approx(float(info["entity_rewards"].astype(np.float64).mean()))
    assert info["user_sizes"].tolist() == [16] * 40
    assert np.all(obs[:, 2] == np.float32(spaces.scale_sizes(16, d_min=1, d_max=128)))
    assert set(info) == {
        "entity_rewards", "user_quality", "item_quality", "mean_quality_ratio", "recall@20",
        "ndcg@20", "sparsity", "kept_parameters", "memory_bytes", "user_sizes", "item_sizes",
        "train_seconds",
    }  # fmt: skip


def test_env_reward_matches_formula_from_observed_quality(env: EmbeddingSizeEnv) -> None:
    """The env's per-entity reward equals q − λ(d/d_max)² with q read from the observation."""
    env.reset(seed=1)
    rng = np.random.default_rng(0)
    us, its = rng.integers(1, 129, 40), rng.integers(1, 129, 30)
    obs, _, _, _, info = env.step(env.sizes_to_action(us, its))
    q = (obs[:, 3].astype(np.float64) + 1) / 2
    d = np.concatenate([us, its])
    np.testing.assert_allclose(info["entity_rewards"], q - 0.4 * (d / 128) ** 2, atol=1e-6)


def test_nan_action_is_refused(env: EmbeddingSizeEnv) -> None:
    """A NaN in the action raises ValueError saying NaN is not allowed."""
    env.reset(seed=0)
    action = np.zeros(70, dtype=np.float32)
    action[3] = np.nan
    with pytest.raises(ValueError, match=re.escape("NaN and inf are not allowed")):
        env.step(action)


def test_wrong_shape_action_is_refused(env: EmbeddingSizeEnv) -> None:
    """An action of the wrong length raises ValueError naming the expected shape."""
    env.reset(seed=0)
    with pytest.raises(ValueError, match=re.escape("`action` must have shape (70,)")):
        env.step(np.zeros(69, dtype=np.float32))


def test_episode_truncates_at_max_steps(tiny_kwargs: dict) -> None:
    """With max_episode_steps=2 the second step truncates, never terminates, then needs reset."""
    env = EmbeddingSizeEnv(dataset="synthetic", backbone="mf", max_episode_steps=2, **tiny_kwargs)
    env.reset(seed=0)
    a = np.zeros(70, dtype=np.float32)
    assert env.step(a)[2:4] == (False, False)
    assert env.step(a)[2:4] == (False, True)
    with pytest.raises(RuntimeError, match="call reset"):
        env.step(a)


def test_same_seed_gives_same_rollout(tiny_kwargs: dict) -> None:
    """Two envs reset with seed 7 and fed the same actions return identical obs and rewards."""
    runs = []
    for _ in range(2):
        e = EmbeddingSizeEnv(dataset="synthetic", backbone="lightgcn", **tiny_kwargs)
        obs, _ = e.reset(seed=7)
        e.action_space.seed(3)
        trace = [obs]
        for _ in range(2):
            obs, r, *_ = e.step(e.action_space.sample())
            trace += [obs, np.array([r])]
        runs.append(trace)
    for a, b in zip(*runs, strict=True):
        np.testing.assert_array_equal(a, b)


def test_record_budget_log_logs_one_entry_per_step(env: EmbeddingSizeEnv) -> None:
    """RecordBudgetLog appends each step's sizes, sparsity and reward; the env logs nothing."""
    recorder = RecordBudgetLog(env, budgets=None)
    recorder.reset(seed=0)
    _, r8, *_ = recorder.step(env.sizes_to_action(np.full(40, 8), np.full(30, 8)))
    recorder.reset(seed=0)
    recorder.step(env.sizes_to_action(np.full(40, 32), np.full(30, 32)))
    log = recorder.budget_log
    assert [(e.episode, e.step) for e in log] == [(0, 1), (1, 1)]
    assert log[0].sparsity == pytest.approx(1 - 8 / 128)
    assert log[0].reward == r8
    assert log[1].user_sizes.tolist() == [32] * 40
    assert not hasattr(env, "budget_log")


@pytest.mark.parametrize(
    "env_id", [i for i in ciess_env.ENV_IDS if "Synthetic" in i], ids=lambda i: i
)
def test_check_env_passes_for_synthetic_ids(env_id: str, tiny_kwargs: dict) -> None:
    """Gymnasium's check_env (spaces, seeding, step determinism, render modes) passes."""
    env = gym.make(env_id, **tiny_kwargs)
    check_env(env.unwrapped)
    env.close()


# ------------------------------------------------------------ construction
def test_missing_dataset_fails_at_make(tmp_path, monkeypatch) -> None:
    """gym.make on ML-1M with an empty data_dir raises the data layer's DataNotFoundError."""
    monkeypatch.delenv("CIESS_DATA_DIR", raising=False)
    with pytest.raises(DataNotFoundError):
        gym.make("CIESS-LightGCN-ML1M-v0", data_dir=str(tmp_path))


def test_invalid_arguments_name_the_parameter(tiny_kwargs: dict) -> None:
    """Bad lam / reward / retrain values raise ValueError messages naming the argument."""
    with pytest.raises(ValueError, match=re.escape("`lam` must be a finite number >= 0")):
        EmbeddingSizeEnv(dataset="synthetic", lam=-1.0, **tiny_kwargs)
    with pytest.raises(ValueError, match=re.escape("`reward` must be one of ['paper', 'code'")):
        EmbeddingSizeEnv(dataset="synthetic", reward="raw", **tiny_kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=re.escape("`retrain` must be 'scratch', 'fast'")):
        EmbeddingSizeEnv(dataset="synthetic", retrain="warm", **tiny_kwargs)


def test_fast_mode_fine_tunes_the_nested_model_for_20_batches(tiny_kwargs: dict) -> None:
    """retrain='fast' is nested:20 (20 batches at lr/10); short:8 runs 1/8 of the batches."""
    kw = {**tiny_kwargs, "preset": "paper", "pretrain_max_batches": 4, "pretrain_eval_every": 4}
    env = EmbeddingSizeEnv(dataset="synthetic", backbone="mf", retrain="fast", **kw)
    base = env.train_config
    assert (base.n_batches, base.batch_size) == (150, 2048)
    fast = env.design.config(base)
    assert (fast.n_batches, fast.lr, fast.lr_decay) == (20, pytest.approx(0.003), 1.0)
    short = RetrainDesign.parse("short:8").config(base)
    assert (short.n_batches, short.decay_batches) == (19, 2)


def test_fast_mode_steps_from_the_nested_model(tiny_kwargs: dict) -> None:
    """A fast step runs and is deterministic under a seed (nested model pretrained once)."""
    rewards = []
    for _ in range(2):
        env = EmbeddingSizeEnv(dataset="synthetic", backbone="mf", retrain="fast", **tiny_kwargs)
        env.reset(seed=4)
        rewards.append(env.step(env.sizes_to_action(np.full(40, 8), np.full(30, 8)))[1])
    assert rewards[0] == rewards[1]
    assert -1.0 <= rewards[0] <= 1.0


# ---------------------------------------------------------------- render
def test_render_rgb_array_is_uint8_image(tiny_kwargs: dict) -> None:
    """rgb_array rendering returns an (H, W, 3) uint8 frame."""
    env = EmbeddingSizeEnv(
        dataset="synthetic", backbone="mf", render_mode="rgb_array", **tiny_kwargs
    )
    env.reset(seed=0)
    frame = env.render()
    assert isinstance(frame, np.ndarray)
    assert frame.dtype == np.uint8
    assert frame.ndim == 3
    assert frame.shape[2] == 3
    assert frame.shape[0] > 100
    assert frame.shape[1] > 100


def test_render_ansi_reports_sparsity(tiny_kwargs: dict) -> None:
    """Ansi rendering is text that states the current sparsity."""
    env = EmbeddingSizeEnv(dataset="synthetic", backbone="mf", render_mode="ansi", **tiny_kwargs)
    env.reset(seed=0)
    env.step(env.sizes_to_action(np.full(40, 32), np.full(30, 32)))
    text = env.render()
    assert isinstance(text, str)
    assert "sparsity 0.7500" in text


def test_evaluate_sizes_matches_a_step_with_the_same_seed_and_changes_nothing(env) -> None:
    """evaluate_sizes(seed=s) scores a mask as a step drawing its seeds from default_rng(s)."""
    env.reset(seed=3)
    users, items = np.full(env.n_users, 9), np.r_[np.full(env.n_items - 1, 4), 128]
    state = env.np_random.bit_generator.state
    evaluated = env.evaluate_sizes(users, items, seed=11)
    assert env.np_random.bit_generator.state == state
    np.testing.assert_array_equal(env._observation()[:, 2], 1.0)  # still all d_max
    again = env.evaluate_sizes(users, items, seed=11)
    assert again["recall@20"] == evaluated["recall@20"]
    assert again["reward"] == evaluated["reward"]
    env.np_random = np.random.default_rng(11)
    _, reward, *_, info = env.step(env.sizes_to_action(users, items))
    for key in ("recall@20", "ndcg@20", "mean_quality_ratio", "sparsity", "kept_parameters"):
        assert evaluated[key] == info[key], key
    assert evaluated["reward"] == pytest.approx(reward)
    np.testing.assert_array_equal(evaluated["item_sizes"], items)
    with pytest.raises(ValueError, match="must have shapes"):
        env.evaluate_sizes(users[:-1], items, seed=0)
