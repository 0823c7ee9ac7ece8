"""Two-sided TD3 policy for the per-entity vector env: one actor and twin critic per side.

CIESS keeps a separate actor ``μ_U, μ_V`` and twin critic ``Q_U, Q_V`` for users and for items,
because their state distributions differ (paper §2). In the per-entity vector env every user and
item is one SB3 sub-environment whose observation starts with the entity type (−1 user,
+1 item), so users and items share one replay buffer and one minibatch. :class:`EntityTD3Policy`
therefore holds both network sets and routes every row by ``obs[:, 0]``. The routing modules
expose exactly what ``stable_baselines3.TD3.train`` calls — ``actor(obs)``, ``actor_target(obs)``,
``critic(obs, a)``, ``critic_target(obs, a)``, ``critic.q1_forward(obs, a)``, ``.optimizer``,
``.parameters()`` (user side first, then items, identically ordered in the online and the target
module, so Polyak averaging pairs the right tensors) — so TD3's training loop runs unchanged.

Implementation details: differences from the CIESS reference
1. One shared replay buffer and minibatch for both sides (the reference keeps one per side). The
   critic and actor losses are means over the whole minibatch, so each side's gradient is
   scaled by its share of the batch (≈ |U|/(|U|+|V|) for users); Adam is invariant to such a
   constant factor, so this mainly changes how many samples each side sees per update.
2. The networks see the three paper features ``[popularity, size, quality]``; the type flag is
   used only for routing (paper §1.2: ``3 → 256 → 256 → 1``; critic ``(3 + 1) → 256 → 256 → 1``).
3. SB3 has one learning rate; the critic's own rate (reference: 3e-3 vs the actor's 1e-3) comes
   from a per-parameter-group ``lr_scale`` honoured by :class:`GroupScaledAdam`, which also
   offers the reference's per-network gradient-norm clipping (``max_grad_norm``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, FlattenExtractor
from stable_baselines3.common.type_aliases import Schedule
from stable_baselines3.td3.policies import Actor, ContinuousCritic, TD3Policy
from torch import nn

from ciess_env.errors import InvalidArgumentError

__all__ = ["EntityTD3Policy", "GroupScaledAdam", "RoutedActor", "RoutedCritic"]

#: Observation layout of the per-entity vector env: [type, popularity, size, quality].
ENTITY_OBS_DIM = 4


class GroupScaledAdam(th.optim.Adam):
    """Adam with a per-group learning-rate multiplier and optional per-group grad-norm clipping.

    SB3 sets every parameter group's ``lr`` to the one schedule value before each update
    (``BaseAlgorithm._update_learning_rate``). A group's effective rate is that value times its
    ``lr_scale`` (default 1), so a critic group with ``lr_scale=3`` and ``learning_rate=1e-3``
    trains at the reference's 3e-3 and still follows any SB3 schedule. Before the step, each
    group whose ``max_grad_norm`` is set has its gradient norm clipped separately, as the
    reference clips each network separately (``clip_grad_norm_(…, 0.01)``).

    Args:
        params: Parameters or parameter-group dicts (which may carry ``lr_scale`` and
            ``max_grad_norm``).
        lr: Base learning rate.
        lr_scale: Default multiplier for groups that do not set one.
        max_grad_norm: Default clipping norm for groups that do not set one (``None``: off).
        **kwargs: Passed on to :class:`torch.optim.Adam`.
    """

    def __init__(
        self,
        params: Any,
        lr: float = 1e-3,
        *,
        lr_scale: float = 1.0,
        max_grad_norm: float | None = None,
        **kwargs: Any,
    ) -> None:
        # Set before Adam.__init__, which adds the initial groups through add_param_group.
        self._group_defaults = {"lr_scale": lr_scale, "max_grad_norm": max_grad_norm}
        super().__init__(params, lr=lr, **kwargs)
        self.defaults.update(self._group_defaults)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group; missing ``lr_scale``/``max_grad_norm`` come from the defaults."""
        super().add_param_group({**self._group_defaults, **param_group})

    @th.no_grad()
    def step(self, closure: Any = None) -> Any:
        """Clip each group's gradients if asked, then take an Adam step at ``lr · lr_scale``."""
        loss = None
        if closure is not None:
            with th.enable_grad():
                loss = closure()
        base_lrs = []
        for group in self.param_groups:
            if group["max_grad_norm"] is not None:
                grads = [p for p in group["params"] if p.grad is not None]
                if grads:
                    nn.utils.clip_grad_norm_(grads, group["max_grad_norm"])
            base_lrs.append(group["lr"])
            group["lr"] = group["lr"] * group["lr_scale"]
        try:
            super().step()
        finally:
            for group, lr in zip(self.param_groups, base_lrs, strict=True):
                group["lr"] = lr
        return loss


