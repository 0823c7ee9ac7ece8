"""TD3 in one file, cleanrl style, on CIESS's per-entity Gymnasium vector env.

Every user and item is one sub-environment of :class:`ciess_env.EntityVectorEnv` (a
``gymnasium.vector.VectorEnv``): it sees its ``(4,)`` row of the table, chooses its own size
(one scalar in [−1, 1]) and gets its own reward (paper Eq. 10), while one recommender is
retrained for all of them per step. One shared actor and two critics learn from one replay
buffer of entity transitions, which is the paper's setting without its random walk
(``agents.RandomWalkTD3`` adds it).

Nothing here is CIESS-specific beyond making the env: the loop is the usual cleanrl TD3 loop
over a vector env with Gymnasium 1.x's default ``next_step`` autoreset (the step after an
episode ends only resets, and its transition is not stored).

Run (offline, a tiny synthetic table, under a minute on a laptop CPU)::

    python examples/cleanrl_td3.py
    python examples/cleanrl_td3.py --total-steps 200 --env-id CIESS-LightGCN-Synthetic-v1 --no-tiny

It prints the mean per-entity return of one evaluation episode for a uniform-random policy,
the untrained actor and the trained actor; ``tests/test_examples.py`` checks that training
beats both.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ciess_env import EntityVectorEnv


@dataclass
class Args:
    """Hyperparameters (every field is also a ``--kebab-case`` command-line option)."""

    env_id: str = "CIESS-MF-Synthetic-v1"
    """a registered CIESS id"""
    seed: int = 0
    """seed of torch, NumPy, the env and the evaluation episodes"""
    tiny: bool = True
    """a 30 × 20 synthetic table on the tiny preset (seconds); --no-tiny: the id's own data"""
    cache_dir: str | None = None
    """pretrained-model cache (None: $CIESS_CACHE_DIR, then the user cache)"""
    cuda: bool = False
    """train the networks on CUDA if available"""
    total_steps: int = 60
    """vector steps; each is one env step and stores one transition per user and item"""
    learning_starts: int = 10
    """vector steps of uniform-random actions before learning"""
    buffer_size: int = 100_000
    """replay buffer size in entity transitions (36 bytes each)"""
    batch_size: int = 256
    """entity transitions per gradient step"""
    gradient_steps: int = 8
    """gradient steps per vector step (cleanrl: 1 per step of a few envs; here N per step)"""
    learning_rate: float = 1e-3
    """Adam learning rate of actor and critics"""
    gamma: float = 0.9
    """discount (episodes are 10 steps long)"""
    tau: float = 0.005
    """target network update rate"""
    policy_noise: float = 0.2
    """target policy smoothing noise"""
    noise_clip: float = 0.5
    """clip of the target policy smoothing noise"""
    exploration_noise: float = 0.1
    """Gaussian exploration noise, in units of the action range"""
    policy_frequency: int = 2
    """critic updates per actor update"""
    hidden: int = 64
    """width of the two hidden layers"""


def make_env(args: Args) -> EntityVectorEnv:
    """The per-entity vector env of ``args.env_id``."""
    kwargs = {"cache_dir": args.cache_dir}
    if args.tiny:
        kwargs |= {
            "preset": "tiny",
            "dataset_kwargs": {"n_users": 30, "n_items": 20, "mean_interactions": 6},
        }
    return EntityVectorEnv(args.env_id, **kwargs)


