"""The CIESS embedding-size search environment (paper §1.2, Algorithm 1)."""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from collections import OrderedDict
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch

from ciess_env import spaces
from ciess_env.budget_log import MAX_D_MAX
from ciess_env.checks import check_device, check_int, check_seed
from ciess_env.config import PRESETS, PretrainConfig, StepConfig, check_step
from ciess_env.data import canonical_name, dataset_spec, load_dataset
from ciess_env.data.interactions import InteractionData
from ciess_env.errors import CallOrderError, InvalidArgumentError, InvalidTypeError, suggest
from ciess_env.metrics import EvalResult, ragged_storage_bytes, sparsity
from ciess_env.recommenders import BACKBONES, PretrainResult, TrainConfig, paper_train_config
from ciess_env.recommenders.pretraining import pretrain, pretrain_cache_key
from ciess_env.recommenders.registry import backbone_spec, check_hparams
from ciess_env.retrain import RetrainDesign, StepOutcome, retrain_and_evaluate

__all__ = ["EmbeddingSizeEnv"]

logger = logging.getLogger(__name__)

#: Synthetic data: batch size of a step; the batches per step are each backbone's
#: ``BackboneSpec.synthetic_batches``. The paper schedule is compressed to fit.
_SYNTHETIC_BATCH_SIZE = 2048

_RENDER_MODES = ["ansi", "rgb_array"]

#: Largest λ accepted. Rewards are float32 and ``q ≤ 1``: at λ = 10⁴ the quality term still
#: moves a reward of magnitude 10⁴ by more than float32's resolution there (≈ 10⁻³), beyond it
#: quality differences vanish into rounding, and near 10³⁸ the rewards overflow to −inf. The
#: paper uses 0.2–0.4; the Lagrangian agent caps λ at 100 by default.
MAX_LAM = 1e4


class _Default:
    """A keyword's default value, told apart from the same value passed.

    ``step_config`` replaces the step keywords left at their defaults; one passed by the caller
    or fixed by an id (``backbone="lightgcn"`` of a LightGCN id) must agree with it.
    """


class _DefaultStr(_Default, str):
    pass


class _DefaultInt(_Default, int):
    pass


_DEFAULT_BACKBONE = _DefaultStr("lightgcn")
_DEFAULT_RETRAIN = _DefaultStr("scratch")
_DEFAULT_DEVICE = _DefaultStr("cpu")
_DEFAULT_D_MIN = _DefaultInt(1)
_DEFAULT_D_MAX = _DefaultInt(128)


class _LRU(OrderedDict):
    """A tiny least-recently-used memo (data sets and pretrained models by their cache key)."""

    def __init__(self, maxsize: int) -> None:
        super().__init__()
        self.maxsize = maxsize

    def get_or_make(self, key: Any, make: Any) -> Any:
        if key in self:
            self.move_to_end(key)
            return self[key]
        value = make()
        self[key] = value
        while len(self) > self.maxsize:
            self.popitem(last=False)
        return value


# Process-wide memos: check_env, gym.make in a loop and the vector env create several envs on
# the same data; loading ML-1M or re-reading a pretrained model each time would dominate.
_DATA_MEMO = _LRU(maxsize=4)
_PRETRAIN_MEMO = _LRU(maxsize=8)