def _split_by_type(obs: th.Tensor) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
    """Row indices of users (type < 0) and items (type > 0) and the inverse permutation."""
    is_item = obs[:, 0] > 0
    user_rows = th.nonzero(~is_item).squeeze(1)
    item_rows = th.nonzero(is_item).squeeze(1)
    order = th.cat([user_rows, item_rows])
    inverse = th.empty_like(order)
    inverse[order] = th.arange(order.numel(), device=order.device)
    return user_rows, item_rows, inverse


class _Routed(nn.Module):
    """Holds a user-side and an item-side network; parameters are user-first, then items."""

    optimizer: th.optim.Optimizer

    def __init__(self, user: nn.Module, item: nn.Module) -> None:
        super().__init__()
        self.user = user
        self.item = item

    def set_training_mode(self, mode: bool) -> None:
        """Put both sides in training (True) or evaluation (False) mode, like SB3's models."""
        self.train(mode)


class RoutedActor(_Routed):
    """Actor that sends user rows to ``user`` and item rows to ``item`` (obs[:, 0] = ∓1).

    Each side sees the features ``obs[:, 1:]``; the output rows are in the input order.
    """

    user: Actor
    item: Actor

    def forward(self, obs: th.Tensor) -> th.Tensor:
        """Deterministic actions, (batch, 1) in [−1, 1]."""
        user_rows, item_rows, inverse = _split_by_type(obs)
        features = obs[:, 1:]
        out = th.cat([self.user(features[user_rows]), self.item(features[item_rows])])
        return out[inverse]


class RoutedCritic(_Routed):
    """Twin critic that sends user rows to ``user`` and item rows to ``item``."""

    user: ContinuousCritic
    item: ContinuousCritic

    def forward(self, obs: th.Tensor, actions: th.Tensor) -> tuple[th.Tensor, ...]:
        """All Q heads, each (batch, 1), rows in the input order."""
        user_rows, item_rows, inverse = _split_by_type(obs)
        features = obs[:, 1:]
        q_user = self.user(features[user_rows], actions[user_rows])
        q_item = self.item(features[item_rows], actions[item_rows])
        return tuple(th.cat([qu, qi])[inverse] for qu, qi in zip(q_user, q_item, strict=True))

    def q1_forward(self, obs: th.Tensor, actions: th.Tensor) -> th.Tensor:
        """First Q head only (TD3's actor loss and CIESS's candidate scoring), (batch, 1)."""
        user_rows, item_rows, inverse = _split_by_type(obs)
        features = obs[:, 1:]
        q_user = self.user.q1_forward(features[user_rows], actions[user_rows])
        q_item = self.item.q1_forward(features[item_rows], actions[item_rows])
        return th.cat([q_user, q_item])[inverse]


