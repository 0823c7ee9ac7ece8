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

Writes are atomic and keep one checkpoint back (:meth:`SearchRun.save`): the files go to
``checkpoint.tmp``, then ``complete.json`` with each file's size and SHA-256, then the renames
``checkpoint`` → ``checkpoint.prev`` and ``checkpoint.tmp`` → ``checkpoint``. Resuming checks
the files against ``complete.json`` and falls back to the previous checkpoint, with a warning,
when the newest is truncated or unreadable; every unreadable file ends as a
:class:`CheckpointDamagedError` that names it.

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
import logging
import os
import pickle
import random
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch as th
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm

from agents.registry import wrap_env_for
from ciess_env._meta import file_sha256
from ciess_env.budget_log import BudgetLog
from ciess_env.env import EmbeddingSizeEnv
from ciess_env.errors import CIESSError, InvalidArgumentError
from ciess_env.vector import EntityVecEnv
from ciess_env.wrappers import RecordBudgetLog

__all__ = [
    "CHECKPOINT_VERSION",
    "COMPLETE_MARKER",
    "CheckpointDamagedError",
    "CheckpointError",
    "CheckpointMeta",
    "CheckpointNotFoundError",
    "SearchRun",
    "probe_seed",
    "read_meta",
]

CHECKPOINT_VERSION = 1

#: Written last into a checkpoint: the size and SHA-256 of every other file in it.
COMPLETE_MARKER = "complete.json"

#: Fault injection for tests: ``"<episodes done>:<stage>"`` (a stage is a file name of the
#: checkpoint, ``budget_log``, ``deterministic_log`` or ``rotate``: between the two renames)
#: ends the process with :data:`CRASH_EXIT_CODE` right after :meth:`SearchRun.save` wrote it.
CRASH_ENV = "CIESS_TEST_CRASH_IN_CHECKPOINT"
CRASH_EXIT_CODE = 86

logger = logging.getLogger(__name__)

_T = TypeVar("_T")


