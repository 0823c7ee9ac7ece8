"""Every env argument is checked at construction and named in the error (issue 12, item 6)."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from ciess_env.env import EmbeddingSizeEnv
from ciess_env.errors import CacheWriteWarning, CIESSError, InvalidArgumentError, InvalidTypeError


@pytest.mark.parametrize(
    ("override", "cls", "text"),
    [
        ({"split_seed": -1}, InvalidArgumentError, "`split_seed` must be an integer >= 0, got -1"),
        ({"split_seed": 1.5}, InvalidTypeError, "`split_seed` must be an integer or None, got 1.5"),
        ({"device": "bogus"}, InvalidArgumentError, "`device` must be a torch device such as"),
        ({"device": 7}, InvalidTypeError, "`device` must be a string"),
        ({"backbone_kwargs": {"n_layer": 2}}, InvalidArgumentError,
         "`backbone_kwargs` has unknown key 'n_layer' for backbone 'mf'"),
        ({"backbone": "lightgcn", "backbone_kwargs": {"n_layers": -1}}, InvalidArgumentError,
         "`backbone_kwargs` are invalid for backbone 'lightgcn': `n_layers` must be an integer "
         ">= 0, got -1"),
        ({"backbone": "ngcf", "backbone_kwargs": {"n_layers": 1.5}}, InvalidArgumentError,
         "`n_layers` must be an integer, got 1.5"),
        ({"batches_per_step": 0}, InvalidArgumentError,
         "`batches_per_step` must be an integer >= 1, got 0"),
        ({"batch_size": 0}, InvalidArgumentError, "`batch_size` must be an integer >= 1, got 0"),
        ({"pretrain_eval_every": 0}, InvalidArgumentError,
         "`pretrain_eval_every` must be an integer >= 1, got 0"),
        ({"pretrain_patience": 0}, InvalidArgumentError,
         "`pretrain_patience` must be an integer >= 1, got 0"),
        ({"pretrain_seed": -3}, InvalidArgumentError, "`pretrain_seed` must be an integer >= 0"),
        ({"batches_per_step": True}, InvalidTypeError, "`batches_per_step` must be an integer"),
        ({"d_max": 40_000}, InvalidArgumentError, "`d_max` must be an integer <= 32767, got 40000"),
        ({"max_episode_steps": 2.0}, InvalidTypeError, "`max_episode_steps` must be an integer"),
    ],
)  # fmt: skip
def test_bad_arguments_fail_at_construction_naming_the_argument(tiny_kwargs, override, cls, text):
    """No model is built, no reset is needed: the constructor refuses the argument."""
    with pytest.raises(cls, match=re.escape(text)) as info:
        EmbeddingSizeEnv(**{**tiny_kwargs, **override})
    assert isinstance(info.value, CIESSError)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_fails_at_construction(tiny_kwargs):
    """device='cuda' used to be accepted and fail with an AssertionError at reset."""
    with pytest.raises(InvalidArgumentError, match=re.escape("CUDA is not available")):
        EmbeddingSizeEnv(**{**tiny_kwargs, "device": "cuda"})


def test_unwritable_cache_dir_warns_and_keeps_the_pretrained_model(tiny_kwargs, tmp_path):
    """The cache write fails after pretraining; the env warns and still resets."""
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    # a data set no other test pretrained (memo miss)
    data = {**tiny_kwargs["dataset_kwargs"], "seed": 11}
    env = EmbeddingSizeEnv(**{**tiny_kwargs, "dataset_kwargs": data, "cache_dir": str(blocker)})
    with pytest.warns(CacheWriteWarning, match=re.escape(str(blocker))):
        obs, info = env.reset(seed=0)
    assert obs.shape == (70, 4)
    assert 0 < info["recall@20"] <= 1


@pytest.fixture(scope="module")
def started(tiny_kwargs) -> EmbeddingSizeEnv:
    env = EmbeddingSizeEnv(**tiny_kwargs)
    env.reset(seed=0)
    return env


@pytest.mark.parametrize(
    ("action", "text"),
    [
        (np.ones(70, dtype=bool), "`action` must be an array of real numbers, got bool entries"),
        (np.full(70, 0.5 + 0.5j), "got complex entries"),
        (np.full(70, "0.5"), "got string entries"),
        ("0.5", "got a string '0.5'"),
        (torch.zeros(70, requires_grad=True), "pass `action.detach()`"),
        (np.full(70, 16), "look like sizes (16 to 16), not actions in [-1, 1]"),
    ],
)
def test_actions_that_would_be_cast_silently_are_refused(started, action, text):
    """Bools, complex, strings and grad tensors are not actions; integer sizes are not either."""
    with pytest.raises(InvalidTypeError, match=re.escape(text)):
        started.step(action)


def test_plain_tensor_and_integer_actions_in_range_still_work(started):
    """A detached tensor and -1/0/1 integers are valid actions."""
    _, _, _, _, info = started.step(torch.zeros(70))
    assert int(info["user_sizes"][0]) == 65
    _, _, _, _, info = started.step(np.ones(70, dtype=np.int64))
    assert int(info["user_sizes"][0]) == 128


@pytest.mark.parametrize("lam", [1e308, 10_000.5, float("inf")])
def test_lam_beyond_the_bound_is_refused_instead_of_an_infinite_reward(tiny_kwargs, lam):
    """λ = 1e308 used to give reward -inf; λ must be finite and at most MAX_LAM = 1e4."""
    with pytest.raises(InvalidArgumentError, match="`lam` must be"):
        EmbeddingSizeEnv(**{**tiny_kwargs, "lam": lam})
    env = EmbeddingSizeEnv(**{**tiny_kwargs, "lam": 10_000})  # the bound itself is fine
    with pytest.raises(InvalidArgumentError, match=re.escape("`lam` must be at most 10000")):
        env.lam = 1e308  # reassigning between steps is validated the same way
    assert env.lam == 10_000


def test_human_render_mode_is_refused_by_gym_make_listing_the_offered_modes(tiny_kwargs):
    """gym.make(render_mode="human") used to wrap HumanRendering and ask for pygame later."""
    import gymnasium as gym

    kwargs = {k: v for k, v in tiny_kwargs.items() if k not in ("dataset", "backbone")}
    text = "`render_mode` must be None or one of the offered render modes ['ansi', 'rgb_array'], "
    with pytest.raises(InvalidArgumentError, match=re.escape(text + "got 'human'")):
        gym.make("CIESS-MF-Synthetic-v1", render_mode="human", **kwargs)
    with pytest.raises(InvalidArgumentError, match=re.escape(text + "got 'human'")):
        EmbeddingSizeEnv(**{**tiny_kwargs, "render_mode": "human"})
    env = gym.make("CIESS-MF-Synthetic-v1", render_mode="rgb_array", **kwargs)
    assert env.metadata["render_modes"] == ["ansi", "rgb_array"]
    assert env.unwrapped.render_mode == "rgb_array"
