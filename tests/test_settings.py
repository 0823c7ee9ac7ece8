"""The settings objects (ciess_env.config) and the functions that take them instead of keywords."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import ciess_env
from agents.experiments.selective import retrain_pruned, selective_retrain
from ciess_env.config import FinalRetrainRule, PretrainConfig, StepConfig, TrainConfig
from ciess_env.env import EmbeddingSizeEnv
from ciess_env.errors import InvalidArgumentError, InvalidTypeError
from ciess_env.recommenders import pretrain, pretrain_cache_key
from ciess_env.retrain import final_retrain, finish_on_test, score_on_test, train_on_merged

CFG = TrainConfig(n_batches=8, batch_size=64, decay_batches=4)
#: The bundle each retraining function used to respell as keywords.
LOOSE = {"backbone", "config", "d_min", "d_max", "device", "backbone_kwargs", "hparams"}


def test_config_is_a_leaf_below_the_backbones() -> None:
    """config.py imports only the error classes and the shared checks of the package."""
    tree = ast.parse(Path(inspect.getfile(StepConfig)).read_text())
    imported = {
        node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ciess_env")
    }
    assert imported == {"ciess_env._size_range", "ciess_env.checks", "ciess_env.errors"}
    from ciess_env.recommenders import TrainConfig as from_recommenders

    assert from_recommenders is TrainConfig  # one class, re-exported by the backbone layer


@pytest.mark.parametrize(
    ("function", "most"),
    [
        (final_retrain, 11),
        (selective_retrain, 8),
        (pretrain, 6),
        (score_on_test, 9),
        (finish_on_test, 9),
        (train_on_merged, 9),
        (retrain_pruned, 7),
        (pretrain_cache_key, 4),
    ],
    ids=lambda f: getattr(f, "__name__", str(f)),
)
def test_retraining_functions_take_a_step_config_not_loose_keywords(function, most) -> None:
    """The bundle travels as one StepConfig: no backbone/config/d_min/... parameters remain."""
    params = inspect.signature(function).parameters
    assert len(params) <= most, list(params)
    assert not LOOSE & set(params)
    assert "step" in params
    assert all(p.kind is not p.VAR_KEYWORD for p in params.values())


def test_a_train_config_where_a_step_config_belongs_is_refused_naming_the_fix(tiny_data) -> None:
    users, items = np.full(tiny_data.n_users, 4), np.full(tiny_data.n_items, 4)
    with pytest.raises(
        InvalidTypeError, match=r"final_retrain takes a StepConfig .* got TrainConfig"
    ):
        final_retrain(tiny_data, users, items, CFG)
    with pytest.raises(InvalidTypeError, match=r"pretrain takes a StepConfig .* got str"):
        pretrain("mf", tiny_data)  # the old first argument


BAD = [
    (lambda: StepConfig(3, CFG), InvalidTypeError,
     "`StepConfig.backbone` must be a backbone name such as 'mf', got 3 (int)."),
    (lambda: StepConfig("mf", {"n_batches": 8}), InvalidTypeError,
     "`StepConfig.train` must be a TrainConfig"),
    (lambda: StepConfig("mf", CFG, retrain=None), InvalidTypeError,
     "`StepConfig.retrain` must be a retrain design string"),
    (lambda: StepConfig("mf", CFG, backbone_kwargs=[("l2", 1)]), InvalidTypeError,
     "`StepConfig.backbone_kwargs` must be a dict"),
    (lambda: StepConfig("mf", CFG, d_min=9, d_max=8), InvalidArgumentError,
     "1 <= d_min <= d_max, got d_min=9, d_max=8"),
    (lambda: StepConfig("mf", CFG, device="gpu"), InvalidArgumentError,
     "`StepConfig.device` must be a torch device"),
    (lambda: TrainConfig(n_batches=-1), InvalidArgumentError,
     "n_batches must be an integer >= 0, got -1."),
    (lambda: PretrainConfig(eval_every=0), InvalidArgumentError,
     "`pretrain_eval_every` must be >= 1 or None"),
    (lambda: PretrainConfig(patience=0), InvalidArgumentError,
     "`pretrain_patience` must be an integer >= 1, got 0."),
    (lambda: PretrainConfig(seed=1.5), InvalidTypeError,
     "`pretrain_seed` must be an integer, got 1.5"),
    (lambda: FinalRetrainRule(top_l=0), InvalidArgumentError,
     "`FinalRetrainRule.top_l` must be an integer >= 1, got 0."),
    (lambda: FinalRetrainRule(seeds="2"), InvalidTypeError,
     "`FinalRetrainRule.seeds` must be an integer, got '2'"),
    (lambda: FinalRetrainRule(early_stopping="no"), InvalidTypeError,
     "`FinalRetrainRule.early_stopping` must be True or False, got 'no'."),
]  # fmt: skip


@pytest.mark.parametrize(("build", "error", "message"), BAD)
def test_bad_settings_fail_where_they_are_set_naming_the_field(build, error, message) -> None:
    with pytest.raises(error, match=re.escape(message)):
        build()


def test_settings_are_frozen_and_replace_makes_a_checked_copy() -> None:
    step = StepConfig("MF", CFG, d_max=16, backbone_kwargs={"l2": 1e-3})
    assert step.backbone == "mf"
    with pytest.raises(AttributeError):
        step.d_max = 8  # type: ignore[misc]
    assert step.replace(d_max=8).d_max == 8
    with pytest.raises(InvalidArgumentError, match="d_min=1, d_max=0"):
        step.replace(d_max=0)
    rule = FinalRetrainRule()
    assert (rule.top_l, rule.early_stopping, rule.fill_budget, rule.seeds) == (3, True, False, 2)
    assert rule.replace(top_l=1).seed_list(5) == [5, 1005]
    assert PretrainConfig().replace(seed=3).resolved(CFG) == (24, 8)


def _first_reward(env: gym.Env) -> float:
    base = env.unwrapped
    env.reset(seed=0)
    action = base.sizes_to_action(np.full(base.n_users, 4), np.full(base.n_items, 4))
    return float(env.step(action)[1])


def test_the_env_takes_a_step_config_and_steps_as_with_the_flat_keywords(tiny_kwargs) -> None:
    """gym.make(id, step_config=other.step_config) is the env the flat keywords built."""
    flat = gym.make("CIESS-MF-Synthetic-v1", **tiny_kwargs, batch_size=64)
    step = flat.unwrapped.step_config
    assert (step.retrain, step.train.batch_size) == ("converge:50/4", 64)
    kwargs = {k: v for k, v in tiny_kwargs.items() if k != "backbone"}
    again = gym.make("CIESS-MF-Synthetic-v1", **kwargs, step_config=step)
    assert again.unwrapped.step_config == step
    assert _first_reward(again) == _first_reward(flat)
    direct = EmbeddingSizeEnv(
        dataset="synthetic", dataset_kwargs=tiny_kwargs["dataset_kwargs"],
        cache_dir=tiny_kwargs["cache_dir"], step_config=step.replace(d_max=32),
    )  # fmt: skip
    assert (direct.backbone, direct.d_max, direct.train_config) == ("mf", 32, step.train)


def test_the_env_refuses_a_step_config_that_contradicts_a_keyword(tiny_kwargs) -> None:
    """An id's -v1 design or an explicit keyword must agree with the step, naming both."""
    kwargs = {k: v for k, v in tiny_kwargs.items() if k != "backbone"}
    step = StepConfig("mf", CFG, d_max=128)  # retrain="scratch"
    msg = "`step_config` contradicts retrain='converge:50/4' (step: 'scratch')"
    with pytest.raises(InvalidArgumentError, match=re.escape(msg)):
        gym.make("CIESS-MF-Synthetic-v1", **kwargs, step_config=step)
    msg = "`step_config` contradicts backbone='lightgcn' (step: 'mf'), batch_size=32 (step: 64)"
    with pytest.raises(InvalidArgumentError, match=re.escape(msg)):
        gym.make("CIESS-LightGCN-Synthetic-v0", **kwargs, step_config=step, batch_size=32)
    with pytest.raises(InvalidTypeError, match=r"EmbeddingSizeEnv\(step_config=...\) takes a"):
        EmbeddingSizeEnv(dataset="synthetic", step_config=CFG)
    assert ciess_env.ENV_IDS  # the ids above are registered


def test_session_final_step_is_the_envs_step_as_a_fresh_capped_retraining(tiny_kwargs) -> None:
    from agents.experiments.session import SearchSession

    kwargs = {k: v for k, v in tiny_kwargs.items() if k not in ("dataset", "backbone")}
    session = SearchSession("CIESS-MF-Synthetic-v1", env_kwargs=kwargs, progress_bar=False)
    step = session.final_step(30)
    env_step = session.env.step_config
    assert step == env_step.replace(train=env_step.train.replace(n_batches=30), retrain="scratch")
    assert session.final_step().train.n_batches == session.final_batches()
    session.close()
