"""Budget-targeted RW-TD3: the λ update rule, exact reward relabelling, tracking of c."""

from __future__ import annotations

import math

import numpy as np
import pytest

from agents.lagrangian import LagrangianRWTD3
from ciess_env.spaces import action_to_sizes


def _model(env, tiny_kwargs, **kw):
    return LagrangianRWTD3("EntityPolicy", env, **{**tiny_kwargs, **kw})


def test_lam_follows_the_pi_rule_and_its_bounds(fake_env, tiny_kwargs) -> None:
    model = _model(fake_env, tiny_kwargs, target_sparsity=0.8, lam_lr=0.1, lam_kp=1.0)
    assert model.lam == pytest.approx(0.4)  # the env's λ
    # Table too big (sparsity 0.7 < 0.8): relative overspend 0.5, λ grows.
    up = model._update_lam(0.7)
    assert up == pytest.approx(math.exp(math.log(0.4) + 0.1 * 0.5 + 1.0 * 0.5))
    # Too small (0.9): the integral comes back down and the proportional term flips sign.
    down = model._update_lam(0.9)
    assert down == pytest.approx(math.exp(math.log(0.4) + 1.0 * -0.5))
    # A huge miss (sparsity 0 at full size) moves the integral by at most η.
    model._update_lam(0.0)
    assert model._log_lam_integral == pytest.approx(math.log(0.4) + 0.1)
    capped = _model(fake_env, tiny_kwargs, target_sparsity=0.8, lam_bounds=(0.1, 0.5))
    assert capped._update_lam(0.0) == pytest.approx(0.5)


def test_lam_reaches_the_env_and_the_buffer_is_relabelled_exactly(fake_env, tiny_kwargs) -> None:
    model = _model(fake_env, tiny_kwargs, target_sparsity=0.9, gradient_steps=1)
    model.learn(total_timesteps=15 * fake_env.num_envs)
    assert fake_env.lam == model.lam != pytest.approx(0.4)
    buf = model.replay_buffer
    rows = buf.pos
    # The fake env's reward is q − λ (d/d_max)² with q = (obs[3] + 1)/2 of the next observation.
    q = (buf.next_observations[:rows, :, 3].astype(np.float64) + 1.0) / 2.0
    acts = buf.actions[:rows].reshape(-1)
    d = action_to_sizes(acts, n=acts.size, d_min=1, d_max=128).reshape(rows, -1)
    penalty = (d / 128.0) ** 2
    expected = (q - model.lam * penalty) / (1.0 + model.lam)
    np.testing.assert_allclose(buf.rewards[:rows], expected, atol=1e-5)


def test_without_relabelling_old_rewards_keep_their_lam(fake_env, tiny_kwargs) -> None:
    model = _model(fake_env, tiny_kwargs, target_sparsity=0.9, gradient_steps=1, relabel=False)
    model.learn(total_timesteps=5 * fake_env.num_envs)
    buf = model.replay_buffer
    first = buf.rewards[0].astype(np.float64)
    q = (buf.next_observations[0, :, 3].astype(np.float64) + 1.0) / 2.0
    acts = buf.actions[0].reshape(-1)
    d = action_to_sizes(acts, n=acts.size, d_min=1, d_max=128)
    np.testing.assert_allclose(first, (q - 0.4 * (d / 128.0) ** 2) / 1.4, atol=1e-5)


def test_bad_options_are_named(fake_env, tiny_kwargs) -> None:
    with pytest.raises(ValueError, match="`target_sparsity` must be in"):
        _model(fake_env, tiny_kwargs, target_sparsity=1.0)
    with pytest.raises(ValueError, match="`lam_bounds` must satisfy"):
        _model(fake_env, tiny_kwargs, target_sparsity=0.8, lam_bounds=(0.0, 1.0))
    with pytest.raises(ValueError, match="`lam_lr` must be"):
        _model(fake_env, tiny_kwargs, target_sparsity=0.8, lam_lr=-1.0)
    with pytest.raises(ValueError, match="`lam_init` must be"):
        _model(fake_env, tiny_kwargs, target_sparsity=0.8, lam_init=0.0)


@pytest.mark.slow
@pytest.mark.parametrize("c", [0.6, 0.85])
def test_sparsity_converges_to_the_target(make_env, tiny_kwargs, c) -> None:
    env = make_env(n_users=30, n_items=20, seed=0)
    model = _model(env, tiny_kwargs, target_sparsity=c, learning_rate=3e-3)
    seen: list[float] = []
    update = model._update_lam
    model._update_lam = lambda s: (seen.append(s), update(s))[1]  # type: ignore[method-assign]
    model.learn(total_timesteps=80 * env.num_envs)
    per_episode = np.asarray(seen).reshape(-1, 10).mean(axis=1)
    assert abs(per_episode[1] - c) > 0.1  # it starts far from c ...
    assert abs(per_episode[-2:].mean() - c) < 0.03  # ... and ends near it
