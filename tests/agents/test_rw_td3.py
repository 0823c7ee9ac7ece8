import re

import numpy as np
import pytest
import torch as th

from agents.registry import make_agent
from agents.rw_td3 import RandomWalkTD3
from ciess_env.spaces import action_to_sizes, sizes_to_action


def _model(env, tiny_kwargs, **kw):
    return RandomWalkTD3("EntityPolicy", env, **{**tiny_kwargs, **kw})


def _sizes_from_actions(actions, env):
    return action_to_sizes(actions, n=env.num_envs, d_min=env.d_min, d_max=env.d_max)


def test_candidates_are_a_walk_from_the_actor_proposal(fake_env, tiny_kwargs):
    """Column 0 of the candidates is the actor's rounded size; 5 more steps follow (t = 5)."""
    model = _model(fake_env, tiny_kwargs)
    obs = fake_env.reset()
    step = model.explore(obs)
    with th.no_grad():
        raw = model.actor(th.as_tensor(obs)).numpy()
    np.testing.assert_array_equal(step.proposal, _sizes_from_actions(raw, fake_env))
    assert step.candidates.shape == (fake_env.num_envs, 6)
    np.testing.assert_array_equal(step.candidates[:, 0], step.proposal)
    assert np.abs(np.diff(step.candidates, axis=1)).max() <= 5


def test_chosen_size_is_the_critic_argmax_over_candidates(fake_env, tiny_kwargs, monkeypatch):
    """With Q1(s, d) = −(d − 40)², the chosen candidate is the one closest to size 40."""
    model = _model(fake_env, tiny_kwargs, exploration_noise_sizes=0.0)
    calls = []

    def q1(obs, actions):
        calls.append(obs.shape[0])
        sizes = 1 + (actions + 1) / 2 * 127
        return -((sizes - 40.0) ** 2)

    monkeypatch.setattr(model.critic, "q1_forward", q1)
    step = model.explore(fake_env.reset())
    assert calls == [fake_env.num_envs * 6]  # one batched call for all candidates
    best = step.candidates[np.arange(fake_env.num_envs), np.argmin(np.abs(step.candidates - 40), 1)]
    np.testing.assert_array_equal(step.chosen, best)
    np.testing.assert_array_equal(step.executed, step.chosen)  # σ = 0


def test_sampled_actions_are_in_unit_interval_and_encode_executed_sizes(fake_env, tiny_kwargs):
    """_sample_action returns (n, 1) env and buffer actions in [−1, 1] that map to the sizes run."""
    model = _model(fake_env, tiny_kwargs)
    model._last_obs = fake_env.reset()
    action, buffer_action = model._sample_action(learning_starts=0, n_envs=fake_env.num_envs)
    assert action.shape == buffer_action.shape == (fake_env.num_envs, 1)
    assert np.all(np.abs(buffer_action) <= 1)
    np.testing.assert_allclose(action, buffer_action, atol=1e-6)  # SB3's unscale_action
    for a in (action, buffer_action):
        np.testing.assert_array_equal(
            _sizes_from_actions(a, fake_env), model._last_exploration.executed
        )


def test_shared_noise_moves_every_entity_by_the_same_amount(fake_env, tiny_kwargs):
    """noise='shared' adds one scalar to all sizes (reference code); per-entity noise differs."""
    kw = {"random_walk": False, "exploration_noise_sizes": 6.0}
    shared = _model(fake_env, tiny_kwargs, noise="shared", **kw).explore(fake_env.reset())
    shifts = shared.executed - shared.proposal
    inside = (shared.executed > 1) & (shared.executed < 128)
    assert len(set(shifts[inside])) == 1
    per_entity = _model(fake_env, tiny_kwargs, **kw).explore(fake_env.reset())
    assert len(set(per_entity.executed - per_entity.proposal)) > 1


def test_no_noise_executes_the_critic_pick_and_draws_nothing_for_it(fake_env, tiny_kwargs):
    """noise='none' runs the argmax itself; the generator advances by the walk's draws only."""
    model = _model(fake_env, tiny_kwargs, noise="none", exploration_noise_sizes=6.0)
    step = model.explore(fake_env.reset())
    np.testing.assert_array_equal(step.executed, step.chosen)
    n_walk_draws = 5 * fake_env.num_envs
    assert model._explore_rng.random() == np.random.default_rng(0).random(n_walk_draws + 1)[-1]
    hyphen = _model(fake_env, tiny_kwargs, noise="per-entity")
    assert hyphen.noise == "per_entity"