class EmbeddingSizeEnv(gym.Env[np.ndarray, np.ndarray]):
    r"""Choose an embedding size for every user and item of a recommender (CIESS, SIGIR 2023).

    ## Description

    The environment is a recommender with one user table and one item table of width
    ``d_max``, of which every user and item keeps only the first ``d`` dimensions (the prefix
    mask of paper Eq. 1–2). An action assigns a size to **every** user and item at once; the
    env then retrains the backbone with those sizes, evaluates it on the validation split with
    full ranking, and returns per-entity states and rewards (paper §1.2, Algorithm 1 lines 7–11).
    The paper's agent treats each user and item as its own MDP with a shared policy per side;
    :class:`ciess_env.vector.EntityVecEnv` exposes exactly that view to Stable-Baselines3. The
    env is a pure MDP: recording the masks a search tried, for selective retraining, is the
    job of the opt-in wrapper :class:`ciess_env.wrappers.RecordBudgetLog`.

    ``N = n_users + n_items`` below; index ``n < n_users`` is user ``n``, the rest are items.

    ## Action Space

    ``Box(-1, 1, (N,), float32)``. Entry ``n`` maps to the size
    ``d_n = round(d_min + (a_n + 1)/2 · (d_max − d_min))`` (halves round up). Values outside
    [−1, 1] are clipped (exploration noise may overshoot, as in the reference's clip to
    [1, 128]). NaN/inf or a wrong shape raises ``ValueError``; bool, complex or string
    entries, a tensor that requires grad, and integers outside [−1, 1] (sizes passed where an
    action belongs) raise ``TypeError`` (both as ``CIESSError``). An ``(N, 1)`` array and a
    detached tensor are accepted.
    Integer sizes convert with :meth:`sizes_to_action`; :meth:`action_to_sizes` is the map
    itself, so baselines and agents share it.

    ## Observation Space

    ``Box(-1, 1, (N, 4), float32)``, one row per entity, users first:

    | Col | Feature | Min | Max | Definition |
    |-----|---------|-----|-----|------------|
    | 0 | entity type | -1 | 1 | −1 for a user, +1 for an item |
    | 1 | popularity | -1 | 1 | training-interaction count, min–max scaled to [−1, 1] per side |
    | 2 | size | -1 | 1 | ``(d − d_min)/(d_max − d_min)·2 − 1`` |
    | 3 | quality ratio | -1 | 1 | ``2q − 1``, ``q = min(quality / max(quality_full, 1e-5), 1)`` |

    Columns 1–3 are the paper's state ``[f̃_n, d_n/d_max, q_n]`` (Eq. 6–7) scaled to [−1, 1] as
    in the reference code; column 0 lets one policy serve both sides. ``quality`` is the mean
    of Recall and NDCG at 5, 10 and 20 (Eq. 8; for an item, the mean over its training users,
    Eq. 9); ``quality_full`` is the same for the pretrained full-size model. An entity whose
    full-size quality is 0 (e.g. a user without validation items) has q = 0 at every size.

    **Agents that want a vector** (SB3's ``MlpPolicy``, cleanrl scripts): wrap the env in
    ``gymnasium.wrappers.FlattenObservation`` (``(4·N,)``; SB3's ``check_env`` accepts it
    without a warning), or use the per-entity views, :class:`ciess_env.vector.EntityVecEnv`
    (SB3) and :class:`ciess_env.entity_vector.EntityVectorEnv` (``gymnasium.vector``), where
    each user and item observes its own ``(4,)`` row. **Replay buffers:** one table-level
    transition takes ``36·N + 12`` bytes in SB3's buffer, so its default ``buffer_size`` of 10⁶
    needs 54 GB on the default synthetic table (N = 1,500) and 351 GB on ML-1M; pass e.g.
    ``buffer_size=1_000`` (100 episodes). One per-entity transition takes 36 bytes.

    ## Rewards

    Per entity, paper Eq. 10: ``r_n = q_n − λ·(d_n/d_max)²``. With ``reward="code"`` the
    authors' variant ``r_n = quality_n − λ·((d_n − 1)/d_max)²`` (raw quality, not the ratio).
    With ``reward="team"`` (beyond the paper) every entity's quality term is the table-level
    ``q̄`` (mean of ``q`` over users ∪ items, Eq. 15): ``r_n = q̄ − λ·(d_n/d_max)²``, so each
    entity sees the collective effect of its size instead of its own quality, which depends
    mostly on everyone else's sizes; the scalar reward equals ``"paper"``'s. The formulas are
    :func:`ciess_env.spaces.entity_rewards`. The scalar reward is the mean of the ``N``
    per-entity rewards; the vector is in ``info["entity_rewards"]``.

    λ may change between steps without rebuilding the env: assign ``env.unwrapped.lam``
    (validated; through a vector env, ``set_attr("lam", value)``); the next step's reward uses
    it. Agents that steer λ to a budget do this (:class:`agents.lagrangian.LagrangianRWTD3`).

    ## Starting State

    All sizes ``d_max``. The observation comes from the full-size model, trained once with
    early stopping (``pretrain``; cached on disk and in memory), so every quality ratio is 1
    (0 where the full-size quality is 0). The first reset pays for pretraining (or loading it).

    ## Episode End

    ``terminated`` is always ``False`` (the paper has no terminal state). ``truncated`` is
    ``True`` on step ``max_episode_steps`` (paper T = 10). The env truncates by itself, and the
    registered ids also carry ``max_episode_steps=10`` so Gymnasium's ``TimeLimit`` agrees.
    Note that ``gym.make(id, max_episode_steps=T)`` is consumed by Gymnasium and only changes
    the ``TimeLimit``, which can shorten but not lengthen episodes; to lengthen them construct
    ``EmbeddingSizeEnv(max_episode_steps=T)`` directly. Stepping a truncated episode without a
    reset raises ``RuntimeError``.

    ## Info

    ``step`` returns (arrays are fresh copies):

    | Key | Type | Meaning |
    |-----|------|---------|
    | ``"entity_rewards"`` | (N,) float32 | per-entity rewards (users first) |
    | ``"user_quality"`` | float | mean user quality (Eq. 8) over users with validation items |
    | ``"item_quality"`` | float | mean item quality (Eq. 9) over items with such users |
    | ``"mean_quality_ratio"`` | float | ``q̄``, mean of ``q`` over users ∪ items (Eq. 15) |
    | ``"recall@20"`` | float | validation Recall@20 |
    | ``"ndcg@20"`` | float | validation NDCG@20 |
    | ``"sparsity"`` | float | ``1 − Σd / (d_max·N)``, the budget ``c`` of Eq. 5 |
    | ``"kept_parameters"`` | int | embedding parameters kept (× tables, e.g. 2 for NCF) |
    | ``"memory_bytes"`` | int | float32 ragged storage of the kept rows plus row offsets |
    | ``"user_sizes"`` | (n_users,) int64 | sizes applied |
    | ``"item_sizes"`` | (n_items,) int64 | sizes applied |
    | ``"train_seconds"`` | float | wall clock of building + training the model; 0.0 unless
      ``report_train_seconds=True`` (see below) |

    Wall-clock time is the one thing a seeded step cannot reproduce, and Gymnasium's
    ``check_env`` requires identical infos for identical seeds and actions; so the time goes
    into ``info`` only on request (``report_train_seconds=True``, as the benchmarks do). It is
    always available as ``env.unwrapped.last_train_seconds``.

    ``reset`` returns the same keys, for the full-size model, without ``"entity_rewards"``.

    ## Arguments

    | Parameter | Type | Default | Description |
    |-----------|------|---------|-------------|
    | ``dataset`` | str | ``"ml-1m"`` | ``"ml-1m"``, ``"ml-100k"``, ``"yelp2018"``, ``"synthetic"``|
    | ``backbone`` | str | ``"lightgcn"`` | ``"lightgcn"``, ``"ngcf"``, ``"ncf"`` or ``"mf"`` |
    | ``data_dir`` | path | ``None`` | data folder; else ``$CIESS_DATA_DIR``, then the user cache |
    | ``data`` | InteractionData | ``None`` | use this split data set instead of loading one |
    | ``lam`` | float | 0.4 | λ of Eq. 10 (paper: 0.4 ML-1M, 0.2 Yelp2018) |
    | ``d_min`` | int | 1 | smallest size |
    | ``d_max`` | int | 128 | table width, largest size (at most 32,767) |
    | ``max_episode_steps`` | int | 10 | T |
    | ``retrain`` | str | ``"scratch"`` | ``-v1`` ids: ``converge:50/4``; or ``fast``, |
    | | | | ``short:K``, ``epochs:E``, ``nested:B``, |
    | | | | ``converge:E/P``, ``sprint:B`` (the step designs of |
    | | | | :class:`~ciess_env.retrain.RetrainDesign`) |
    | ``batches_per_step`` | int | paper | batches of a scratch step, ≥ 1 (LightGCN 2,000) |
    | ``batch_size`` | int | 10,000 | BPR triples per batch (synthetic: 2,048) |
    | ``reward`` | str | ``"paper"`` | ``"paper"`` (Eq. 10), ``"code"`` (reference), ``"team"`` |
    | ``device`` | str | ``"cpu"`` | torch device of training; must exist on this machine |
    | ``progress_bar`` | bool | False | tqdm bar over the batches of a step |
    | ``render_mode`` | str | ``None`` | ``"ansi"`` or ``"rgb_array"`` |
    | ``split_seed`` | int | 42 | seed of the 50/25/25 per-user split (reference: 42) |
    | ``preset`` | str | ``"paper"`` | ``"tiny"`` fills unset budgets with seconds-scale ones |
    | ``pretrain_max_batches`` | int | 3 × batches | cap on full-size pretraining (0: untrained) |
    | ``pretrain_eval_every`` | int | 200 | batches between early-stopping evaluations, ≥ 1 |
    | ``pretrain_patience`` | int | 2 | evaluations without improvement before stopping |
    | ``pretrain_seed`` | int | 0 | seed of the pretrained model (fixed across resets) |
    | ``cache_dir`` | path | ``None`` | pretrain cache; else ``$CIESS_CACHE_DIR``, the user cache |
    | ``dataset_kwargs`` | dict | ``None`` | extra ``load_dataset`` arguments (synthetic sizes) |
    | ``backbone_kwargs`` | dict | ``None`` | backbone hyperparameters (e.g. ``n_layers``) |
    | ``report_train_seconds`` | bool | False | put wall-clock time in ``info["train_seconds"]`` |
    | ``step_config`` | StepConfig | ``None`` | the step's settings as one object (below) |

    ``step_config`` (a :class:`~ciess_env.config.StepConfig`, e.g. another env's
    ``env.unwrapped.step_config``) gives the backbone, schedule, retrain design, size range,
    device and backbone hyperparameters in one object. Its
    fields take the place of the keywords ``backbone``, ``d_min``, ``d_max``, ``retrain``,
    ``device``, ``backbone_kwargs``, ``batches_per_step`` and ``batch_size``; such a keyword
    passed as well (by the caller, or fixed by an id: ``backbone`` and ``d_max``, and
    ``retrain`` for ``-v1``) must agree with the step, else the env refuses it naming both.

    ``retrain="fast"`` is a documented **deviation** from the paper. It is ``"nested:20"``:
    instead of a fresh model, every step starts from a *nested-prefix* model (pretrained once,
    with a fresh uniform size per entity at every batch, so every prefix of every row is a
    trained model), applies the mask and fine-tunes it for 20 batches at lr/10, at a small
    fraction of the cost of a scratch step. Against scratch runs on ML-1M it keeps the big
    picture (smaller tables are worse, equal sizes beat random ones) but mis-ranks assignments
    of similar quality (``benchmarks/results/env_fast_mode.md`` has the rank correlations and
    costs of every design measured). Use ``"fast"`` to iterate on agents, and confirm on a
    ``-v1`` id (below). The synthetic data set uses
    batches of 2,048 and each backbone's ``BackboneSpec.synthetic_batches`` per step (schedule
    compressed to match), so that a step stays short on two CPU cores
    (``benchmarks/results/env.md``).

    **What a step measures.** A step's quality is a proxy for what users report: the mask's
    quality after *final retraining* (:func:`ciess_env.retrain.final_retrain`: early stopping
    on validation, then train + validation → test). ``benchmarks/fidelity_ground_truth.py``
    scores every design against that ground truth (``benchmarks/results/
    fidelity_ground_truth_<data>.md``: Spearman / Kendall per budget, cost of a step, and the
    noise ceiling, i.e. how well one seed of the final retraining ranks masks against
    another). On ML-1M, ``"converge:50/4"`` (a fresh model trained until validation quality
    stops improving, checked every 50 batches with patience 4, capped at the code's batches)
    ranks masks within a budget as well as a second seed of the final retraining does, at
    about 20 % less cost than ``"scratch"``; the code's 2,000-batch ``"scratch"`` step ranks them
    a little worse (it over-trains large tables), and ``"epochs:5"`` (the paper's text: 5
    passes, the scratch schedule compressed onto them) and the nested fast mode rank them
    poorly. The ``-v1`` ids therefore fix ``retrain="converge:50/4"``; the ``-v0`` ids and
    this class's default keep ``"scratch"``, the step every committed ``-v0`` result used.

    ## Randomness

    All randomness of a step (the fresh model's initialisation, BPR sampling, dropout) is
    seeded from ``self.np_random``, two draws per step; same ``reset(seed=...)`` and actions
    ⇒ the same observations, rewards and infos on the CPU. The pretrained model uses the fixed
    ``pretrain_seed`` so that every episode starts from the same state.

    ## Version History

    * v0: Initial version (observation with entity-type column, paper reward, T = 10; every
      step retrains a fresh model for the code's batches, ``retrain="scratch"``).
    * v1: Each step's retraining stops on validation, ``retrain="converge:50/4"`` (same spaces,
      reward and T): the most faithful step design measured against final-retrained quality,
      and cheaper than v0's. Use v1; v0 stays for the results it produced.

    ## Example

    >>> import gymnasium as gym
    >>> env = gym.make("ciess_env:CIESS-MF-Synthetic-v1", preset="tiny",
    ...                dataset_kwargs={"n_users": 60, "n_items": 40, "mean_interactions": 8})
    >>> obs, info = env.reset(seed=0)
    >>> obs.shape, obs.dtype
    ((100, 4), dtype('float32'))
    >>> sizes = env.unwrapped.sizes_to_action(np.full(60, 16), np.full(40, 16))
    >>> obs, reward, terminated, truncated, info = env.step(sizes)
    >>> round(info["sparsity"], 3), terminated, truncated
    (0.875, False, False)
    """

    @property
    def metadata(self) -> dict[str, Any]:  # type: ignore[override]
        """``{"render_modes": ["ansi", "rgb_array"], "render_fps": 1}`` (the Gymnasium API).

        A property, not a class attribute, on purpose: ``gym.make`` reads a class-level
        ``metadata`` and, for ``render_mode="human"``, silently builds the env in
        ``"rgb_array"`` mode inside ``HumanRendering``, which then asks for pygame at the first
        frame. With a property it passes ``"human"`` through, and ``__init__`` refuses it with
        the offered modes.
        """
        return {"render_modes": list(_RENDER_MODES), "render_fps": 1}

    def __init__(
        self,
        *,
        dataset: str = "ml-1m",
        backbone: str = _DEFAULT_BACKBONE,
        data_dir: str | os.PathLike[str] | None = None,
        data: InteractionData | None = None,
        lam: float = 0.4,
        d_min: int = _DEFAULT_D_MIN,
        d_max: int = _DEFAULT_D_MAX,
        max_episode_steps: int = 10,
        retrain: str = _DEFAULT_RETRAIN,
        batches_per_step: int | None = None,
        batch_size: int | None = None,
        reward: spaces.RewardVariant = "paper",
        device: str | torch.device = _DEFAULT_DEVICE,
        progress_bar: bool = False,
        render_mode: str | None = None,
        split_seed: int = 42,
        preset: Literal["paper", "tiny"] = "paper",
        pretrain_max_batches: int | None = None,
        pretrain_eval_every: int | None = None,
        pretrain_patience: int = 2,
        pretrain_seed: int = 0,
        cache_dir: str | os.PathLike[str] | None = None,
        dataset_kwargs: dict[str, Any] | None = None,
        backbone_kwargs: dict[str, Any] | None = None,
        report_train_seconds: bool = False,
        step_config: StepConfig | None = None,
    ) -> None:
        super().__init__()
        if preset not in PRESETS:
            raise suggest(str(preset), PRESETS, what="preset")
        if step_config is not None:
            flat = dict(
                backbone=backbone, d_min=d_min, d_max=d_max, retrain=retrain, device=device,
                backbone_kwargs=backbone_kwargs, batches_per_step=batches_per_step,
                batch_size=batch_size,
            )  # fmt: skip
            step = _from_step(step_config, flat)
            backbone, d_min, d_max, retrain, device, backbone_kwargs = step
            batches_per_step = step_config.train.n_batches
            batch_size = step_config.train.batch_size
        defaults = PRESETS[preset]

        def _or_preset(value: int | None, name: str) -> int | None:
            return value if value is not None else defaults.get(name)

        if backbone.lower() not in BACKBONES:
            raise suggest(backbone, BACKBONES, what="backbone")
        d_min, d_max = spaces.validate_size_range(d_min, d_max)
        check_int(d_max, "d_max", maximum=MAX_D_MAX, hint="Sizes are logged as int16.")
        check_int(max_episode_steps, "max_episode_steps", minimum=1)
        if reward not in spaces.REWARD_VARIANTS:
            msg = f"`reward` must be one of {list(spaces.REWARD_VARIANTS)}, got {reward!r}."
            raise InvalidArgumentError(msg)
        if render_mode is not None and render_mode not in _RENDER_MODES:
            msg = (
                f"`render_mode` must be None or one of the offered render modes {_RENDER_MODES}, "
                f"got {render_mode!r}. The env has no window: use 'rgb_array' and show the frames "
                "yourself (or 'ansi' for text); for a list of frames wrap "
                "gymnasium.wrappers.RenderCollection around the 'rgb_array' env."
            )
            raise InvalidArgumentError(msg)
        batches_per_step = _or_preset(batches_per_step, "batches_per_step")
        batch_size = _or_preset(batch_size, "batch_size")
        pretrain_max_batches = _or_preset(pretrain_max_batches, "pretrain_max_batches")
        pretrain_eval_every = _or_preset(pretrain_eval_every, "pretrain_eval_every")
        for name, value, low, why in (
            (
                "batches_per_step",
                batches_per_step,
                1,
                "A step of 0 batches would score an untrained model.",
            ),
            ("batch_size", batch_size, 1, ""),
            ("pretrain_max_batches", pretrain_max_batches, 0, "0 keeps the untrained model."),
            ("pretrain_eval_every", pretrain_eval_every, 1, "Pass None for the default."),
        ):
            check_int(value, name, minimum=low, allow_none=True, hint=why)
        check_int(pretrain_patience, "pretrain_patience", minimum=1)
        check_seed(pretrain_seed, "pretrain_seed", allow_none=False)
        check_seed(split_seed, "split_seed")
        device = check_device(device)
        backbone_kwargs = check_hparams(backbone, backbone_kwargs)
        #: How the full-size model is pretrained.
        self.pretrain_config = PretrainConfig(
            max_batches=pretrain_max_batches, eval_every=pretrain_eval_every,
            patience=pretrain_patience, seed=pretrain_seed, cache_dir=cache_dir,
        )  # fmt: skip

        self.design = RetrainDesign.parse(retrain)
        self.lam = lam  # validated by the property
        self.max_episode_steps = max_episode_steps
        self.reward_variant = reward
        self.progress_bar = bool(progress_bar)
        self.render_mode = render_mode
        self.report_train_seconds = bool(report_train_seconds)
        #: Wall-clock seconds of the last step's model building and training.
        self.last_train_seconds = 0.0

        # Loading the data here (not at reset) makes a missing data set fail at make time.
        self.data = (
            data
            if data is not None
            else _load_data(
                dataset, data_dir=data_dir, split_seed=split_seed, dataset_kwargs=dataset_kwargs
            )
        )
        self.dataset = self.data.name
        #: How every step retrains a mask (backbone, schedule, design, sizes, device).
        train = (
            step_config.train
            if step_config is not None
            else _train_config(
                backbone.lower(), self.data, batches_per_step=batches_per_step,
                batch_size=batch_size,
            )
        )  # fmt: skip
        self.step_config = StepConfig(
            backbone=backbone, train=train, retrain=str(self.design), d_min=d_min, d_max=d_max,
            device=torch.device(device),
            backbone_kwargs=dict(backbone_kwargs or {}),
        )  # fmt: skip
        self.n_users = int(self.data.n_users)
        self.n_items = int(self.data.n_items)
        self.n_entities = self.n_users + self.n_items
        self._n_tables = int(BACKBONES[self.backbone].n_tables)

        self.observation_space = gym.spaces.Box(-1.0, 1.0, (self.n_entities, 4), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (self.n_entities,), np.float32)

        self._static = np.empty((self.n_entities, 2), dtype=np.float32)
        self._static[: self.n_users, 0] = -1.0
        self._static[self.n_users :, 0] = 1.0
        self._static[: self.n_users, 1] = spaces.scale_popularity(self.data.user_freq)
        self._static[self.n_users :, 1] = spaces.scale_popularity(self.data.item_freq)

        self._pretrained: PretrainResult | None = None
        self._nested: PretrainResult | None = None
        self._full_quality: np.ndarray | None = None
        self._sizes = np.full(self.n_entities, self.d_max, dtype=np.int64)
        self._q = np.ones(self.n_entities, dtype=np.float64)
        self._last_info: dict[str, Any] = {}
        self._episode = -1
        self._t = 0

    # ------------------------------------------------------------- episode
    @property
    def episode(self) -> int:
        """Index of the current episode (−1 before the first reset; each reset adds one).

        Assignable so that a restored search continues the count (its next reset then counts
        ``episode + 1``), as :class:`agents.experiments.checkpoint.SearchRun` does.
        """
        return self._episode

    @episode.setter
    def episode(self, value: int) -> None:
        self._episode = int(check_int(value, "episode", minimum=-1))

    # ------------------------------------------------------------- λ
    @property
    def lam(self) -> float:
        """λ, the memory weight of the reward; may be reassigned between steps."""
        return self._lam

    @lam.setter
    def lam(self, value: float) -> None:
        if isinstance(value, bool) or not (
            isinstance(value, (int, float, np.floating, np.integer))
            and math.isfinite(value)
            and value >= 0
        ):
            msg = f"`lam` must be a finite number >= 0, got {value!r}."
            raise InvalidArgumentError(msg)
        if value > MAX_LAM:
            msg = (
                f"`lam` must be at most {MAX_LAM:g}, got {value!r}: beyond it the memory term "
                "drowns the quality term (q <= 1) in float32 rewards. The paper uses 0.2-0.4."
            )
            raise InvalidArgumentError(msg)
        self._lam = float(value)

    # -------------------------------------------------------- step settings
    @property
    def backbone(self) -> str:
        """Backbone name (lowercase)."""
        return self.step_config.backbone

    @property
    def train_config(self) -> TrainConfig:
        """The scratch schedule of one step (the designs derive theirs from it)."""
        return self.step_config.train

    @property
    def d_min(self) -> int:
        """Smallest size."""
        return self.step_config.d_min

    @property
    def d_max(self) -> int:
        """Largest size (table width)."""
        return self.step_config.d_max

    @property
    def device(self) -> torch.device:
        """Torch device of training."""
        return torch.device(self.step_config.device)

    @property
    def backbone_kwargs(self) -> dict[str, Any]:
        """Backbone hyperparameters."""
        return self.step_config.backbone_kwargs

    # ------------------------------------------------------------ mappings
    def action_to_sizes(self, action: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Map an action to (user_sizes, item_sizes), int64, as :meth:`step` does.

        Raises:
            ValueError: on a wrong shape or NaN/inf entries.
        """
        sizes = spaces.action_to_sizes(
            action, n=self.n_entities, d_min=self.d_min, d_max=self.d_max
        )
        return sizes[: self.n_users], sizes[self.n_users :]

    def sizes_to_action(self, user_sizes: np.ndarray, item_sizes: np.ndarray) -> np.ndarray:
        """The (N,) float32 action that :meth:`step` maps back to exactly these sizes.

        Raises:
            ValueError: on wrong lengths or sizes outside [d_min, d_max].
        """
        users, items = np.asarray(user_sizes), np.asarray(item_sizes)
        if users.shape != (self.n_users,) or items.shape != (self.n_items,):
            msg = (
                f"`user_sizes` and `item_sizes` must have shapes ({self.n_users},) and "
                f"({self.n_items},), got {users.shape} and {items.shape}."
            )
            raise InvalidArgumentError(msg)
        return spaces.sizes_to_action(
            np.concatenate([users, items]), d_min=self.d_min, d_max=self.d_max
        )

    # ----------------------------------------------------------- pretraining
    def _pretrain(self, *, nested: bool = False) -> PretrainResult:
        step, settings = self.step_config, self.pretrain_config
        key = pretrain_cache_key(step, self.data, settings, nested=nested)
        # The memo keeps weights and metrics, not the model object: the env never uses it, and
        # a graph backbone's adjacency would stay alive for every memoised data set.
        return _PRETRAIN_MEMO.get_or_make(
            (key, str(self.device)),
            lambda: dataclasses.replace(
                pretrain(step, self.data, settings, nested=nested, progress_bar=self.progress_bar),
                model=None,
            ),
        )

    def _full_quality_array(self) -> np.ndarray:
        if self._full_quality is None:
            ev = self.pretrained.eval
            self._full_quality = np.concatenate([ev.user_quality, ev.item_quality])
        return self._full_quality

    @property
    def pretrained(self) -> PretrainResult:
        """The full-size pretrained model and its metrics (trained or loaded on first use)."""
        if self._pretrained is None:
            self._pretrained = self._pretrain()
        return self._pretrained

    @property
    def nested_pretrained(self) -> PretrainResult:
        """The nested-prefix pretrained model (``nested:B`` designs), built on first use."""
        if self._nested is None:
            self._nested = self._pretrain(nested=True)
        return self._nested

    # ------------------------------------------------------------- gym API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode: all sizes ``d_max``, state from the pretrained full-size model."""
        super().reset(seed=seed)
        full = self.pretrained
        full_quality = self._full_quality_array()
        self._episode += 1
        self._t = 0
        self._sizes = np.full(self.n_entities, self.d_max, dtype=np.int64)
        self._q = spaces.quality_ratio(full_quality, full_quality)
        info = self._info(full.eval, train_seconds=0.0)
        self._last_info = info
        return self._observation(), _copy_info(info)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Apply the sizes, retrain, evaluate on validation; see the class docstring."""
        if self._episode < 0:
            msg = "Call reset() before step()."
            raise CallOrderError(msg)
        if self._t >= self.max_episode_steps:
            msg = (
                f"The episode was truncated after {self.max_episode_steps} steps; "
                "call reset() before stepping again."
            )
            raise CallOrderError(msg)
        user_sizes, item_sizes = self.action_to_sizes(action)
        outcome, sizes, q, rewards = self._score(
            user_sizes, item_sizes, self.np_random.integers(0, 2**31 - 1, size=2)
        )
        ev = outcome.eval
        self._sizes, self._q = sizes, q
        self._t += 1
        truncated = self._t >= self.max_episode_steps
        self.last_train_seconds = outcome.train_seconds
        info = self._info(ev, train_seconds=outcome.train_seconds)
        info["entity_rewards"] = rewards.astype(np.float32)
        self._last_info = info
        return self._observation(), float(rewards.mean()), False, truncated, _copy_info(info)

    def evaluate_sizes(
        self, user_sizes: np.ndarray, item_sizes: np.ndarray, *, seed: int
    ) -> dict[str, Any]:
        """Retrain and evaluate one assignment as a step would, leaving the env untouched.

        For side evaluations during a search (e.g. the policy's noise-free mask at the end of
        an episode): the step's training seeds come from ``seed``, not from ``np_random``, and
        neither the episode, the state nor the budget log changes, so the search it sits in
        runs exactly as without it.

        Args:
            user_sizes: (n_users,) sizes in ``[d_min, d_max]``.
            item_sizes: (n_items,) sizes in ``[d_min, d_max]``.
            seed: Seed of the model's initialisation and training.

        Returns:
            The keys of a step's ``info`` (without ``"entity_rewards"``) plus ``"reward"``,
            the mean per-entity reward the step would have returned.

        Raises:
            ValueError: on wrong lengths or sizes outside ``[d_min, d_max]``.
        """
        users, items = self.action_to_sizes(self.sizes_to_action(user_sizes, item_sizes))
        seeds = np.random.default_rng(seed).integers(0, 2**31 - 1, size=2)
        outcome, sizes, q, rewards = self._score(users, items, seeds)
        info = self._info(outcome.eval, train_seconds=outcome.train_seconds, sizes=sizes, q=q)
        info["reward"] = float(rewards.mean())
        return info

    def _score(
        self, user_sizes: np.ndarray, item_sizes: np.ndarray, seeds: np.ndarray
    ) -> tuple[StepOutcome, np.ndarray, np.ndarray, np.ndarray]:
        """Retrain with ``seeds = (init, train)``; the outcome, sizes, q and entity rewards."""
        init_seed, train_seed = (int(s) for s in seeds)
        outcome = self._retrain(user_sizes, item_sizes, init_seed=init_seed, train_seed=train_seed)
        ev = outcome.eval
        quality = np.concatenate([ev.user_quality, ev.item_quality])
        sizes = np.concatenate([user_sizes, item_sizes])
        q = spaces.quality_ratio(quality, self._full_quality_array())
        rewards = spaces.entity_rewards(
            q=q, quality=quality, sizes=sizes, lam=self.lam, d_max=self.d_max,
            variant=self.reward_variant,
        )  # fmt: skip
        return outcome, sizes, q, rewards

    def _retrain(
        self, user_sizes: np.ndarray, item_sizes: np.ndarray, *, init_seed: int, train_seed: int
    ) -> StepOutcome:
        nested_state = None
        if self.design.needs_nested_model:
            nested_state = self.nested_pretrained.state_dict
        return retrain_and_evaluate(
            self.step_config, data=self.data, user_sizes=user_sizes, item_sizes=item_sizes,
            init_seed=init_seed, train_seed=train_seed, nested_state=nested_state,
            progress_bar=self.progress_bar,
        )  # fmt: skip

    def _observation(self) -> np.ndarray:
        obs = np.empty((self.n_entities, 4), dtype=np.float32)
        obs[:, :2] = self._static
        obs[:, 2] = spaces.scale_sizes(self._sizes, d_min=self.d_min, d_max=self.d_max)
        obs[:, 3] = (2.0 * self._q - 1.0).astype(np.float32)
        return obs

    def _info(
        self,
        ev: EvalResult,
        *,
        train_seconds: float,
        sizes: np.ndarray | None = None,
        q: np.ndarray | None = None,
    ) -> dict[str, Any]:
        """The info of ``ev``; ``sizes`` and ``q`` default to the env's current state."""
        sizes = self._sizes if sizes is None else sizes
        q = self._q if q is None else q
        users, items = sizes[: self.n_users], sizes[self.n_users :]
        return {
            "user_quality": float(ev.mean_user_quality),
            "item_quality": float(ev.mean_item_quality),
            "mean_quality_ratio": float(q.mean()) if q.size else 0.0,
            "recall@20": float(ev.recall(20)),
            "ndcg@20": float(ev.ndcg(20)),
            "sparsity": float(sparsity(users, items, self.d_max)),
            "kept_parameters": int(self._n_tables * int(sizes.sum())),
            "memory_bytes": int(ragged_storage_bytes(users, items, n_tables=self._n_tables)),
            "user_sizes": users.copy(),
            "item_sizes": items.copy(),
            "train_seconds": float(train_seconds) if self.report_train_seconds else 0.0,
        }

    # ------------------------------------------------------------- render
    def render(self) -> str | np.ndarray | None:
        """Text summary (``"ansi"``) or a size-vs-popularity scatter (``"rgb_array"``)."""
        if self.render_mode is None:
            gym.logger.warn(
                "You are calling render without having set render_mode; "
                "pass render_mode='ansi' or 'rgb_array' to the constructor."
            )
            return None
        if self.render_mode == "ansi":
            return self._render_text()
        return self._render_rgb()

    def _summary(self) -> dict[str, Any]:
        info = self._last_info
        users, items = self._sizes[: self.n_users], self._sizes[self.n_users :]
        return {
            "sparsity": float(sparsity(users, items, self.d_max)),
            "q": float(self._q.mean()) if self._q.size else 0.0,
            "recall": info.get("recall@20", float("nan")),
            "ndcg": info.get("ndcg@20", float("nan")),
            "users": users,
            "items": items,
        }

    def _render_text(self) -> str:
        s = self._summary()
        lines = [
            f"CIESS {self.backbone} on {self.dataset}: episode {max(self._episode, 0)}, "
            f"step {self._t}/{self.max_episode_steps}",
            f"sparsity {s['sparsity']:.4f} | mean quality ratio {s['q']:.4f} | "
            f"recall@20 {s['recall']:.4f} | ndcg@20 {s['ndcg']:.4f}",
        ]
        for side, sizes in (("users", s["users"]), ("items", s["items"])):
            if sizes.size:
                lines.append(
                    f"{side}: size mean {sizes.mean():.1f}, median {np.median(sizes):.0f}, "
                    f"min {sizes.min()}, max {sizes.max()}"
                )
        return "\n".join(lines) + "\n"

    def _render_rgb(self) -> np.ndarray:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        s = self._summary()
        fig = Figure(figsize=(6.4, 4.0), dpi=80)
        canvas = FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        for side, freq, sizes, color in (
            ("users", self.data.user_freq, s["users"], "tab:blue"),
            ("items", self.data.item_freq, s["items"], "tab:orange"),
        ):
            ax.scatter(freq, sizes, s=4, alpha=0.5, color=color, label=side)
        ax.set_xscale("symlog")
        ax.set_ylim(0, self.d_max + 2)
        ax.set_xlabel("training interactions (popularity)")
        ax.set_ylabel("embedding size")
        ax.legend(loc="upper left", fontsize=8)
        ax.set_title(f"step {self._t}: sparsity {s['sparsity']:.3f}, q̄ {s['q']:.3f}", fontsize=10)
        fig.tight_layout()
        canvas.draw()
        return np.asarray(canvas.buffer_rgba())[..., :3].copy()

    def close(self) -> None:
        """Release the models (the in-process memo keeps the pretrained one for reuse)."""
        self._pretrained = None
        self._nested = None


# ---------------------------------------------------------------- helpers
def _copy_info(info: dict[str, Any]) -> dict[str, Any]:
    """A copy whose arrays are new objects (users keep what we return; check_env tests it)."""
    return {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in info.items()}


def _from_step(step: StepConfig, flat: dict[str, Any]) -> tuple:
    """The env's step keywords from ``step``; a keyword set otherwise must agree with it.

    Returns:
        ``(backbone, d_min, d_max, retrain, device, backbone_kwargs)``.

    Raises:
        InvalidTypeError: if ``step`` is not a StepConfig.
        InvalidArgumentError: naming every keyword that contradicts the step.
    """
    step = check_step(step, "EmbeddingSizeEnv(step_config=...)")
    from_step = {
        "backbone": step.backbone, "d_min": step.d_min, "d_max": step.d_max,
        "retrain": step.retrain, "device": step.device,
        "backbone_kwargs": step.backbone_kwargs, "batches_per_step": step.train.n_batches,
        "batch_size": step.train.batch_size,
    }  # fmt: skip
    same = {
        "backbone": lambda a, b: str(a).lower() == b,
        "device": lambda a, b: str(a) == str(b),
        "retrain": lambda a, b: str(a) == b or _design_text(a) == _design_text(b),
    }
    clashes = [
        f"{name}={value!r} (step: {from_step[name]!r})"
        for name, value in flat.items()
        if not _is_default(value)
        and not same.get(name, lambda a, b: a == b)(value, from_step[name])
    ]
    if clashes:
        msg = (
            f"`step_config` contradicts {', '.join(clashes)}: pass these settings either in the "
            "StepConfig or as keywords, not both (an id fixes backbone and d_max, and a -v1 id "
            "retrain; step_config.replace(...) changes a field)."
        )
        raise InvalidArgumentError(msg)
    device = check_device(step.device)
    return step.backbone, step.d_min, step.d_max, step.retrain, device, step.backbone_kwargs


def _is_default(value: Any) -> bool:
    """Whether a step keyword was left at its default (not passed, by the caller or an id)."""
    return value is None or isinstance(value, _Default)


def _design_text(spec: Any) -> str:
    """A retrain design's canonical text (``"fast"`` is ``"nested:20"``), or the input."""
    try:
        return str(RetrainDesign.parse(spec))
    except (InvalidArgumentError, InvalidTypeError):
        return str(spec)


def _load_data(
    dataset: str,
    *,
    data_dir: str | os.PathLike[str] | None,
    split_seed: int,
    dataset_kwargs: dict[str, Any] | None,
) -> InteractionData:
    name = canonical_name(dataset)
    kwargs = check_dataset_kwargs(name, dataset_kwargs)
    root = None if data_dir is None else os.fspath(data_dir)
    key = (
        name,
        root if name != "synthetic" else None,
        os.environ.get("CIESS_DATA_DIR") if root is None and name != "synthetic" else None,
        split_seed,
        tuple(sorted((k, repr(v)) for k, v in kwargs.items())),
    )
    return _DATA_MEMO.get_or_make(
        key, lambda: load_dataset(name, data_dir=data_dir, split_seed=split_seed, **kwargs)
    )


def check_dataset_kwargs(name: str, dataset_kwargs: Any) -> dict[str, Any]:
    """A copy of ``dataset_kwargs`` once it is a dict of arguments ``load_dataset`` takes.

    Checked here so that a typo fails with the argument's name, not as a ``TypeError`` from
    deep inside ``gym.make``.
    """
    import inspect

    from ciess_env.data import make_synthetic

    if dataset_kwargs is None:
        return {}
    if not isinstance(dataset_kwargs, dict):
        msg = (
            "`dataset_kwargs` must be a dict of load_dataset arguments, e.g. "
            f"{{'n_users': 60, 'n_items': 40}}; got {type(dataset_kwargs).__name__} "
            f"{dataset_kwargs!r}."
        )
        raise InvalidTypeError(msg)
    taken = {"name", "data_dir", "split_seed"}  # set by the env itself
    known = set(inspect.signature(load_dataset).parameters) - taken - {"synthetic_kwargs"}
    if name == "synthetic":
        known |= set(inspect.signature(make_synthetic).parameters) - taken
    for key in dataset_kwargs:
        if key not in known:
            raise suggest(key, known, what=f"`dataset_kwargs` key for data set {name!r}:")
    return dict(dataset_kwargs)


def _train_config(
    backbone: str,
    data: InteractionData,
    *,
    batches_per_step: int | None,
    batch_size: int | None,
) -> TrainConfig:
    """The scratch schedule of one step: the paper's, scaled to the requested batch count.

    When the batch count differs from the paper's, the decay interval scales with it, so the
    schedule's shape (how many decays happen) is that of the paper.
    """
    config = paper_train_config(backbone, data)
    spec = dataset_spec(data.name)
    synthetic = spec.synthetic if spec is not None else data.name.startswith("synthetic")
    if synthetic:
        config = config.replace(batch_size=_SYNTHETIC_BATCH_SIZE)
        if batches_per_step is None:
            batches_per_step = backbone_spec(backbone).synthetic_batches
    if batches_per_step is not None and batches_per_step != config.n_batches:
        scale = batches_per_step / config.n_batches
        config = config.replace(
            n_batches=batches_per_step,
            decay_batches=max(1, round(config.decay_batches * scale)),
        )
    if batch_size is not None:
        config = config.replace(batch_size=batch_size)
    return config
