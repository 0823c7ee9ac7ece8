"""The examples in ``examples/`` run and do what they claim."""

from __future__ import annotations

import importlib.util
import sys
import warnings
from pathlib import Path
from types import ModuleType, SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load_example(name: str) -> ModuleType:
    """Import ``examples/<name>.py`` as a module (examples are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


def test_cleanrl_td3_learns_on_the_gymnasium_per_entity_vector_env(tmp_path: Path) -> None:
    """TD3 beats a random and its untrained actor by ≥ 0.5 per 10-step episode (seed 0).

    60 vector steps store 3,000 entity transitions; the return is the mean per-entity return of
    one evaluation episode (per-step rewards are ≤ 1; seeds 0–3 give margins of 0.9–1.5).
    """
    td3 = load_example("cleanrl_td3")
    args = td3.Args(seed=0, total_steps=60, cache_dir=str(tmp_path))
    returns = td3.main(args)
    assert returns["trained"] > returns["random"] + 0.5, returns
    assert returns["trained"] > returns["initial"] + 0.5, returns


def test_cleanrl_td3_command_line_maps_every_field() -> None:
    """``--kebab-case`` options for every Args field, with --no-tiny for the bools."""
    td3 = load_example("cleanrl_td3")
    args = td3.parse_args(["--total-steps", "5", "--learning-rate", "0.01", "--no-tiny"])
    assert args == td3.Args(total_steps=5, learning_rate=0.01, tiny=False)
    with pytest.raises(SystemExit):
        td3.parse_args(["--total-steps", "five"])


TINY = {
    "preset": "tiny",
    "dataset_kwargs": {"n_users": 30, "n_items": 20, "mean_interactions": 6},
}


def test_flat_table_env_passes_sb3_check_env_without_a_warning(tmp_path: Path) -> None:
    """(N, 4) → SB3 warns (unconventional shape); FlattenObservation's (4N,) → no warning."""
    from stable_baselines3.common.env_checker import check_env

    sb3_table = load_example("sb3_table_td3")
    flat = sb3_table.make_flat_env("CIESS-MF-Synthetic-v1", cache_dir=str(tmp_path), **TINY)
    assert flat.observation_space.shape == (200,)
    with warnings.catch_warnings(record=True) as raw:
        warnings.simplefilter("always")
        check_env(flat.unwrapped)
    assert any("unconventional shape" in str(w.message) for w in raw)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(flat)
    assert [str(w.message) for w in caught] == []


def test_buffer_guidance_is_what_sb3_allocates(tmp_path: Path) -> None:
    """36·N + 12 bytes per table transition, as SB3 allocates: 54 GB for 10⁶ at N = 1,500."""
    from stable_baselines3.common.buffers import ReplayBuffer

    sb3_table = load_example("sb3_table_td3")
    flat = sb3_table.make_flat_env("CIESS-MF-Synthetic-v1", cache_dir=str(tmp_path), **TINY)
    buffer = ReplayBuffer(10, flat.observation_space, flat.action_space, device="cpu")
    allocated = sum(a.nbytes for a in vars(buffer).values() if isinstance(a, np.ndarray))
    assert allocated == 10 * sb3_table.transition_bytes(flat) == 10 * (36 * 50 + 12)
    default_synthetic = SimpleNamespace(
        observation_space=gym.spaces.Box(-1, 1, (1500, 4)),
        action_space=gym.spaces.Box(-1, 1, (1500,)),
    )
    assert round(10**6 * sb3_table.transition_bytes(default_synthetic) / 1e9) == 54
    assert sb3_table.buffer_size_for(default_synthetic, 54_012_000) == 1_000
    assert sb3_table.buffer_size_for(default_synthetic, 1) == 1


def test_sb3_td3_trains_on_the_flat_table_env_with_a_sized_buffer(tmp_path: Path) -> None:
    """The example's TD3 runs an episode; its buffer holds (4N,) observations within 1 MiB."""
    sb3_table = load_example("sb3_table_td3")
    model = sb3_table.main(
        "CIESS-MF-Synthetic-v1", episodes=1, memory_mb=1, cache_dir=str(tmp_path), **TINY
    )
    buffer = model.replay_buffer
    assert buffer.observations.shape == (2**20 // (36 * 50 + 12), 1, 200)
    assert buffer.pos == 10