def test_without_random_walk_the_proposal_is_the_only_candidate(fake_env, tiny_kwargs):
    """random_walk=False (Table 2 ablation) executes the proposal plus noise, no critic call."""
    model = _model(fake_env, tiny_kwargs, random_walk=False, exploration_noise_sizes=0.0)
    step = model.explore(fake_env.reset())
    assert step.candidates.shape == (fake_env.num_envs, 1)
    np.testing.assert_array_equal(step.executed, step.proposal)


def test_noise_before_walk_executes_the_argmax_of_a_noisy_walk(fake_env, tiny_kwargs):
    """noise_stage='before_walk' (paper Eq. 11) walks from the noisy proposal; no later noise."""
    model = _model(fake_env, tiny_kwargs, noise_stage="before_walk")
    step = model.explore(fake_env.reset())
    np.testing.assert_array_equal(step.candidates[:, 0], step.proposal)
    np.testing.assert_array_equal(step.executed, step.chosen)
    assert np.all(np.isin(step.chosen, step.candidates))


def test_warmup_before_learning_starts_uses_sb3_uniform_actions(fake_env, tiny_kwargs):
    """Before learning_starts SB3's uniform warm-up runs and no walk is recorded."""
    model = _model(fake_env, tiny_kwargs, learning_starts=10**6)
    model._last_obs = fake_env.reset()
    action, buffer_action = model._sample_action(10**6, n_envs=fake_env.num_envs)
    assert model._last_exploration is None
    assert np.all(np.abs(buffer_action) <= 1)
    assert np.unique(action).size > 1


def test_paper_defaults_in_action_units(fake_env):
    """Target noise 2 sizes clipped at 5, buffer 100 steps per entity, batch 4,096, critic 3×."""
    model = RandomWalkTD3("EntityPolicy", fake_env, seed=0, device="cpu")
    assert model.target_policy_noise == pytest.approx(2 / 63.5)
    assert model.target_noise_clip == pytest.approx(5 / 63.5)
    assert model.replay_buffer.buffer_size == 100  # per entity: SB3 divides by n_envs
    assert model.batch_size == 4096
    assert model.policy.critic_lr_scale == pytest.approx(3.0)
    assert (model.gamma, model.tau, model.policy_delay) == (0.99, 0.005, 2)


def test_size_range_is_read_from_the_env_and_checked(tiny_kwargs, make_env):
    """d_min/d_max come from the env's attributes; a contradicting explicit value is an error."""
    env = make_env(d_min=2, d_max=64)
    model = _model(env, tiny_kwargs)
    assert (model.d_min, model.d_max) == (2, 64)
    with pytest.raises(
        ValueError, match=re.escape("`d_max` must match the env's d_max=64, got 128.")
    ):
        _model(env, tiny_kwargs, d_max=128)


def test_same_seed_gives_same_actions(tiny_kwargs, make_env):
    """Two models with one seed learn identically and then explore identically."""
    results = []
    for _ in range(2):
        env = make_env()
        model = _model(env, tiny_kwargs)
        model.learn(env.num_envs * 15)
        model._last_obs = env.reset()
        _, buffer_action = model._sample_action(0, n_envs=env.num_envs)
        results.append((buffer_action, model.predict(env.reset())[0]))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])


def test_save_load_round_trip_keeps_predictions_and_options(fake_env, tiny_kwargs, tmp_path):
    """After save/load, predictions, both optimizers' groups and the exploration options match."""
    model = _model(fake_env, tiny_kwargs, noise="shared", max_grad_norm=0.01)
    model.learn(fake_env.num_envs * 12)
    obs = fake_env.reset()
    model.save(tmp_path / "agent.zip")
    loaded = RandomWalkTD3.load(tmp_path / "agent.zip", env=fake_env, device="cpu")
    np.testing.assert_array_equal(model.predict(obs)[0], loaded.predict(obs)[0])
    assert loaded.noise == "shared"
    assert loaded.d_max == 128
    assert [g["lr_scale"] for g in loaded.critic.optimizer.param_groups] == [3.0, 3.0]
    assert loaded.critic.optimizer.param_groups[0]["max_grad_norm"] == 0.01
    state = model.critic.optimizer.state_dict()["state"]
    loaded_state = loaded.critic.optimizer.state_dict()["state"]
    th.testing.assert_close(state[0]["exp_avg"], loaded_state[0]["exp_avg"])
    loaded.learn(fake_env.num_envs * 2)  # and it keeps training
    assert loaded.num_timesteps == fake_env.num_envs * 2


