"""Budget-targeted RW-TD3: λ is a Lagrange multiplier that steers the table to sparsity ``c``.

The paper's agent fixes the memory weight λ and keeps whatever masks it visits; the budget is a
filter after the fact, so at "80 %" its best mask may prune 85 % and waste memory. Here the
search is for one budget: :class:`LagrangianRWTD3` is :class:`~agents.rw_td3.RandomWalkTD3`
with λ updated after every env step by dual ascent on the constraint "kept memory ≤ budget",

    e_t = clip((c − s_t) / (1 − c), −1, 1)
    I_t = clip(I_{t−1} + η · e_t, log λ_min, log λ_max)          (I_0 = log λ_init)
    λ_t = clip(exp(I_t + K_P · e_t), λ_min, λ_max)

where ``s_t`` is the sparsity the step just executed, η = ``lam_lr`` and K_P = ``lam_kp``.
``(c − s_t)/(1 − c)`` is the relative overspend of the memory budget,
``(kept − allowed) / allowed``: positive when the table is too big (λ grows, sizes shrink),
negative when it is too small. It is clipped to ±1 so that one step moves the integral by at
most η: the policy needs a few steps to respond, and an
unclipped start (sparsity 0 at the full-size reset state) would wind λ up to its bound before
the sizes have moved. Why this form:

* it is the gradient of the Lagrangian ``E[q] − λ·(memory − budget)`` with respect to λ,
  taken in log space (exponentiated-gradient / mirror ascent), which keeps λ > 0 and makes a
  step change λ by a *factor*: the λ that meets 80 % and the one that meets 95 % differ by an
  order of magnitude, and an additive step sized for one is wrong for the other;
* dividing by ``1 − c`` makes the same η work at every budget (a 0.05 miss is a 25 % overspend
  at 80 % but 100 % at 95 %);
* per step rather than per episode because fast-mode searches are 5–15 episodes of 10 steps;
  with only 10 updates λ would still be moving when the search ends;
* the proportional term ``K_P · e_t`` (a PI controller on log λ, as in Stooke et al. 2020,
  "Responsive Safety in RL by PID Lagrangian Methods") reacts to the current miss at once,
  while the integral (the dual variable proper) removes the steady-state miss.

The controller can only be as fast as the policy it steers. With RW-TD3's one gradient step
per env step the actor follows a change of λ several episodes late, and an integral loop
around such a lag oscillates instead of settling (on the test suite's synthetic env). An env
step costs a retraining while a gradient step costs milliseconds, so this agent takes
``gradient_steps=10`` per env step by default.

Changing λ changes the reward of every transition already in the replay buffer. Because the
reward is ``quality − λ·penalty(d)`` and the penalty depends only on the executed size (which
the buffer stores as the action), the buffer is *relabelled* exactly after each update, so the
critic always learns the Q-function of the current λ (``relabel=False`` turns this off). The
agent learns from ``(quality − λ·penalty)/(1 + λ)``: the same optimal policy for every λ (a
positive rescaling), but rewards that stay in [−1, 1] while λ moves over orders of magnitude;
without it a λ in the hundreds gives the critic targets it cannot fit. The env must let λ
change without rebuilding it: the agent sets the env attribute ``lam`` (``VecEnv.set_attr``),
which the env's reward reads at every step.

Logged metrics (SB3 logger): ``lagrange/lam`` and ``lagrange/sparsity`` after every step.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from agents.rw_td3 import RandomWalkTD3
from ciess_env.budget import sparsity as table_sparsity
from ciess_env.errors import InvalidArgumentError
from ciess_env.spaces import action_to_sizes, size_penalty

__all__ = ["LagrangianRWTD3"]


class LagrangianRWTD3(RandomWalkTD3):
    """RW-TD3 whose memory weight λ is adapted so the table's sparsity converges to ``c``.

    Everything else is :class:`~agents.rw_td3.RandomWalkTD3` (exploration, networks, paper
    hyperparameters). One search serves one budget.

    Args:
        policy: As :class:`~agents.rw_td3.RandomWalkTD3`.
        env: The per-entity vector env; it must expose a settable ``lam`` attribute.
        target_sparsity: The budget ``c`` in (0, 1).
        lam_init: Initial λ; None takes the env's current ``lam``.
        lam_lr: η, the integral gain of the log-space update (see the module docstring).
        lam_kp: K_P, its proportional gain (0: pure dual ascent).
        lam_bounds: ``(λ_min, λ_max)``, both > 0.
        relabel: Rewrite the rewards in the replay buffer after each λ update.
        gradient_steps: Gradient steps per env step (RW-TD3: 1). The controller needs an actor
            that follows λ within a few steps; see the module docstring.
        **kwargs: Passed to :class:`~agents.rw_td3.RandomWalkTD3`.

    Raises:
        ValueError: on a target outside (0, 1), a non-positive λ, rate or bound, or an env
            without ``lam``.
    """

    def __init__(
        self,
        policy: Any = "EntityPolicy",
        env: Any = None,
        *,
        target_sparsity: float,
        lam_init: float | None = None,
        lam_lr: float = 0.1,
        lam_kp: float = 1.0,
        lam_bounds: tuple[float, float] = (1e-3, 1e2),
        relabel: bool = True,
        gradient_steps: int = 10,
        **kwargs: Any,
    ) -> None:
        c = float(target_sparsity)
        if not 0.0 < c < 1.0:
            msg = f"`target_sparsity` must be in (0, 1), got {target_sparsity!r}."
            raise InvalidArgumentError(msg)
        lo, hi = (float(b) for b in lam_bounds)
        if not 0.0 < lo <= hi:
            msg = f"`lam_bounds` must satisfy 0 < λ_min <= λ_max, got {lam_bounds!r}."
            raise InvalidArgumentError(msg)
        if not (math.isfinite(lam_lr) and lam_lr > 0):
            msg = f"`lam_lr` must be a positive number, got {lam_lr!r}."
            raise InvalidArgumentError(msg)
        super().__init__(policy, env, gradient_steps=gradient_steps, **kwargs)
        self.target_sparsity = c
        self.lam_lr = float(lam_lr)
        self.lam_bounds = (lo, hi)
        self.relabel = relabel
        if self.env is not None:
            try:
                env_lam = float(self.env.get_attr("lam", indices=[0])[0])
            except (AttributeError, NotImplementedError, TypeError) as err:
                msg = "`env` must expose the reward's memory weight as an attribute `lam`."
                raise InvalidArgumentError(msg) from err
            try:
                variant = str(self.env.get_attr("reward_variant", indices=[0])[0])
            except (AttributeError, NotImplementedError, TypeError):
                variant = "paper"
        else:
            env_lam, variant = 0.4, "paper"
        start = env_lam if lam_init is None else float(lam_init)
        if not (math.isfinite(start) and start > 0):
            msg = f"`lam_init` must be a positive number, got {start!r}."
            raise InvalidArgumentError(msg)
        self.lam = min(max(start, lo), hi)
        self.lam_kp = float(lam_kp)
        self._log_lam_integral = math.log(self.lam)
        self.reward_variant = variant
        self._row_lam: np.ndarray | None = None
        if self.env is not None:
            self.env.set_attr("lam", self.lam)

    def _update_lam(self, sparsity: float) -> float:
        """One PI step from the sparsity just executed; returns the new λ."""
        c = self.target_sparsity
        error = min(max((c - sparsity) / (1.0 - c), -1.0), 1.0)
        lo, hi = self.lam_bounds
        self._log_lam_integral = min(
            max(self._log_lam_integral + self.lam_lr * error, math.log(lo)), math.log(hi)
        )
        return min(max(math.exp(self._log_lam_integral + self.lam_kp * error), lo), hi)

    def _relabel(self, new_lam: float) -> None:
        """Rewrite the buffer's rewards as ``(q − λ_new·p)/(1 + λ_new)`` (see the docstring).

        The newest row holds the env's raw reward ``q − λ·p`` at the λ it was run with; older
        rows hold normalised rewards at the λ of the previous update (``_row_lam``).
        """
        buf = self.replay_buffer
        rows = buf.buffer_size if buf.full else buf.pos
        if self._row_lam is None or self._row_lam.shape[0] != buf.buffer_size:
            self._row_lam = np.full(buf.buffer_size, self.lam)
        last = (buf.pos - 1) % buf.buffer_size
        buf.rewards[last] /= 1.0 + self.lam  # the env's raw reward, at the λ it was run with
        self._row_lam[last] = self.lam
        if not self.relabel:
            return
        actions = buf.actions[:rows].reshape(-1)
        sizes = action_to_sizes(actions, n=actions.size, d_min=self.d_min, d_max=self.d_max)
        penalty = size_penalty(
            sizes.reshape(rows, buf.n_envs), d_max=self.d_max, variant=self.reward_variant
        )
        old = self._row_lam[:rows, None]
        quality = buf.rewards[:rows] * (1.0 + old) + old * penalty
        buf.rewards[:rows] = ((quality - new_lam * penalty) / (1.0 + new_lam)).astype(
            buf.rewards.dtype
        )
        self._row_lam[:rows] = new_lam

    def _on_step(self) -> None:
        super()._on_step()
        buf = self.replay_buffer
        if buf is None or (buf.pos == 0 and not buf.full):
            return
        last = (buf.pos - 1) % buf.buffer_size
        sizes = action_to_sizes(
            buf.actions[last].reshape(-1), n=buf.n_envs, d_min=self.d_min, d_max=self.d_max
        )
        sparsity = table_sparsity(sizes, sizes[:0], self.d_max)  # users/items split irrelevant
        new_lam = self._update_lam(sparsity)
        self._relabel(new_lam)
        self.lam = new_lam
        self.env.set_attr("lam", new_lam)  # type: ignore[union-attr]
        self.logger.record("lagrange/lam", new_lam)
        self.logger.record("lagrange/sparsity", sparsity)