class QNetwork(nn.Module):
    """Q(s, a) of one entity."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(obs_dim + act_dim, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.fc3 = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """Q-values ``(B, 1)`` of observations ``(B, 4)`` and actions ``(B, 1)``."""
        x = F.relu(self.fc1(torch.cat([x, a], 1)))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


class Actor(nn.Module):
    """The shared deterministic policy: one entity's row → its action."""

    def __init__(self, obs_dim: int, low: np.ndarray, high: np.ndarray, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(obs_dim, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.fc_mu = nn.Linear(hidden, low.size)
        scale, bias = (high - low) / 2.0, (high + low) / 2.0
        self.register_buffer("action_scale", torch.tensor(scale, dtype=torch.float32))
        self.register_buffer("action_bias", torch.tensor(bias, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Actions ``(B, 1)`` of observations ``(B, 4)``, in the action space's bounds."""
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return torch.tanh(self.fc_mu(x)) * self.action_scale + self.action_bias


class ReplayBuffer:
    """A ring buffer of entity transitions (NumPy, on the CPU)."""

    def __init__(self, size: int, obs_dim: int, act_dim: int, seed: int) -> None:
        self.obs = np.zeros((size, obs_dim), np.float32)
        self.next_obs = np.zeros((size, obs_dim), np.float32)
        self.actions = np.zeros((size, act_dim), np.float32)
        self.rewards = np.zeros(size, np.float32)
        self.dones = np.zeros(size, np.float32)  # terminated only: truncation bootstraps
        self.size, self.pos, self.full = size, 0, False
        self.rng = np.random.default_rng(seed)

    def add(
        self,
        obs: np.ndarray,
        next_obs: np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray,
        terminations: np.ndarray,
    ) -> None:
        """Store one vector step: one transition per sub-environment."""
        idx = (self.pos + np.arange(len(obs))) % self.size
        self.obs[idx], self.next_obs[idx], self.actions[idx] = obs, next_obs, actions
        self.rewards[idx], self.dones[idx] = rewards, terminations
        self.full = self.full or self.pos + len(obs) >= self.size
        self.pos = (self.pos + len(obs)) % self.size

    def sample(self, n: int, device: torch.device) -> tuple[torch.Tensor, ...]:
        """``n`` transitions drawn uniformly: obs, actions, next obs, rewards, dones."""
        idx = self.rng.integers(0, self.size if self.full else self.pos, n)
        arrays = (self.obs, self.actions, self.next_obs, self.rewards, self.dones)
        return tuple(torch.as_tensor(a[idx], device=device) for a in arrays)


def evaluate(envs: EntityVectorEnv, policy: Callable[[np.ndarray], np.ndarray], seed: int) -> float:
    """Mean per-entity return of one episode of ``policy(obs) -> actions``, from ``seed``."""
    obs, _ = envs.reset(seed=seed)
    total = np.zeros(envs.num_envs)
    while True:
        obs, rewards, terminations, truncations, _ = envs.step(policy(obs))
        total += rewards
        if terminations.any() or truncations.any():
            return float(total.mean())


def main(args: Args) -> dict[str, float]:
    """Train TD3 on ``args``; the evaluation returns of random, untrained and trained policies."""
    torch.manual_seed(args.seed)  # the networks' initialisation and the target noise
    device = torch.device("cuda" if torch.cuda.is_available() and args.cuda else "cpu")

    envs = make_env(args)
    space = envs.single_action_space
    obs_dim, act_dim = envs.single_observation_space.shape[0], space.shape[0]
    actor = Actor(obs_dim, space.low, space.high, args.hidden).to(device)
    qf1 = QNetwork(obs_dim, act_dim, args.hidden).to(device)
    qf2 = QNetwork(obs_dim, act_dim, args.hidden).to(device)
    target_actor = Actor(obs_dim, space.low, space.high, args.hidden).to(device)
    qf1_target = QNetwork(obs_dim, act_dim, args.hidden).to(device)
    qf2_target = QNetwork(obs_dim, act_dim, args.hidden).to(device)
    target_actor.load_state_dict(actor.state_dict())
    qf1_target.load_state_dict(qf1.state_dict())
    qf2_target.load_state_dict(qf2.state_dict())
    q_optimizer = torch.optim.Adam([*qf1.parameters(), *qf2.parameters()], lr=args.learning_rate)
    actor_optimizer = torch.optim.Adam(actor.parameters(), lr=args.learning_rate)
    rb = ReplayBuffer(args.buffer_size, obs_dim, act_dim, args.seed)
    rng = np.random.default_rng(args.seed)
    low, high = space.low, space.high

    def greedy(obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return actor(torch.as_tensor(obs, device=device)).cpu().numpy()

    def uniform(obs: np.ndarray) -> np.ndarray:
        return rng.uniform(low, high, (len(obs), act_dim)).astype(np.float32)

    eval_seed = args.seed + 10_000
    results = {
        "random": evaluate(envs, uniform, eval_seed),
        "initial": evaluate(envs, greedy, eval_seed),
    }

    start = time.time()
    obs, _ = envs.reset(seed=args.seed)
    after_episode_end = False  # next_step autoreset: this step only resets the env
    updates = 0
    for step in range(args.total_steps):
        if step < args.learning_starts:
            actions = uniform(obs)
        else:
            noise = rng.normal(0.0, args.exploration_noise, (len(obs), act_dim)) * (high - low) / 2
            actions = np.clip(greedy(obs) + noise, low, high).astype(np.float32)
        next_obs, rewards, terminations, truncations, _ = envs.step(actions)
        if not after_episode_end:
            rb.add(obs, next_obs, actions, rewards, terminations)
        after_episode_end = bool(np.any(terminations | truncations))
        obs = next_obs

        if step < args.learning_starts:
            continue
        for _ in range(args.gradient_steps):
            b_obs, b_act, b_next, b_rew, b_done = rb.sample(args.batch_size, device)
            with torch.no_grad():
                clipped = (torch.randn_like(b_act) * args.policy_noise).clamp(
                    -args.noise_clip, args.noise_clip
                ) * target_actor.action_scale
                next_act = (target_actor(b_next) + clipped).clamp(
                    torch.as_tensor(low, device=device), torch.as_tensor(high, device=device)
                )
                next_q = torch.min(qf1_target(b_next, next_act), qf2_target(b_next, next_act))
                target = b_rew + (1 - b_done) * args.gamma * next_q.view(-1)
            qf1_loss = F.mse_loss(qf1(b_obs, b_act).view(-1), target)
            qf2_loss = F.mse_loss(qf2(b_obs, b_act).view(-1), target)
            q_optimizer.zero_grad()
            (qf1_loss + qf2_loss).backward()
            q_optimizer.step()

            updates += 1
            if updates % args.policy_frequency == 0:
                actor_loss = -qf1(b_obs, actor(b_obs)).mean()
                actor_optimizer.zero_grad()
                actor_loss.backward()
                actor_optimizer.step()
                for net, target_net in (
                    (actor, target_actor),
                    (qf1, qf1_target),
                    (qf2, qf2_target),
                ):
                    for p, tp in zip(net.parameters(), target_net.parameters(), strict=True):
                        tp.data.mul_(1 - args.tau).add_(args.tau * p.data)
        if step % 10 == 0:
            print(
                f"step {step:4d}  q_loss {(qf1_loss + qf2_loss).item():.4f}  "
                f"mean reward {rewards.mean():.4f}  {time.time() - start:.1f} s"
            )

    results["trained"] = evaluate(envs, greedy, eval_seed)
    envs.close()
    print("mean per-entity return of one episode:", {k: round(v, 4) for k, v in results.items()})
    return results


def parse_args(argv: list[str] | None = None) -> Args:
    """``Args`` from the command line: one ``--kebab-case`` option per field."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for f in dataclasses.fields(Args):
        flag = "--" + f.name.replace("_", "-")
        if f.type == "bool":
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default)
        else:
            kind = {"int": int, "float": float}.get(f.type, str)
            metavar = f.type.split(" |")[0].upper()  # "str | None" → STR
            parser.add_argument(flag, type=kind, default=f.default, metavar=metavar)
    return Args(**vars(parser.parse_args(argv)))


if __name__ == "__main__":
    main(parse_args())