def test_learning_with_a_strong_size_penalty_shrinks_the_sizes(tiny_kwargs, make_env):
    """With λ = 2 the best sizes are small; a few hundred steps lower the policy's mean size."""
    env = make_env(lam=2.0)
    model = _model(env, {**tiny_kwargs, "policy_kwargs": {"net_arch": [64, 64]}})
    obs = env.reset()
    before = _sizes_from_actions(model.predict(obs)[0], env).mean()
    model.learn(env.num_envs * 300)
    after = _sizes_from_actions(model.predict(obs)[0], env).mean()
    assert before == pytest.approx(64.5, abs=2)  # final-layer init U(±3e-3): the middle size
    assert after < before - 20


def test_options_are_validated(make_env):
    """Unknown noise modes and a critic rate without the two-sided policy are rejected."""
    env = make_env()
    noise_msg = "`noise` must be 'per_entity', 'shared' or 'none'"
    with pytest.raises(ValueError, match=re.escape(noise_msg)):
        RandomWalkTD3("EntityPolicy", env, noise="ou")
    msg = "`critic_learning_rate` must be None unless the policy is an EntityTD3Policy"
    with pytest.raises(ValueError, match=re.escape(msg)):
        RandomWalkTD3("MlpPolicy", env)


def test_mlp_policy_works_with_the_walk(fake_env, tiny_kwargs):
    """A shared MlpPolicy also explores with the walk when critic_learning_rate=None."""
    model = RandomWalkTD3("MlpPolicy", fake_env, critic_learning_rate=None, **tiny_kwargs)
    step = model.explore(fake_env.reset())
    assert step.candidates.shape == (fake_env.num_envs, 6)


@pytest.mark.parametrize("name", ["rw-td3", "td3", "ddpg", "sac", "ppo"])
def test_make_agent_builds_a_trainable_agent(name, tiny_kwargs, make_env):
    """Every registered agent learns on the per-entity env and its parameters change."""
    env = make_env()
    kw = {k: v for k, v in tiny_kwargs.items() if not (name == "ppo" and k == "batch_size")}
    model = make_agent(name, env, **kw)
    before = [p.detach().clone() for p in model.policy.parameters()]
    model.learn(env.num_envs * 20)
    assert model.num_timesteps == env.num_envs * 20
    assert any(not th.equal(a, b) for a, b in zip(before, model.policy.parameters(), strict=True))


def test_make_agent_unknown_name_suggests_the_closest(make_env):
    """A misspelt agent name lists the valid names and suggests the closest one."""
    with pytest.raises(ValueError, match=re.escape("Did you mean 'rw-td3'")):
        make_agent("rw_td3", make_env())


def test_size_action_round_trip_is_exact():
    """Sizes → [−1, 1] actions → sizes is the identity (the buffer stores executed sizes)."""
    sizes = np.arange(1, 129)
    actions = sizes_to_action(sizes, d_min=1, d_max=128)
    np.testing.assert_array_equal(action_to_sizes(actions, n=128, d_min=1, d_max=128), sizes)


def test_mlp_policy_agent_round_trips_through_save_load(fake_env, tiny_kwargs, tmp_path):
    """An MlpPolicy RandomWalkTD3 loads without re-checking the two-sided-only options."""
    model = RandomWalkTD3("MlpPolicy", fake_env, critic_learning_rate=None, **tiny_kwargs)
    model.save(tmp_path / "mlp.zip")
    loaded = RandomWalkTD3.load(tmp_path / "mlp.zip", env=fake_env, device="cpu")
    obs = fake_env.reset()
    np.testing.assert_array_equal(model.predict(obs)[0], loaded.predict(obs)[0])


def test_policy_kwargs_of_the_caller_are_not_modified(fake_env) -> None:
    """RandomWalkTD3 adds critic_lr_scale to its own copy, not to a dict the caller reuses."""
    shared = {"net_arch": [8]}
    RandomWalkTD3("EntityPolicy", fake_env, policy_kwargs=shared, batch_size=8)
    assert shared == {"net_arch": [8]}