class CheckpointError(CIESSError, ValueError):
    """A checkpoint (or run folder) does not fit the search asked to continue from it."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """No checkpoint where one was expected; the message says what was looked for."""


class CheckpointDamagedError(CheckpointError):
    """A checkpoint file is truncated or unreadable; the message names it and what to do."""


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
        """A fresh search; ``log`` is the (empty) log of the vector env's recorder.

        Raises:
            CheckpointError: if ``checkpoint_dir`` already holds a checkpoint (a fresh search
                would replace it, and its ``.prev`` would mix two searches).
        """
        if checkpoint_dir is not None and _candidates(Path(checkpoint_dir)):
            msg = (
                f"`checkpoint_dir` {checkpoint_dir} already holds a search checkpoint; continue "
                "it with SearchSession.resume, or give an empty or new checkpoint_dir."
            )
            raise CheckpointError(msg)
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

        The newest intact checkpoint is used: ``checkpoint_dir`` itself, a sealed
        ``<dir>.tmp`` that a crash left between the renames of :meth:`save`, else the previous
        one, ``<dir>.prev``. Falling back logs a warning and moves the damaged checkpoint to
        ``<dir>.damaged``; the result is still that of an uninterrupted run (the episodes after
        the previous checkpoint run again, with the same random states).

        Raises:
            CheckpointNotFoundError: if the folder holds no checkpoint.
            CheckpointDamagedError: if every checkpoint there is damaged (truncated, unreadable).
            CheckpointError: if it comes from another format version, or the env differs.
        """
        root = Path(checkpoint_dir)
        run, folder, damaged = _from_newest(
            root, lambda folder: cls._load(env, folder, root, device=device)
        )
        if damaged:
            logger.warning(
                "%s; resuming from the previous checkpoint %s (after episode %d of %d) instead; "
                "the damaged one is kept in %s",
                damaged[0][1], folder, run.meta.episodes_done, run.meta.episodes,
                _sibling(root, "damaged"),
            )  # fmt: skip
        _promote(root, folder, damaged=[f for f, _ in damaged])
        return run

    @classmethod
    def _load(
        cls, env: EmbeddingSizeEnv, folder: Path, root: Path, *, device: str | None
    ) -> SearchRun:
        """Rebuild the search from one checkpoint folder (:meth:`resume` picks which)."""
        meta = _read_state(folder)
        log = _read(folder / "budget_log.npz", lambda: BudgetLog.load(folder / "budget_log"))
        deterministic = _read(
            folder / "deterministic_log.npz", lambda: BudgetLog.load(folder / "deterministic_log")
        )
        if (log.n_users, log.n_items) != (env.n_users, env.n_items):
            msg = (
                f"the checkpoint in {folder} is for {log.n_users} users × {log.n_items} items, "
                f"got an env with {env.n_users} × {env.n_items}; make the env with the "
                "checkpoint's env_id and env_kwargs (state.json)."
            )
            raise CheckpointError(msg)
        # Back to the state right after the automatic reset that ended the last episode:
        # reset() counts the episode and rebuilds the full-size observation (it draws nothing).
        env.episode = meta.env_episode - 1
        # DiscreteSizes for esapn; the recorder continues the saved log (and its episode count).
        vec = EntityVecEnv(RecordBudgetLog(wrap_env_for(meta.agent, env), log=log))
        obs = vec.reset()
        agent_device = device or meta.agent_kwargs.get("device", "auto")
        agent_class = _load_class(meta.agent_class)
        model = _read(
            folder / "agent.zip",
            lambda: agent_class.load(
                folder / "agent.zip", env=vec, device=agent_device, force_reset=False
            ),
        )
        if not np.array_equal(model._last_obs, obs):
            msg = (
                f"the agent saved in {folder} last saw another observation than this env's "
                "reset; make the env with the checkpoint's env_id and env_kwargs (state.json)."
            )
            raise CheckpointError(msg)
        # load() reseeds through set_random_seed, which also leaves a pending seed in the vector
        # env; the next automatic reset would then reseed the env's np_random. Drop it.
        vec.drop_pending_seeds()
        if isinstance(model, OffPolicyAlgorithm):
            buffer = folder / "replay_buffer.pkl"
            with buffer.open("rb") as f:  # SB3 leaves its own handle open when unpickling fails
                _read(buffer, lambda: model.load_replay_buffer(f))
        rng = _read(folder / "rng.pkl", lambda: pickle.loads((folder / "rng.pkl").read_bytes()))
        _restore_rng(rng, model, env)
        return cls(
            env, vec, model, meta, log=log, checkpoint_dir=root,
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
        self.meta.env_episode = int(self.env.episode)
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
        """Write the checkpoint to ``folder``, keeping the one it replaces as ``<folder>.prev``.

        The files go to ``<folder>.tmp``, then ``complete.json`` with their sizes and SHA-256
        (last, so a checkpoint without it is incomplete), then two renames: ``folder`` →
        ``.prev``, ``.tmp`` → ``folder``. A crash at any point leaves an intact checkpoint
        that :meth:`resume` finds, and a damaged newest one still has ``.prev`` to fall back to.
        """
        folder = Path(folder)
        tmp, prev = _sibling(folder, "tmp"), _sibling(folder, "prev")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        self.model.save(tmp / "agent.zip")
        self._crash_point("agent.zip")
        if isinstance(self.model, OffPolicyAlgorithm):
            self.model.save_replay_buffer(tmp / "replay_buffer.pkl")
            self._crash_point("replay_buffer.pkl")
        self.log.save(tmp / "budget_log")
        self._crash_point("budget_log")
        self.deterministic_log.save(tmp / "deterministic_log")
        self._crash_point("deterministic_log")
        with (tmp / "rng.pkl").open("wb") as f:
            pickle.dump(_capture_rng(self.model, self.env), f)
        self._crash_point("rng.pkl")
        (tmp / "state.json").write_text(json.dumps(asdict(self.meta), indent=2, default=repr))
        self._crash_point("state.json")
        _seal(tmp)
        self._crash_point(COMPLETE_MARKER)
        if folder.exists():
            shutil.rmtree(prev, ignore_errors=True)
            os.replace(folder, prev)
        self._crash_point("rotate")
        os.replace(tmp, folder)
        shutil.rmtree(_sibling(folder, "old"), ignore_errors=True)  # an older ciess-env's
        return folder

    def _crash_point(self, stage: str) -> None:
        """End the process here, as a kill would, if :data:`CRASH_ENV` names this point.

        For the tests that kill a search while it writes a checkpoint; read once per file of
        a checkpoint (once per episode), never in the search's steps.
        """
        if os.environ.get(CRASH_ENV) == f"{self.meta.episodes_done}:{stage}":
            os._exit(CRASH_EXIT_CODE)


def read_meta(folder: str | Path) -> CheckpointMeta:
    """The :class:`CheckpointMeta` of the newest intact checkpoint in a checkpoint folder.

    Raises:
        CheckpointNotFoundError: if the folder holds no checkpoint.
        CheckpointDamagedError: if every checkpoint's ``state.json`` there is damaged.
        CheckpointError: on an unknown format version.
    """
    return _from_newest(Path(folder), _read_state)[0]


def _sibling(folder: Path, tag: str) -> Path:
    return folder.with_name(f"{folder.name}.{tag}")


def _candidates(root: Path) -> list[Path]:
    """Checkpoint folders of ``root``, newest first.

    A sealed ``.tmp`` is newer than ``root`` (a crash between the renames of
    :meth:`SearchRun.save`); ``.prev`` is the one before; ``.old`` is what an older ciess-env
    left after a crash between its renames.
    """
    tmp = _sibling(root, "tmp")
    found = [tmp] if (tmp / COMPLETE_MARKER).is_file() else []
    for folder in (root, _sibling(root, "prev"), _sibling(root, "old")):
        if folder.is_dir() and any(folder.iterdir()):
            found.append(folder)
    return found


def _from_newest(
    root: Path, load: Callable[[Path], _T]
) -> tuple[_T, Path, list[tuple[Path, CheckpointDamagedError]]]:
    """``load`` the newest checkpoint of ``root`` that is not damaged.

    Returns:
        What ``load`` returned, the folder it read, and the damaged newer ones with why.
    """
    damaged: list[tuple[Path, CheckpointDamagedError]] = []
    for folder in _candidates(root):
        try:
            return load(folder), folder, damaged
        except CheckpointDamagedError as err:
            damaged.append((folder, err))
    if damaged:
        reasons = "; ".join(str(err).rstrip(".") for _, err in damaged)
        msg = (
            f"no intact search checkpoint in {root}: {reasons}. The search cannot continue "
            "from it: start it again on an empty checkpoint folder, or restore the files from a "
            "backup."
        )
        raise CheckpointDamagedError(msg)
    msg = (
        f"no search checkpoint in {root} (expected {root / 'state.json'}): the search stopped "
        "before its first episode ended, or this is not a checkpoint folder. Start the search "
        "again instead of resuming it."
    )
    raise CheckpointNotFoundError(msg)


def _promote(root: Path, chosen: Path, *, damaged: list[Path]) -> None:
    """Make ``chosen`` the current checkpoint of ``root``; keep a damaged one as ``.damaged``.

    After this, :meth:`SearchRun.save` rotates as usual: a sealed ``.tmp`` becomes ``root``
    (its older ``root`` the ``.prev``), an older ciess-env's ``.old`` becomes ``root``, and a
    ``.prev`` stays the fallback until the next save has written a new ``root``.
    """
    if chosen == root:
        return
    if root.exists():
        if root in damaged:
            broken = _sibling(root, "damaged")
            shutil.rmtree(broken, ignore_errors=True)
            os.replace(root, broken)
        else:  # intact but older than the sealed .tmp
            shutil.rmtree(_sibling(root, "prev"), ignore_errors=True)
            os.replace(root, _sibling(root, "prev"))
    if chosen.name.endswith((".tmp", ".old")):
        os.replace(chosen, root)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _seal(folder: Path) -> None:
    """Flush every file of ``folder`` to disk, then write :data:`COMPLETE_MARKER` (atomically)."""
    files = {}
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        _fsync(path)
        files[path.name] = {"bytes": path.stat().st_size, "sha256": file_sha256(path)}
    marker = folder / COMPLETE_MARKER
    partial = folder / f".{COMPLETE_MARKER}.tmp"
    partial.write_text(json.dumps({"version": CHECKPOINT_VERSION, "files": files}, indent=1))
    _fsync(partial)
    os.replace(partial, marker)
    _fsync(folder)


def _damaged(path: Path, why: str) -> CheckpointDamagedError:
    return CheckpointDamagedError(f"{path} is damaged ({why})")


def _verify(folder: Path) -> None:
    """Check every file against the sizes and hashes in :data:`COMPLETE_MARKER`.

    A folder without the marker is an older ciess-env's checkpoint if it has ``state.json``
    (its files are checked as they load), else an incomplete one.

    Raises:
        CheckpointDamagedError: naming the first file that is missing, short or altered.
    """
    marker = folder / COMPLETE_MARKER
    if not marker.is_file():
        if (folder / "state.json").is_file():
            return
        msg = f"{folder} is an incomplete checkpoint (neither {COMPLETE_MARKER} nor state.json)"
        raise CheckpointDamagedError(msg)
    try:
        files = json.loads(marker.read_text())["files"]
        expected = {str(k): (int(v["bytes"]), str(v["sha256"])) for k, v in files.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise _damaged(marker, f"{type(err).__name__}: {err}") from err
    for name, (size, digest) in expected.items():
        path = folder / name
        if not path.is_file():
            raise _damaged(path, "missing")
        actual = path.stat().st_size
        if actual != size:
            raise _damaged(path, f"{actual} bytes, {size} when written: truncated")
        if file_sha256(path) != digest:
            raise _damaged(path, f"its SHA-256 differs from the one in {COMPLETE_MARKER}")


def _read(path: Path, load: Callable[[], _T]) -> _T:
    """``load()``, with any failure to read ``path`` as a :class:`CheckpointDamagedError`."""
    try:
        return load()
    except CheckpointError:
        raise
    except Exception as err:  # unpickling, zip, numpy, torch: any file that cannot be read
        one_line = " ".join(str(err).splitlines())
        raise _damaged(path, f"{type(err).__name__}: {one_line}") from err


def _read_state(folder: Path) -> CheckpointMeta:
    """The checkpoint's ``state.json`` (checked against the marker when there is one)."""
    path = folder / "state.json"
    marker = folder / COMPLETE_MARKER
    if marker.is_file():
        _verify(folder)
    elif not path.is_file():
        raise _damaged(path, "missing")
    raw = _read(path, lambda: json.loads(path.read_text()))
    if not isinstance(raw, dict):
        raise _damaged(path, f"a JSON object was expected, got {type(raw).__name__}")
    if raw.get("version") != CHECKPOINT_VERSION:
        msg = (
            f"`version` must be {CHECKPOINT_VERSION}, got {raw.get('version')!r} in "
            f"{path}; this checkpoint was written by another ciess-env."
        )
        raise CheckpointError(msg)
    return _read(path, lambda: CheckpointMeta(**raw))


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
