"""Pretraining the full-size model (the denominator of the quality ratio, paper Eq. 7), cached.

The environment needs ``eval(e_n | E)`` of a fully trained ``d_max`` model for every user and
item, and the number of batches it took to converge. Training it costs minutes, so the result
is cached on disk under a key that hashes everything that affects it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import platformdirs
import torch

from ciess_env._meta import package_version
from ciess_env.config import PretrainConfig, StepConfig, check_step
from ciess_env.data.interactions import InteractionData
from ciess_env.errors import CacheWriteWarning, InvalidArgumentError
from ciess_env.metrics import EvalResult, evaluate
from ciess_env.recommenders.base import Backbone
from ciess_env.recommenders.registry import make_backbone
from ciess_env.recommenders.trainer import BPRTrainer, TrainConfig

__all__ = [
    "Converged",
    "EarlyStopping",
    "PretrainResult",
    "pretrain",
    "pretrain_cache_key",
    "resolve_cache_dir",
    "train_until_converged",
]

logger = logging.getLogger(__name__)

_FORMAT = 1  # bump when the cached file layout changes


@dataclass
class PretrainResult:
    """A pretrained full-size model and its validation metrics.

    Attributes:
        backbone: Backbone name.
        model: The model with the best weights loaded, in eval mode (``None`` where a holder
            keeps only the weights, as the env's memo does).
        state_dict: The best weights (CPU tensors).
        eval: Validation metrics of the best weights (``eval.user_quality`` is the Eq. 7
            denominator).
        best_batches: Batches trained when the best validation quality was reached ("batches
            to convergence", the budget for final retraining).
        history: (batches, validation mean user quality) at every evaluation.
        from_cache: Whether the result was loaded rather than trained.
        path: The cache file (``None`` when caching is off or the file could not be written,
            which warns with :class:`~ciess_env.errors.CacheWriteWarning`).
        seconds: Wall-clock seconds (training + evaluation, or loading).
    """

    backbone: str
    model: Backbone | None
    state_dict: dict[str, torch.Tensor]
    eval: EvalResult
    best_batches: int
    history: list[tuple[int, float]]
    from_cache: bool
    path: Path | None
    seconds: float


def resolve_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """``cache_dir`` > ``$CIESS_CACHE_DIR`` > ``platformdirs.user_cache_dir("ciess-env")``."""
    if cache_dir is not None:
        return Path(cache_dir)
    env = os.environ.get("CIESS_CACHE_DIR")
    if env:
        return Path(env)
    return Path(platformdirs.user_cache_dir("ciess-env"))


def _data_fingerprint(data: InteractionData) -> str:
    h = hashlib.sha256()
    h.update(f"{data.n_users}:{data.n_items}".encode())
    for arr in (data.train.users, data.train.items, data.validation.users, data.validation.items):
        h.update(np.ascontiguousarray(arr, dtype=np.int64).tobytes())
    return h.hexdigest()


def pretrain_cache_key(
    step: StepConfig,
    data: InteractionData,
    settings: PretrainConfig | None = None,
    *,
    nested: bool = False,
) -> str:
    """sha256 (hex) of everything that changes a pretraining result.

    Covers the data name and a hash of its train/validation arrays, the backbone and its
    hyperparameters, the schedule, early-stopping settings (resolved as :func:`pretrain`
    resolves them), seed, sizes and the package version. The device and the cache folder are
    not part of the key: a CPU result is reused on a GPU.
    """
    step = check_step(step, "pretrain_cache_key")
    settings = settings or PretrainConfig()
    max_batches, eval_every = settings.resolved(step.train)
    payload = {
        "format": _FORMAT,
        "version": package_version(),
        "data": data.name,
        "data_hash": _data_fingerprint(data),
        "backbone": step.backbone.lower(),
        "hparams": {k: repr(v) for k, v in sorted(step.backbone_kwargs.items())},
        "config": dataclasses.asdict(step.train),
        "eval_every": int(eval_every),
        "patience": int(settings.patience),
        "max_batches": int(max_batches),
        "nested": bool(nested),
        "seed": int(settings.seed),
        "d_max": int(step.d_max),
        "d_min": int(step.d_min),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def pretrain(
    step: StepConfig,
    data: InteractionData,
    settings: PretrainConfig | None = None,
    *,
    nested: bool = False,
    use_cache: bool = True,
    progress_bar: bool = False,
) -> PretrainResult:
    """Train the full-size (``d_max``) model with early stopping on validation quality.

    Every ``settings.eval_every`` batches the validation mean user quality (Eq. 8) is
    measured; the best weights are kept, and training stops after ``settings.patience``
    evaluations without improvement or at ``settings.max_batches`` (the reference: rounds of
    batches, patience 2).

    Args:
        step: Backbone, schedule (its ``n_batches`` only sets the defaults of
            ``settings``), size range (``d_min`` only matters for ``nested``), device and
            backbone hyperparameters (part of the cache key). Its ``retrain`` design is
            ignored. For the paper's schedule:
            ``StepConfig(backbone, paper_train_config(backbone, data))``.
        data: The data set (train for training, validation for early stopping).
        settings: Early stopping, cap, seed and cache folder
            (:class:`~ciess_env.config.PretrainConfig`; default its defaults:
            ``max_batches = 3 × step.train.n_batches``, ``eval_every =
            min(200, step.train.n_batches)``, patience 2, seed 0).
        nested: Nested-prefix pretraining: each batch draws a fresh uniform size per entity,
            so every prefix is a trained model (see ``BPRTrainer``); evaluated at full size.
        use_cache: Read and write the cache (``False``: always train, write nothing).
        progress_bar: Show tqdm bars.

    Returns:
        The best model, its metrics and the batches it took.

    Raises:
        InvalidTypeError: if ``step`` is not a :class:`~ciess_env.config.StepConfig`.
    """
    step = check_step(step, "pretrain")
    settings = settings or PretrainConfig()
    backbone, config, seed = step.backbone, step.train, settings.seed
    max_batches, eval_every = settings.resolved(config)
    start = time.perf_counter()
    model = make_backbone(
        backbone, data, d_max=step.d_max, d_min=step.d_min, seed=seed, device=step.device,
        **step.backbone_kwargs,
    )  # fmt: skip
    key = pretrain_cache_key(step, data, settings, nested=nested)
    path = None
    if use_cache:
        folder = resolve_cache_dir(settings.cache_dir) / "pretrained"
        path = folder / f"{backbone.lower()}-{_safe(data.name)}-{key[:20]}.pt"
        cached = _load(path, key)
        if cached is not None:
            model.load_state_dict(cached["state_dict"])
            model.eval()
            logger.info("loaded pretrained %s from %s", backbone, path)
            return PretrainResult(
                backbone=backbone.lower(),
                model=model,
                state_dict=cached["state_dict"],
                eval=_eval_from_dict(cached["eval"]),
                best_batches=int(cached["best_batches"]),
                history=[(int(b), float(q)) for b, q in cached["history"]],
                from_cache=True,
                path=path,
                seconds=time.perf_counter() - start,
            )
    best = train_until_converged(
        model, data, config, seed=seed, eval_every=eval_every, patience=settings.patience,
        max_batches=max_batches, nested=nested, progress_bar=progress_bar,
    )  # fmt: skip
    best_state, best_eval, best_batches, history = (
        best.state_dict,
        best.eval,
        best.best_batches,
        best.history,
    )
    if path is not None:
        path = _try_save(path, {
            "format": _FORMAT, "key": key, "backbone": backbone.lower(),
            "state_dict": best_state, "eval": _eval_to_dict(best_eval),
            "best_batches": best_batches, "history": [list(h) for h in history],
        })  # fmt: skip
    return PretrainResult(
        backbone=backbone.lower(),
        model=model,
        state_dict=best_state,
        eval=best_eval,
        best_batches=best_batches,
        history=history,
        from_cache=False,
        path=path,
        seconds=time.perf_counter() - start,
    )


class Converged(NamedTuple):
    """The best state of an early-stopped training run.

    Attributes:
        state_dict: Weights at the best validation quality (CPU copies).
        eval: Validation metrics of that state.
        best_batches: Batches trained when it was reached (0 for ``max_batches=0``).
        history: ``(batches, validation mean user quality)`` at every evaluation.
    """

    state_dict: dict
    eval: EvalResult
    best_batches: int
    history: list[tuple[int, float]]


@dataclass
class EarlyStopping:
    """The package's one early-stopping rule: keep the best, stop after ``patience`` misses.

    :func:`train_until_converged` feeds it each validation evaluation while it trains;
    :meth:`replay` feeds it a recorded validation curve, so a study that evaluated more often
    can read off what the rule would have chosen without a second implementation of it.

    Attributes:
        patience: Evaluations in a row without improvement before stopping.
        best_quality: The best validation quality so far (``-inf`` before the first).
        best_batches: Batches trained when it was reached (0 before the first).
        bad: Evaluations since the last improvement.
    """

    patience: int
    best_quality: float = -np.inf
    best_batches: int = 0
    bad: int = 0

    def update(self, batches: int, quality: float) -> bool:
        """Record one evaluation after ``batches`` batches; True when it is the new best."""
        if quality > self.best_quality:
            self.best_quality, self.best_batches, self.bad = quality, batches, 0
            return True
        self.bad += 1
        return False

    @property
    def stopped(self) -> bool:
        """Whether the rule stops training now."""
        return self.bad >= self.patience

    @classmethod
    def replay(
        cls, history: list, *, eval_every: int, patience: int, max_batches: int
    ) -> tuple[int, bool]:
        """(best batch count, stopped) of "evaluate every ``eval_every``" on a recorded curve.

        Args:
            history: ``(batches, validation quality, ...)`` rows, evaluated every ``eval_every``
                batches or a divisor of it (the rule sees only its own evaluation points).
            eval_every: The rule's batches between evaluations.
            patience: The rule's patience.
            max_batches: The rule's cap; points beyond it are ignored.

        Returns:
            The batch count the rule keeps and whether it stopped (False when the curve ends
            before the rule would stop or reach the cap: the best so far is then returned).
        """
        rule, last = cls(patience), 0
        for row in history:
            batches, quality = int(row[0]), float(row[1])
            if batches % eval_every or batches > max_batches:
                continue
            last = batches
            rule.update(batches, quality)
            if rule.stopped:
                return rule.best_batches, True
        return rule.best_batches, last >= max_batches


def train_until_converged(
    model: Backbone,
    data: InteractionData,
    config: TrainConfig,
    *,
    seed: int,
    eval_every: int = 200,
    patience: int = 2,
    max_batches: int,
    nested: bool = False,
    progress_bar: bool = False,
) -> Converged:
    """Train with early stopping on validation mean user quality; leave the best state loaded.

    The one early-stopping loop of the package: full-size pretraining and the final
    retraining of size assignments (``ciess_env.retrain``, ``early_stopping=True``) both use
    it, so "to convergence" means the same thing everywhere.

    Args:
        model: The backbone to train (its sizes already set).
        data: Training split to learn from, validation split to stop on.
        config: Learning-rate schedule and batch size (``n_batches`` is ignored).
        seed: Seeds sampling and dropout.
        eval_every: Batches between validation evaluations.
        patience: Evaluations without improvement before stopping.
        max_batches: Upper bound on batches.
        nested: Nested-prefix training (see ``BPRTrainer``).
        progress_bar: Show a tqdm bar.

    Returns:
        The best state, its metrics, its batch count and the evaluation history.
    """
    if eval_every < 1 or patience < 1:
        msg = f"eval_every and patience must be >= 1, got {eval_every!r} and {patience!r}."
        raise InvalidArgumentError(msg)
    trainer = BPRTrainer(model, data, config, seed=seed, nested=nested, progress_bar=progress_bar)
    rule, best_state, best_eval = EarlyStopping(patience), None, None
    history: list[tuple[int, float]] = []
    while trainer.batches_done < max_batches and not rule.stopped:
        trainer.run(min(eval_every, max_batches - trainer.batches_done))
        result = evaluate(model, data, "validation")
        q = result.mean_user_quality
        history.append((trainer.batches_done, q))
        logger.info("%s: %d batches, validation quality %.4f", model.name, trainer.batches_done, q)
        if rule.update(trainer.batches_done, q):
            best_eval, best_state = result, _cpu_state(model)
    if best_state is None:  # max_batches == 0: the untrained model
        best_eval = evaluate(model, data, "validation")
        best_state = _cpu_state(model)
    model.load_state_dict(best_state)
    model.eval()
    return Converged(best_state, best_eval, rule.best_batches, history)


def _cpu_state(model: Backbone) -> dict:
    """A CPU copy of the weights, safe from later training steps (and from GPU memory)."""
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def _save(path: Path, payload: dict) -> None:
    """Write atomically: a temporary file in the same folder, then ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(payload, fh)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _try_save(path: Path, payload: dict) -> Path | None:
    """:func:`_save`, but a write failure warns and returns ``None``: the model is kept."""
    try:
        _save(path, payload)
    except OSError as err:
        msg = (
            f"Could not write the pretrain cache {str(path)!r} ({type(err).__name__}: {err}); "
            "the trained model is kept in memory but will be trained again next time. Pass "
            "cache_dir= a writable folder or set CIESS_CACHE_DIR."
        )
        warnings.warn(msg, CacheWriteWarning, stacklevel=3)
        return None
    return path


def _load(path: Path, key: str) -> dict | None:
    if not path.is_file():
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a truncated or foreign file: retrain and overwrite it
        logger.warning("ignoring unreadable pretrain cache %s (%s)", path, err)
        return None
    if not isinstance(payload, dict) or payload.get("key") != key:
        logger.warning("ignoring pretrain cache %s: key mismatch", path)
        return None
    return payload


def _eval_to_dict(result: EvalResult) -> dict:
    t = torch.from_numpy
    return {
        "split": result.split,
        "ks": list(result.ks),
        "user_recall": {int(k): t(v) for k, v in result.user_recall.items()},
        "user_ndcg": {int(k): t(v) for k, v in result.user_ndcg.items()},
        "user_quality": t(result.user_quality),
        "item_quality": t(result.item_quality),
        "has_truth": t(result.has_truth),
        "item_has_users": t(result.item_has_users),
        "seconds": float(result.seconds),
    }


def _eval_from_dict(d: dict) -> EvalResult:
    return EvalResult(
        split=d["split"],
        ks=tuple(int(k) for k in d["ks"]),
        user_recall={int(k): v.numpy() for k, v in d["user_recall"].items()},
        user_ndcg={int(k): v.numpy() for k, v in d["user_ndcg"].items()},
        user_quality=d["user_quality"].numpy(),
        item_quality=d["item_quality"].numpy(),
        has_truth=d["has_truth"].numpy(),
        item_has_users=d["item_has_users"].numpy(),
        seconds=float(d["seconds"]),
    )
