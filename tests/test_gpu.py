"""The CUDA path: a faithful and a sprint step, and a search through final retraining.

The project never needs a GPU, so these skip where CUDA is absent; wherever it exists
(``pytest -m gpu``) they run the same code with ``device="cuda"``: a tensor left on the CPU
anywhere on that path fails them with torch's device-mismatch error.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import ciess_env  # noqa: F401  (registers the env ids)

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(
        not torch.cuda.is_available(),
        reason="needs CUDA: run `pytest -m gpu` on a machine with an NVIDIA GPU",
    ),
]

TINY = {"n_users": 60, "n_items": 40, "mean_interactions": 10}


@pytest.mark.parametrize("retrain", ["converge:50/4", "sprint:150"])
def test_a_step_trains_and_scores_on_the_gpu(retrain, tmp_path) -> None:
    env = gym.make(
        "CIESS-LightGCN-Synthetic-v1", preset="tiny", device="cuda", retrain=retrain,
        dataset_kwargs=TINY, cache_dir=str(tmp_path),
    )  # fmt: skip
    _, info = env.reset(seed=0)
    _, reward, _, _, info = env.step(env.action_space.sample())
    assert env.unwrapped.device.type == "cuda"
    assert np.isfinite(reward)
    assert 0.0 <= info["sparsity"] <= 1.0


def test_a_search_and_its_final_retraining_run_on_the_gpu(tmp_path) -> None:
    from agents.experiments import compare

    result = compare(
        "CIESS-LightGCN-Synthetic-v1",
        ["es", "sac-structured"],
        budgets=[0.9],
        episodes=1,
        top_l=1,
        retrain_batches=8,
        env_kwargs={
            "preset": "tiny",
            "device": "cuda",
            "dataset_kwargs": TINY,
            "cache_dir": str(tmp_path),
        },
        agent_kwargs={"sac-structured": {"batch_size": 8, "gradient_steps": 1}},
        progress_bar=False,
    )
    table = result.table.set_index("agent")
    assert table.loc["sac-structured", "sparsity"] == pytest.approx(0.9)
    assert np.isfinite(table["recall@20"]).all()


def test_the_step_profile_times_a_step_on_the_gpu(tmp_path) -> None:
    """benchmarks/profile_step.py with --device cuda: the unit and its floor run on the GPU."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
    import profile_step

    from ciess_env.env import EmbeddingSizeEnv

    env = EmbeddingSizeEnv(
        dataset="synthetic", preset="tiny", batches_per_step=20, device="cuda",
        dataset_kwargs=TINY, cache_dir=str(tmp_path),
    )  # fmt: skip
    sizes = (np.full(env.data.n_users, 4), np.full(env.data.n_items, 4))
    mask = profile_step.Mask("ES", "ES", 0.5, *sizes)
    unit = profile_step.profile(env, "synthetic", mask, "converge:5/2", seed=1)
    assert unit["device"].startswith("cuda")
    assert unit["floor_ms"] > 0
    assert unit["evals"] >= 1
