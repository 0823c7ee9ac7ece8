"""Speed of CIESS's exploration step; writes benchmarks/results/random_walk.md.

Usage:
    python benchmarks/bench_random_walk.py [--repeat 50] [--threads 1] [--device cpu]
        [--output PATH]

Measures, for 9,746 entities (ML-1M: 6,040 users + 3,706 items) and 10,000 entities:

* the random walk alone (5 steps, t = 5, sizes 1..128): the reference code takes 0.74 s for
  9,746 entities on this machine class (run by the maintainers);
* the whole ``RandomWalkTD3._sample_action`` with the paper's 256-256 networks: actor
  proposals, the walk, one batched Q1 call over the 6 candidates of every entity, argmax,
  noise, rounding.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from report import machine, md_table
from stable_baselines3.common.vec_env import VecEnv

from agents.random_walk import random_walk
from agents.rw_td3 import RandomWalkTD3

SIZES = {"ML-1M (6,040 + 3,706)": 9746, "10,000": 10_000}
REFERENCE_WALK_S = 0.74  # authors' code, 9,746 entities × 5 steps, run by the maintainers


class _StubEntityEnv(VecEnv):
    """Only the spaces and a reset: enough to build the agent and sample actions."""

    def __init__(self, n: int) -> None:
        self._rng = np.random.default_rng(0)
        self.render_mode = None
        self.d_min, self.d_max = 1, 128
        super().__init__(
            n, spaces.Box(-1.0, 1.0, (4,), np.float32), spaces.Box(-1.0, 1.0, (1,), np.float32)
        )

    def reset(self) -> np.ndarray:
        obs = self._rng.uniform(-1, 1, (self.num_envs, 4)).astype(np.float32)
        obs[:, 0] = np.where(np.arange(self.num_envs) < 0.62 * self.num_envs, -1.0, 1.0)
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        raise NotImplementedError

    def step_wait(self) -> Any:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        return [getattr(self, attr_name)] * len(self._get_indices(indices))

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        setattr(self, attr_name, value)

    def env_method(self, method_name: str, *args: Any, indices: Any = None, **kw: Any) -> list:
        raise NotImplementedError

    def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
        return [False] * len(self._get_indices(indices))


def _time(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Median and minimum seconds per call, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), float(np.min(times))


def bench(repeat: int, device: str) -> list[str]:
    rows = []
    for label, n in SIZES.items():
        rng = np.random.default_rng(0)
        start = rng.integers(1, 129, n)
        walk_med, walk_min = _time(lambda s=start, r=rng: random_walk(s, rng=r), repeat)
        env = _StubEntityEnv(n)
        model = RandomWalkTD3("EntityPolicy", env, buffer_size=n, seed=0, device=device)
        model._last_obs = env.reset()
        act_med, act_min = _time(
            lambda m=model, k=n: m._sample_action(learning_starts=0, n_envs=k), repeat
        )
        versus = f"{REFERENCE_WALK_S / walk_med:,.0f}× faster" if n == 9746 else "—"
        rows.append([label, f"{1e3 * walk_med:.2f}", f"{1e3 * walk_min:.2f}", versus,
                     f"{1e3 * act_med:.1f}", f"{1e3 * act_min:.1f}"])  # fmt: skip
        print(rows[-1], flush=True)
    head = ["entities", "walk median (ms)", "walk min (ms)", "vs reference walk",
            "`_sample_action` median (ms)", "`_sample_action` min (ms)"]  # fmt: skip
    return md_table(head, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--output", type=Path, default=Path(__file__).parent / "results" / "random_walk.md"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = bench(args.repeat, args.device)
    command = "python benchmarks/bench_random_walk.py " + shlex.join(sys.argv[1:])
    text = [
        "# Random-walk exploration speed",
        "",
        f"Command: `{command.strip()}`",
        "",
        f"Date: {dt.date.today().isoformat()}; {machine(args.device)}; "
        f"{args.repeat} repeats (after one warm-up).",
        "",
        "Walk: 5 steps, t = 5, sizes 1..128, all entities at once "
        "(`agents.random_walk.random_walk`). `_sample_action`: `RandomWalkTD3` with the paper's "
        "two-sided 256-256 actor/critic — actor proposals, the walk, one batched Q1 call over "
        "6 candidates per entity, argmax, per-entity Gaussian noise (σ = 6), rounding.",
        f"Reference: the authors' walk takes {REFERENCE_WALK_S} s for 9,746 entities "
        "(run by the maintainers on this machine class).",
        "",
        *rows,
        "",
    ]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("\n".join(text))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
