"""Episode checkpoints of a search, so that a long search can span several sittings.

A search run through :class:`SearchRun` stops at the end of every episode — after the update
that follows the episode's last step, before the next action is drawn — and writes everything
the rest of the search depends on:

* the agent (``model.save``: weights, optimiser states, counters, SB3's action-noise object and
  ``_last_obs``) and, for off-policy agents, its replay buffer (``save_replay_buffer``);
* every random state: Python's, NumPy's and torch's global generators (SB3 draws target
  smoothing noise from torch's, minibatches and Gaussian action noise from NumPy's), the
  agent's own ``np.random.Generator`` attributes (RandomWalkTD3's walk/noise generator), the
  action space's generator (SB3's uniform warm-up) and the env's ``np_random`` (the seeds of
  every step's retraining);
* the env's episode counter and the budget logs.

Resuming loads the agent with ``force_reset=False``, restores the buffer, then the random
states (``load`` reseeds everything through ``set_random_seed``, so they must come last, and it
leaves a pending seed in the vector env that would reseed the env at its next reset), puts
the env back in its post-reset state, and continues with ``learn(reset_num_timesteps=False)``
for the remaining timesteps, so SB3's progress and schedules see the same total as an
uninterrupted run. The result is bit for bit that of a run that was never stopped
(``tests/agents/test_resume.py``), on the CPU with the same thread count.

Optionally, at every episode end the policy's own noise-free mask
(``predict(terminal_obs, deterministic=True)``) is scored by
:meth:`~ciess_env.env.EmbeddingSizeEnv.evaluate_sizes` with a seed of its own and logged in a
separate budget log, without touching any state the search depends on.
"""

from __future__ import annotations

import importlib
import json
import pickle
import random
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm

from agents.registry import wrap_env_for
from ciess_env.budget_log import BudgetLog
from ciess_env.env import EmbeddingSizeEnv
from ciess_env.errors import CIESSError, InvalidArgumentError
from ciess_env.vector import EntityVecEnv
from ciess_env.wrappers import RecordBudgetLog

__all__ = [
    "CHECKPOINT_VERSION",
    "CheckpointError",
    "CheckpointMeta",
    "CheckpointNotFoundError",
    "SearchRun",
    "probe_seed",
    "read_meta",
]

CHECKPOINT_VERSION = 1


class CheckpointError(CIESSError, ValueError):
    """A checkpoint (or run folder) does not fit the search asked to continue from it."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """No checkpoint where one was expected; the message says what was looked for."""


@dataclass
class CheckpointMeta:
    """What a checkpoint says about its search (``state.json``, human-readable).

    Attributes:
        env_id: The env id the search ran on.
        env_kwargs: Its ``gym.make`` overrides.
        seed: The session seed.
        agent: The registry name of the agent.
        agent_class: ``module:qualname`` of the agent's class (what ``load`` is called on).
        agent_kwargs: The agent's keyword arguments (repr of anything not JSON).
        episodes: Episodes the search was asked for.
        episodes_done: Episodes finished when the checkpoint was written.
        deterministic_masks: Whether the policy's noise-free masks are probed and logged.
        env_episode: The env's episode counter after the last reset.
        version: Checkpoint format version.
    """

    env_id: str
    env_kwargs: dict[str, Any]
    seed: int
    agent: str
    agent_class: str
    agent_kwargs: dict[str, Any]
    episodes: int
    episodes_done: int = 0
    deterministic_masks: bool = False
    env_episode: int = 0
    version: int = CHECKPOINT_VERSION
    extra: dict[str, Any] = field(default_factory=dict)


def probe_seed(seed: int, episode: int) -> int:
    """Seed of the noise-free probe after ``episode`` (its own stream, never the search's)."""
    return int(np.random.SeedSequence([int(seed), int(episode), 0x7072_6F62]).generate_state(1)[0])


class _StopSearch(Exception):
    """Raised at an episode boundary to end this sitting after the checkpoint is written."""


def _generators(model: BaseAlgorithm) -> dict[str, np.random.Generator]:
    return {k: v for k, v in vars(model).items() if isinstance(v, np.random.Generator)}


def _capture_rng(model: BaseAlgorithm, env: EmbeddingSizeEnv) -> dict[str, Any]:
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),  # noqa: NPY002 (SB3 samples minibatches from it)
        "torch": th.get_rng_state(),
        "torch_cuda": th.cuda.get_rng_state_all() if th.cuda.is_available() else None,
        "env": env.np_random.bit_generator.state,
        "action_space": model.action_space.np_random.bit_generator.state,
        "agent": {k: g.bit_generator.state for k, g in _generators(model).items()},
    }


