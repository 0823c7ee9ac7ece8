"""benchmarks/profile_step.py: a step's time split into building, batches, floor and validation."""

from __future__ import annotations

import numpy as np
import profile_step as bench

from ciess_env.env import EmbeddingSizeEnv


def test_a_profiled_step_accounts_for_its_batches_and_validation_passes() -> None:
    env = EmbeddingSizeEnv(dataset="synthetic", preset="tiny", batches_per_step=40)
    data = env.data
    mask = bench.Mask("ES", "ES", 0.5, np.full(data.n_users, 5), np.full(data.n_items, 5))
    early = bench.profile(env, "synthetic", mask, "converge:10/2", seed=1)
    # Early stopping: one validation pass per 10 batches run, the best no later than the last.
    assert early["evals"] == early["batches_run"] // 10
    assert early["best_batches"] <= early["batches_run"] <= 40
    assert early["active_width"] == 5
    assert early["floor_ms"] > 0
    sprint = bench.profile(env, "synthetic", mask, "sprint:6", seed=1)
    assert (sprint["batches_run"], sprint["evals"]) == (6, 1)
    assert sprint["batch_size"] == 5 * env.step_config.train.batch_size
    # The patched evaluate is restored: nothing else is timed after a unit.
    assert bench.pretraining.evaluate.__module__ == "ciess_env.metrics"


#: A converge:50/4 unit as profile() writes it (ML-1M figures, rounded).
UNIT = {"dataset": "ml-1m", "mask": "ES @90%", "design": "converge:50/4", "total_s": 40.0,
        "batches_run": 1350, "best_batches": 1150, "batch_size": 10_000, "active_width": 13,
        "batch_ms": 25.0, "floor_ms": 10.0, "evals": 27, "eval_s": 8.0, "train_s": 32.0,
        "quality": 0.18, "load": 1.0}  # fmt: skip