class EntityTD3Policy(TD3Policy):
    """TD3 policy with a separate actor and twin critic for users and for items (paper §2).

    Drop-in for ``TD3``/``DDPG``/:class:`agents.RandomWalkTD3` on the per-entity vector env
    (observation ``(4,)`` = ``[type, popularity, size, quality]``, action ``(1,)``). Both
    actors share one optimizer with one parameter group per side (likewise the critics), so
    ``TD3.train`` and SB3's save/load (``actor.optimizer``, ``critic.optimizer``) work as is.

    Args:
        observation_space: Box of shape (4,); feature 0 is the entity type (−1 user, +1 item).
        action_space: Box of shape (1,).
        lr_schedule: SB3 learning-rate schedule (the actor's rate).
        net_arch: Hidden layers, shared by actor and critic or ``{"pi": …, "qf": …}``
            (reference: ``[256, 256]``).
        activation_fn: Hidden activation (reference: ReLU).
        features_extractor_class: Feature extractor of each side's networks (on 3 features).
        features_extractor_kwargs: Its keyword arguments.
        normalize_images: Unused (no images); kept for SB3's signature.
        optimizer_class: Optimizer; must be :class:`GroupScaledAdam` (or a subclass) when
            ``critic_lr_scale ≠ 1`` or ``max_grad_norm`` is set.
        optimizer_kwargs: Extra optimizer keywords.
        n_critics: Q heads per side (TD3: 2; DDPG passes 1).
        share_features_extractor: Must be False (the networks have no shared trunk).
        critic_lr_scale: Critic learning rate as a multiple of the actor's (reference: 3e-3 /
            1e-3 = 3).
        max_grad_norm: Per-network gradient-norm clip (reference: 0.01); ``None`` disables it.
        actor_final_init: Half-width of the uniform initialisation of each actor's output
            layer (reference: 3e-3, so the first proposals sit near the middle size);
            ``None`` keeps PyTorch's default.

    Raises:
        ValueError: on spaces of the wrong shape or an optimizer that cannot honour the
            per-group options.
    """

    actor: RoutedActor  # type: ignore[assignment]
    actor_target: RoutedActor  # type: ignore[assignment]
    critic: RoutedCritic  # type: ignore[assignment]
    critic_target: RoutedCritic  # type: ignore[assignment]

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Box,
        lr_schedule: Schedule,
        net_arch: list[int] | dict[str, list[int]] | None = None,
        activation_fn: type[nn.Module] = nn.ReLU,
        features_extractor_class: type[BaseFeaturesExtractor] = FlattenExtractor,
        features_extractor_kwargs: dict[str, Any] | None = None,
        normalize_images: bool = True,
        optimizer_class: type[th.optim.Optimizer] = GroupScaledAdam,
        optimizer_kwargs: dict[str, Any] | None = None,
        n_critics: int = 2,
        share_features_extractor: bool = False,
        *,
        critic_lr_scale: float = 1.0,
        max_grad_norm: float | None = None,
        actor_final_init: float | None = 3e-3,
    ) -> None:
        _check_spaces(observation_space, action_space)
        if share_features_extractor:
            msg = "`share_features_extractor` must be False for EntityTD3Policy, got True."
            raise InvalidArgumentError(msg)
        needs_groups = critic_lr_scale != 1.0 or max_grad_norm is not None
        if needs_groups and not issubclass(optimizer_class, GroupScaledAdam):
            msg = (
                "`optimizer_class` must be GroupScaledAdam when critic_lr_scale ≠ 1 or "
                f"max_grad_norm is set, got {optimizer_class.__name__}."
            )
            raise InvalidArgumentError(msg)
        # Set before super().__init__, which calls _build.
        self.critic_lr_scale = float(critic_lr_scale)
        self.max_grad_norm = max_grad_norm
        self.actor_final_init = actor_final_init
        low = np.asarray(observation_space.low, dtype=np.float32)[1:]  # type: ignore[attr-defined]
        high = np.asarray(observation_space.high, dtype=np.float32)[1:]  # type: ignore[attr-defined]
        self.side_observation_space = spaces.Box(low=low, high=high, dtype=np.float32)
        super().__init__(
            observation_space,
            action_space,
            lr_schedule,
            net_arch=[256, 256] if net_arch is None else net_arch,
            activation_fn=activation_fn,
            features_extractor_class=features_extractor_class,
            features_extractor_kwargs=features_extractor_kwargs,
            normalize_images=normalize_images,
            optimizer_class=optimizer_class,
            optimizer_kwargs=optimizer_kwargs,
            n_critics=n_critics,
            share_features_extractor=False,
        )

    def _side_extractor(self) -> BaseFeaturesExtractor:
        return self.features_extractor_class(
            self.side_observation_space, **self.features_extractor_kwargs
        )

    def _side_actor(self) -> Actor:
        extractor = self._side_extractor()
        kwargs = {
            **self.actor_kwargs,
            "observation_space": self.side_observation_space,
            "features_extractor": extractor,
            "features_dim": extractor.features_dim,
        }
        actor = Actor(**kwargs)
        if self.actor_final_init is not None:
            last = [m for m in actor.mu.modules() if isinstance(m, nn.Linear)][-1]
            nn.init.uniform_(last.weight, -self.actor_final_init, self.actor_final_init)
            nn.init.uniform_(last.bias, -self.actor_final_init, self.actor_final_init)
        return actor

    def _side_critic(self) -> ContinuousCritic:
        extractor = self._side_extractor()
        kwargs = {
            **self.critic_kwargs,
            "observation_space": self.side_observation_space,
            "features_extractor": extractor,
            "features_dim": extractor.features_dim,
        }
        return ContinuousCritic(**kwargs)

    def _groups(self, routed: _Routed, lr_scale: float) -> list[dict[str, Any]]:
        groups: list[dict[str, Any]] = [
            {"params": list(routed.user.parameters())},
            {"params": list(routed.item.parameters())},
        ]
        if issubclass(self.optimizer_class, GroupScaledAdam):
            for group in groups:
                group.update(lr_scale=lr_scale, max_grad_norm=self.max_grad_norm)
        return groups

    def _build(self, lr_schedule: Schedule) -> None:
        self.actor = RoutedActor(self._side_actor(), self._side_actor()).to(self.device)
        self.actor_target = RoutedActor(self._side_actor(), self._side_actor()).to(self.device)
        self.actor_target.load_state_dict(self.actor.state_dict())
        self.actor.optimizer = self.optimizer_class(
            self._groups(self.actor, 1.0),
            lr=lr_schedule(1),  # type: ignore[call-arg]
            **self.optimizer_kwargs,
        )
        self.critic = RoutedCritic(self._side_critic(), self._side_critic()).to(self.device)
        self.critic_target = RoutedCritic(self._side_critic(), self._side_critic()).to(self.device)
        self.critic_target.load_state_dict(self.critic.state_dict())
        self.critic.optimizer = self.optimizer_class(
            self._groups(self.critic, self.critic_lr_scale),
            lr=lr_schedule(1),  # type: ignore[call-arg]
            **self.optimizer_kwargs,
        )
        # Target networks always stay in eval mode (as in TD3Policy._build).
        self.actor_target.set_training_mode(False)
        self.critic_target.set_training_mode(False)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(
            critic_lr_scale=self.critic_lr_scale,
            max_grad_norm=self.max_grad_norm,
            actor_final_init=self.actor_final_init,
        )
        return data


def _check_spaces(observation_space: spaces.Space, action_space: spaces.Space) -> None:
    if not isinstance(observation_space, spaces.Box) or observation_space.shape != (
        ENTITY_OBS_DIM,
    ):
        msg = (
            "`observation_space` must be a Box of shape (4,) ([type, popularity, size, "
            f"quality], the per-entity vector env's), got {observation_space!r}."
        )
        raise InvalidArgumentError(msg)
    if not isinstance(action_space, spaces.Box) or action_space.shape != (1,):
        msg = f"`action_space` must be a Box of shape (1,), got {action_space!r}."
        raise InvalidArgumentError(msg)
