import re

import numpy as np
import pytest
import torch as th
from gymnasium import spaces

from agents.policies import EntityTD3Policy, GroupScaledAdam
from agents.rw_td3 import RandomWalkTD3

OBS = spaces.Box(-1.0, 1.0, (4,), np.float32)
ACT = spaces.Box(-1.0, 1.0, (1,), np.float32)


def _policy(**kw):
    return EntityTD3Policy(OBS, ACT, lambda _: 1e-3, net_arch=[16, 16], **kw)


def _batch(n=10, seed=0):
    gen = th.Generator().manual_seed(seed)
    obs = th.rand(n, 4, generator=gen) * 2 - 1
    obs[:, 0] = th.where(th.rand(n, generator=gen) < 0.5, -1.0, 1.0)
    return obs, th.rand(n, 1, generator=gen) * 2 - 1


def test_actor_routes_users_and_items_to_their_own_network():
    """Rows with type −1 get the user actor's output, +1 the item actor's, in input order."""
    policy = _policy(actor_final_init=None)
    obs, _ = _batch()
    users = obs[:, 0] < 0
    with th.no_grad():
        out = policy.actor(obs)
        th.testing.assert_close(out[users], policy.actor.user(obs[users, 1:]))
        th.testing.assert_close(out[~users], policy.actor.item(obs[~users, 1:]))
        assert not th.allclose(policy.actor.user(obs[:, 1:]), policy.actor.item(obs[:, 1:]))


def test_critic_routes_both_heads_and_q1():
    """critic(obs, a) and critic.q1_forward(obs, a) route per row like the actor."""
    policy = _policy()
    obs, act = _batch()
    users = obs[:, 0] < 0
    with th.no_grad():
        q1, q2 = policy.critic(obs, act)
        u1, u2 = policy.critic.user(obs[users, 1:], act[users])
        i1, _ = policy.critic.item(obs[~users, 1:], act[~users])
        th.testing.assert_close(q1[users], u1)
        th.testing.assert_close(q2[users], u2)
        th.testing.assert_close(q1[~users], i1)
        th.testing.assert_close(policy.critic.q1_forward(obs, act), q1)


def test_each_side_sees_the_three_paper_features():
    """Each side's actor is 3 → hidden → 1 and each critic (3 + 1) → hidden → 1 (paper §2)."""
    policy = _policy()
    first = next(m for m in policy.actor.user.mu if isinstance(m, th.nn.Linear))
    assert first.in_features == 3
    assert policy.critic.item.q_networks[0][0].in_features == 4


def test_critic_lr_scale_multiplies_the_adam_step():
    """A group with lr_scale = 3 moves three times as far on Adam's first step."""
    a = th.nn.Parameter(th.zeros(1))
    b = th.nn.Parameter(th.zeros(1))
    opt = GroupScaledAdam([{"params": [a]}, {"params": [b], "lr_scale": 3.0}], lr=1e-3)
    a.grad, b.grad = th.ones(1), th.ones(1)
    opt.step()
    assert a.item() == pytest.approx(-1e-3, rel=1e-4)
    assert b.item() == pytest.approx(-3e-3, rel=1e-4)
    assert opt.param_groups[1]["lr"] == 1e-3  # the base rate SB3 schedules stays untouched


def test_max_grad_norm_clips_each_group_separately():
    """With max_grad_norm, each parameter group's gradient norm is clipped on its own."""
    a = th.nn.Parameter(th.zeros(2))
    b = th.nn.Parameter(th.zeros(2))
    opt = GroupScaledAdam([{"params": [a]}, {"params": [b]}], lr=1e-3, max_grad_norm=0.01)
    a.grad, b.grad = th.tensor([3.0, 4.0]), th.tensor([0.0, 0.001])
    opt.step()
    assert a.grad.norm().item() == pytest.approx(0.01)
    assert b.grad.norm().item() == pytest.approx(0.001)


def test_policy_builds_one_optimizer_group_per_side_with_critic_scale():
    """Actor and critic optimizers hold a user and an item group; the critic's has the scale."""
    policy = _policy(critic_lr_scale=3.0, max_grad_norm=0.01)
    assert [g["lr_scale"] for g in policy.actor.optimizer.param_groups] == [1.0, 1.0]
    assert [g["lr_scale"] for g in policy.critic.optimizer.param_groups] == [3.0, 3.0]
    assert {g["max_grad_norm"] for g in policy.critic.optimizer.param_groups} == {0.01}
    n_params = sum(len(g["params"]) for g in policy.critic.optimizer.param_groups)
    assert n_params == len(list(policy.critic.parameters()))


def test_td3_train_updates_both_sides_and_soft_updates_targets(fake_env, tiny_kwargs):
    """SB3's TD3.train changes user and item actors and critics, and targets move by Polyak."""
    model = RandomWalkTD3("EntityPolicy", fake_env, **tiny_kwargs)
    model.learn(fake_env.num_envs * 3)  # fills the buffer and trains twice
    before = {k: v.clone() for k, v in model.policy.state_dict().items()}
    model.train(gradient_steps=2, batch_size=64)
    after = model.policy.state_dict()
    for prefix in (
        "actor.user",
        "actor.item",
        "critic.user",
        "critic.item",
        "actor_target.user",
        "critic_target.item",
    ):
        changed = [not th.equal(before[k], after[k]) for k in after if k.startswith(prefix)]
        assert any(changed), prefix
    w, w_t = "critic.user.qf0.0.weight", "critic_target.user.qf0.0.weight"
    gap_before = (before[w] - before[w_t]).abs().max()
    assert (after[w] - after[w_t]).abs().max() < gap_before + (after[w] - before[w]).abs().max()


def test_policy_rejects_observations_without_the_entity_type():
    """A (3,) observation (no type flag) is rejected with the expected layout in the message."""
    msg = "`observation_space` must be a Box of shape (4,)"
    with pytest.raises(ValueError, match=re.escape(msg)):
        EntityTD3Policy(spaces.Box(-1, 1, (3,)), ACT, lambda _: 1e-3)


def test_plain_adam_cannot_carry_a_critic_scale():
    """critic_lr_scale ≠ 1 with a plain Adam is rejected rather than silently ignored."""
    with pytest.raises(ValueError, match=re.escape("`optimizer_class` must be GroupScaledAdam")):
        _policy(optimizer_class=th.optim.Adam, critic_lr_scale=3.0)


def test_policy_alone_saves_and_loads_with_its_options(tmp_path):
    """EntityTD3Policy.save/load keeps the weights and the critic scale; one-sided batches work."""
    policy = _policy(critic_lr_scale=3.0)
    obs, _ = _batch(7)
    obs[:, 0] = -1.0  # users only: the item networks get an empty batch
    actions, _ = policy.predict(obs.numpy())
    policy.save(tmp_path / "policy.pt")
    loaded = EntityTD3Policy.load(tmp_path / "policy.pt")
    np.testing.assert_array_equal(loaded.predict(obs.numpy())[0], actions)
    assert loaded.critic_lr_scale == 3.0