def test_report_has_one_row_per_unit_with_shares(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(bench, "RESULTS", tmp_path)
    unit = dict(UNIT)
    text = bench.write_report([unit]).read_text()
    assert "| ml-1m | ES @90% | converge:50/4 | 40.0 | 1350 (1150) | 10,000 | 13 | 25 | 10 | 40% " \
           "| 27 | 8.0 | 20% |" in text  # fmt: skip
    # A quieter --floors measurement of the same data set and width lowers the floor.
    quiet = {"dataset": "ml-1m", "active_width": 13, "floor_ms": 5.0, "load": 0.1}
    other = {"dataset": "ml-1m", "active_width": 26, "floor_ms": 1.0, "load": 0.1}
    text = bench.write_report([unit, quiet, other]).read_text()
    assert "| 13 | 25 | 5 | 20% | 27 |" in text
    assert text.count("| ml-1m |") == 1


def test_gpu_units_get_their_own_rows_and_floors(tmp_path, monkeypatch) -> None:
    """A CUDA unit is labelled and keeps its own floor; a faster GPU floor never lowers CPU's."""
    monkeypatch.setattr(bench, "RESULTS", tmp_path)
    cpu = {**UNIT, "design": "sprint:150", "total_s": 9.0, "batches_run": 150,
           "best_batches": 150, "batch_size": 50_000, "batch_ms": 50.0, "floor_ms": 20.0,
           "evals": 1, "eval_s": 0.5, "train_s": 7.5}  # fmt: skip
    gpu = {**cpu, "total_s": 1.0, "batch_ms": 5.0, "floor_ms": 1.0, "train_s": 0.75,
           "eval_s": 0.1, "device": "cuda:0"}  # fmt: skip
    text = bench.write_report([cpu, gpu]).read_text()
    assert (
        "| ml-1m | ES @90% | sprint:150 | 9.0 | 150 (150) | 50,000 | 13 | 50 | 20 | 40% |" in text
    )
    assert "| ml-1m (cuda) | ES @90% | sprint:150 | 1.0 | 150 (150) | 50,000 | 13 | 5 | 1 | 20% |" \
        in text  # fmt: skip


def test_a_step_profiles_on_the_requested_device() -> None:
    env = EmbeddingSizeEnv(dataset="synthetic", preset="tiny", batches_per_step=20, device="cpu")
    mask = bench.Mask("ES", "ES", 0.5, np.full(env.data.n_users, 4), np.full(env.data.n_items, 4))
    unit = bench.profile(env, "synthetic", mask, "sprint:4", seed=1)
    assert unit["device"] == "cpu"
    assert bench.sparse_floor_ms(env.data, 4, 3, reps=2, device="cpu") > 0


def test_sampling_compares_both_membership_tests_on_identical_draws(tmp_path, monkeypatch):
    """Both tests draw the same batch; units get their own section and never a floor row."""
    env = EmbeddingSizeEnv(dataset="synthetic", preset="tiny")
    ms = bench.sampling_ms(env.data, 2000, reps=2)
    assert set(ms) == {"hash_ms", "sorted_ms"}
    assert min(ms.values()) > 0
    monkeypatch.setattr(bench, "RESULTS", tmp_path)
    older = {"dataset": "ml-1m", "sampling_batch": 10_000, "hash_ms": 9.0, "sorted_ms": 9.0,
             "load": 2.0}  # fmt: skip
    unit = {**older, "hash_ms": 0.5, "sorted_ms": 2.0, "load": 1.0}
    text = bench.write_report([UNIT, older, unit]).read_text()
    assert "## BPR sampling per batch" in text
    assert "| ml-1m | 10,000 | 0.5 | 2.0 | 4.0× | 1.0 |" in text  # the latest unit only
    assert "| 9.0 |" not in text
    assert bench.floors([UNIT, unit]) == {("ml-1m", 13, "cpu", None): 10.0}


def test_sorted_key_search_agrees_with_the_sampler(small_data):
    sampler = bench.BPRSampler(small_data, np.random.default_rng(0))
    batch = sampler.sample(3000)
    users = np.concatenate([batch.users, batch.users])
    items = np.concatenate([batch.pos, batch.neg])
    search = bench._sorted_key_search(small_data)
    np.testing.assert_array_equal(search(users, items), sampler.is_positive(users, items))
    assert search(batch.users, batch.pos).all()


def test_units_of_the_current_step_code_get_their_own_table_and_speedups(tmp_path, monkeypatch):
    monkeypatch.setattr(bench, "RESULTS", tmp_path)
    after = {**UNIT, "total_s": 20.0, "batch_ms": 12.5, "train_s": 16.0, "eval_s": 4.0,
             "floor_ms": 5.0, "step_code": bench.STEP_CODE}  # fmt: skip
    text = bench.write_report([UNIT, after]).read_text()
    before_part, after_part = text.split("## After: ")
    assert "| ml-1m | ES @90% | converge:50/4 | 40.0 |" in before_part
    # Each keeps the floor of its own code: the new code's faster products change no old row.
    assert "| 13 | 25 | 10 | 40% |" in before_part
    assert "| 13 | 12 | 5 | 40% |" in after_part
    assert "| ml-1m | ES @90% | converge:50/4 | 20.0 |" in after_part
    assert "- ml-1m, ES @90%, converge:50/4: 40.0 s → 20.0 s (2.00×; 25 → 12 ms a batch" in text
    # Only the "before" table when no unit has the current code.
    assert "## After" not in bench.write_report([UNIT]).read_text()


def test_only_steps_profiled_with_the_current_code_count_as_done():
    current = {**UNIT, "seed": 1, "step_code": bench.STEP_CODE}
    older = {**UNIT, "seed": 1, "design": "sprint:150"}  # no step code: profiled again
    sampling = {"dataset": "ml-1m", "sampling_batch": 10_000, "hash_ms": 1.0, "sorted_ms": 2.0}
    assert bench.profiled([current, older, sampling]) == {
        ("ml-1m", "ES @90%", "converge:50/4", 1, "cpu")
    }
