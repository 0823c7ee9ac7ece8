"""The resumable-study cache of ``benchmarks/`` and the command it records with each unit."""

from __future__ import annotations

from pathlib import Path

import jsonl_cache as cache

REPO = Path(__file__).resolve().parents[2]


def test_units_round_trip_in_order_and_numpy_scalars_become_floats(tmp_path) -> None:
    import numpy as np

    path = tmp_path / "deep" / "units.jsonl"
    assert cache.read_units(path) == []
    cache.append_unit(path, {"seed": 0, "r": np.float32(0.25)})
    cache.append_unit(path, {"seed": 1, "r": 0.5})
    assert cache.read_units(path) == [{"seed": 0, "r": 0.25}, {"seed": 1, "r": 0.5}]


def test_recorded_commands_carry_no_absolute_paths() -> None:
    argv = [
        "--data-dir", str(REPO.parent / "shared" / "data"),
        f"--out={REPO / 'benchmarks' / 'results'}",
        "--seeds", "0", "1",
        "a b",
        "--cache", "/proc/elsewhere",
    ]  # fmt: skip
    line = cache.command_line("benchmarks/x.py", argv)
    assert line == (
        "python benchmarks/x.py --data-dir ../shared/data --out=benchmarks/results "
        "--seeds 0 1 'a b' --cache /proc/elsewhere"
    )