def _restore_generator(gen: np.random.Generator, state: dict[str, Any]) -> np.random.Generator:
    if type(gen.bit_generator).__name__ != state["bit_generator"]:
        gen = np.random.Generator(getattr(np.random, state["bit_generator"])())
    gen.bit_generator.state = state
    return gen


def _restore_rng(state: dict[str, Any], model: BaseAlgorithm, env: EmbeddingSizeEnv) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])  # noqa: NPY002
    th.set_rng_state(state["torch"])
    if state["torch_cuda"] is not None and th.cuda.is_available():
        th.cuda.set_rng_state_all(state["torch_cuda"])
    env.np_random = _restore_generator(env.np_random, state["env"])
    space = model.action_space
    space._np_random = _restore_generator(space.np_random, state["action_space"])
    for name, gen_state in state["agent"].items():
        setattr(model, name, _restore_generator(getattr(model, name), gen_state))


def _class_path(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _load_class(path: str) -> type[BaseAlgorithm]:
    module, _, name = path.partition(":")
    obj: Any = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
    except TypeError:
        return repr(value)
    return value


class SearchRun:
    """One agent searching one env, checkpointed at every episode end.

    Build it with :meth:`start` (a fresh search) or :meth:`resume` (from a checkpoint folder),
    then call :meth:`run`. ``SearchSession.search`` and ``SearchSession.resume`` do this.

    Args:
        env: The env the search steps (the base env, for its episode count and scoring).
        vec: The per-entity vector env around it (through a
            :class:`~ciess_env.wrappers.RecordBudgetLog` that records into ``log``).
        model: The agent.
        meta: The search's description and progress.
        log: The budget log the recorder writes every step to (saved with the checkpoint).
        checkpoint_dir: Folder of the checkpoint, rewritten after every episode; None: none.
        deterministic_log: Log of the policy's noise-free masks (one per episode).
    """

    def __init__(
        self,
        env: EmbeddingSizeEnv,
        vec: EntityVecEnv,
        model: BaseAlgorithm,
        meta: CheckpointMeta,
        *,
        log: BudgetLog,
        checkpoint_dir: str | Path | None,
        deterministic_log: BudgetLog | None = None,
    ) -> None:
        self.env = env
        self.log = log
        self.vec = vec
        self.model = model
        self.meta = meta
        self.checkpoint_dir = None if checkpoint_dir is None else Path(checkpoint_dir)
        self.deterministic_log = deterministic_log or BudgetLog(
            env.n_users, env.n_items, d_max=env.d_max
        )
        self._sitting_episodes = 0
        self._stop_after: int | None = None

    # ------------------------------------------------------------ building
    @classmethod
    def start(
        cls,
        env: EmbeddingSizeEnv,
        vec: EntityVecEnv,
        model: BaseAlgorithm,
        meta: CheckpointMeta,
        *,
        log: BudgetLog,
        checkpoint_dir: str | Path | None = None,
    ) -> SearchRun:
        """A fresh search; ``log`` is the (empty) log of the vector env's recorder."""
        meta.agent_class = _class_path(type(model))
        meta.agent_kwargs = {k: _jsonable(v) for k, v in meta.agent_kwargs.items()}
        return cls(env, vec, model, meta, log=log, checkpoint_dir=checkpoint_dir)

    @classmethod
    def resume(
        cls, env: EmbeddingSizeEnv, checkpoint_dir: str | Path, *, device: str | None = None
    ) -> SearchRun:
        """Rebuild a search from its checkpoint, ready to :meth:`run` the remaining episodes.

        Args:
            env: A fresh env made with the checkpoint's ``env_id`` and ``env_kwargs``.
            checkpoint_dir: The folder a previous run wrote.
            device: Torch device of the agent; None: the agent's ``device`` keyword, else SB3's
                ``"auto"``.

        Raises:
            CheckpointNotFoundError: if the folder holds no checkpoint.
            CheckpointError: if it comes from another format version, or the env differs.
        """
        folder = _existing_checkpoint(Path(checkpoint_dir))
        meta = read_meta(folder)
        log = BudgetLog.load(folder / "budget_log")
        deterministic = BudgetLog.load(folder / "deterministic_log")
        if (log.n_users, log.n_items) != (env.n_users, env.n_items):
            msg = (
                f"the checkpoint in {folder} is for {log.n_users} users × {log.n_items} items, "
                f"got an env with {env.n_users} × {env.n_items}; make the env with the "
                "checkpoint's env_id and env_kwargs (state.json)."
            )
            raise CheckpointError(msg)
        # Back to the state right after the automatic reset that ended the last episode:
        # reset() counts the episode and rebuilds the full-size observation (it draws nothing).
        env._episode = meta.env_episode - 1
        # DiscreteSizes for esapn; the recorder continues the saved log (and its episode count).
        vec = EntityVecEnv(RecordBudgetLog(wrap_env_for(meta.agent, env), log=log))
        obs = vec.reset()
        agent_device = device or meta.agent_kwargs.get("device", "auto")
        model = _load_class(meta.agent_class).load(
            folder / "agent.zip", env=vec, device=agent_device, force_reset=False
        )
        if not np.array_equal(model._last_obs, obs):
            msg = (
                f"the agent saved in {folder} last saw another observation than this env's "
                "reset; make the env with the checkpoint's env_id and env_kwargs (state.json)."
            )
            raise CheckpointError(msg)
        # load() reseeds through set_random_seed, which also leaves a pending seed in the vector
        # env; the next automatic reset would then reseed the env's np_random. Drop it.
        vec._reset_seeds()
        if isinstance(model, OffPolicyAlgorithm):
            model.load_replay_buffer(folder / "replay_buffer.pkl")
        with (folder / "rng.pkl").open("rb") as f:
            _restore_rng(pickle.load(f), model, env)
        return cls(
            env, vec, model, meta, log=log, checkpoint_dir=checkpoint_dir,
            deterministic_log=deterministic,
        )  # fmt: skip

    # ------------------------------------------------------------- running
    @property
    def finished(self) -> bool:
        """Whether every requested episode has run."""
        return self.meta.episodes_done >= self.meta.episodes

    def run(self, *, stop_after: int | None = None, callbacks: list[BaseCallback] | None = None):
        """Run the remaining episodes, or ``stop_after`` of them (then checkpoint and return).

        Args:
            stop_after: Episodes to run in this sitting; None: all remaining.
            callbacks: Extra SB3 callbacks (e.g. a progress bar).

        Returns:
            ``self``; :attr:`finished` says whether the search is complete.
        """
        if stop_after is not None and stop_after < 1:
            msg = f"`stop_after` must be None or >= 1 episodes, got {stop_after!r}."
            raise InvalidArgumentError(msg)
        if self.finished:
            return self
        self._stop_after = stop_after
        self._sitting_episodes = 0
        steps_per_episode = self.env.max_episode_steps * self.vec.num_envs
        total = self.meta.episodes * steps_per_episode
        first = self.meta.episodes_done == 0 and self.model.num_timesteps == 0
        try:
            # log_interval: SB3 would dump its logger once per finished sub-env (every entity)
            # at each episode end; the budget log already holds every step.
            self.model.learn(
                total_timesteps=total - self.model.num_timesteps,
                callback=[_EpisodeEnd(self), *(callbacks or [])],
                log_interval=10**9,
                reset_num_timesteps=first,
            )
        except _StopSearch:
            pass
        return self

    # ----------------------------------------------------------- episode end
    def _episode_finished(self, terminal_obs: np.ndarray) -> None:
        if self.meta.deterministic_masks:
            self._probe(terminal_obs)
        self.meta.episodes_done += 1
        self._sitting_episodes += 1
        self.meta.env_episode = int(self.env._episode)
        if self.checkpoint_dir is not None:
            self.save(self.checkpoint_dir)
        if (
            self._stop_after is not None
            and self._sitting_episodes >= self._stop_after
            and not self.finished
        ):
            raise _StopSearch

    def _probe(self, terminal_obs: np.ndarray) -> None:
        """Score and log the policy's noise-free mask in the state the episode ended in."""
        actions, _ = self.model.predict(terminal_obs, deterministic=True)
        users, items = self.env.action_to_sizes(np.asarray(actions).reshape(-1))
        steps = self.log.steps
        episode = steps[-1].episode if steps else 0
        info = self.env.evaluate_sizes(users, items, seed=probe_seed(self.meta.seed, episode))
        self.deterministic_log.record(
            episode=episode,
            step=self.env.max_episode_steps,
            user_sizes=users,
            item_sizes=items,
            sparsity=info["sparsity"],
            mean_quality=info["mean_quality_ratio"],
            recall_20=info["recall@20"],
            ndcg_20=info["ndcg@20"],
            reward=info["reward"],
        )

    def save(self, folder: str | Path) -> Path:
        """Write the checkpoint to ``folder`` (atomically: a crash leaves the previous one)."""
        folder = Path(folder)
        tmp = folder.with_name(folder.name + ".tmp")
        old = folder.with_name(folder.name + ".old")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        self.model.save(tmp / "agent.zip")
        if isinstance(self.model, OffPolicyAlgorithm):
            self.model.save_replay_buffer(tmp / "replay_buffer.pkl")
        self.log.save(tmp / "budget_log")
        self.deterministic_log.save(tmp / "deterministic_log")
        with (tmp / "rng.pkl").open("wb") as f:
            pickle.dump(_capture_rng(self.model, self.env), f)
        (tmp / "state.json").write_text(json.dumps(asdict(self.meta), indent=2, default=repr))
        if folder.exists():
            shutil.rmtree(old, ignore_errors=True)
            folder.rename(old)
        tmp.rename(folder)
        shutil.rmtree(old, ignore_errors=True)
        return folder


def read_meta(folder: str | Path) -> CheckpointMeta:
    """The :class:`CheckpointMeta` of a checkpoint folder.

    Raises:
        CheckpointNotFoundError: if the folder holds no checkpoint.
        CheckpointError: on an unknown format version.
    """
    folder = _existing_checkpoint(Path(folder))
    raw = json.loads((folder / "state.json").read_text())
    if raw.get("version") != CHECKPOINT_VERSION:
        msg = (
            f"`version` must be {CHECKPOINT_VERSION}, got {raw.get('version')!r} in "
            f"{folder / 'state.json'}; this checkpoint was written by another ciess-env."
        )
        raise CheckpointError(msg)
    return CheckpointMeta(**raw)


def _existing_checkpoint(folder: Path) -> Path:
    """The folder, or the previous checkpoint left by a crash between the two renames."""
    if (folder / "state.json").is_file():
        return folder
    old = folder.with_name(folder.name + ".old")
    if (old / "state.json").is_file():
        return old
    msg = (
        f"no search checkpoint in {folder} (expected {folder / 'state.json'}); "
        "a search writes one after every episode when given checkpoint_dir."
    )
    raise CheckpointNotFoundError(msg)


class _EpisodeEnd(BaseCallback):
    """Calls :meth:`SearchRun._episode_finished` once per episode, after its last update.

    SB3 calls ``on_step`` before storing the transition and training on it, so the episode's
    end is noted there (with the terminal observations) and acted on at the next
    ``on_rollout_start`` (after the update, before the next action) or at ``on_training_end``.
    """

    def __init__(self, run: SearchRun) -> None:
        super().__init__()
        self.search = run
        self._terminal: np.ndarray | None = None

    def _on_step(self) -> bool:
        dones = self.locals["dones"]
        if np.all(dones):  # the per-entity env ends every sub-env's episode together
            infos = self.locals["infos"]
            self._terminal = np.stack([info["terminal_observation"] for info in infos])
        return True

    def _flush(self) -> None:
        if self._terminal is not None:
            terminal, self._terminal = self._terminal, None
            self.search._episode_finished(terminal)

    def _on_rollout_start(self) -> None:
        self._flush()

    def _on_training_end(self) -> None:
        self._flush()
