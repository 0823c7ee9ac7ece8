"""benchmarks/fidelity_ground_truth.py: a probe replays the final retraining exactly."""

from __future__ import annotations

import math

import fidelity_ground_truth as study
import fidelity_report
import fidelity_rules
import numpy as np
import pytest

from ciess_env.env import EmbeddingSizeEnv
from ciess_env.recommenders import TrainConfig, make_backbone
from ciess_env.recommenders.pretraining import train_until_converged
from ciess_env.retrain import FinalRetrainRule, final_retrain


def test_replay_follows_the_rule_on_a_handmade_curve():
    """Every 200 / patience 2 sees only 200, 400, 600, 800: best 400, stopped at 800."""
    curve = [[b, q] for b, q in zip(range(50, 1001, 50), [0.1] * 3 + [0.5] + [0.2] * 3 + [0.6]
                                     + [0.3] * 12, strict=True)]  # fmt: skip
    assert fidelity_rules.replay(curve, 200, 2, 2000) == (400, True)
    assert fidelity_rules.replay(curve, 50, 4, 2000) == (400, True)
    assert fidelity_rules.replay(curve[:5], 200, 2, 2000) == (200, False)  # cut: best so far


def test_replay_is_the_env_rule_read_off_its_own_curve(tiny_data):
    """Replaying the curve train_until_converged recorded picks the batch count it kept."""
    model = make_backbone("mf", tiny_data, d_max=16, seed=0)
    got = train_until_converged(model, tiny_data, TrainConfig(n_batches=400, batch_size=64), seed=0,
                                eval_every=10, patience=2, max_batches=400)  # fmt: skip
    assert len(got.history) < 40  # it stopped early, so patience decided
    rule = fidelity_rules.replay(got.history, every=10, patience=2, cap=400)
    assert rule == (got.best_batches, True)


def test_probe_replays_final_retrain_exactly(tmp_path):
    """The probe's default-rule choice and test score are final_retrain's, bit for bit."""
    env = EmbeddingSizeEnv(
        dataset="synthetic", backbone="mf", preset="tiny", batches_per_step=300, batch_size=64,
        dataset_kwargs={"n_users": 40, "n_items": 30, "mean_interactions": 8},
        cache_dir=str(tmp_path),
    )  # fmt: skip
    data = env.data
    mask = study.Mask("ES", "ES", 0.5, np.full(data.n_users, 8), np.full(data.n_items, 8))
    row = study.probe(env, mask, seed=3, full=True)
    assert [h[0] for h in row["history"]] == list(range(50, 301, 50))
    test = {b: r20 for b, r20, _ in row["test"]}
    # The probe is one seed: the default rule's per-seed path (its seeds are averaged after).
    for label, rule in ((fidelity_rules.DEFAULT, FinalRetrainRule(seeds=1)),
                        (next(iter(fidelity_rules.RULES)), FinalRetrainRule.legacy())):  # fmt: skip
        best, n, _ = fidelity_rules.rule_count(row["history"], data, label, 300)
        got = final_retrain(
            data, mask.user_sizes, mask.item_sizes, env.step_config, rule=rule, seed=3
        )
        assert (got.best_batches, got.final_batches) == (best, n)
        assert got.test.recall(20) == pytest.approx(test[n], abs=1e-6)


def test_converge_read_off_a_probe_is_the_env_step(tmp_path):
    """The report's converge:E/P rows (read off a probe) equal what the env's step returns."""
    env = EmbeddingSizeEnv(
        dataset="synthetic", backbone="mf", preset="tiny", batches_per_step=600, batch_size=64,
        dataset_kwargs={"n_users": 40, "n_items": 30, "mean_interactions": 8},
        cache_dir=str(tmp_path),
    )  # fmt: skip
    mask = study.Mask("ES", "ES", 0.5, np.full(env.data.n_users, 8), np.full(env.data.n_items, 8))
    row = study.probe(env, mask, seed=2, full=True)
    stopped_early = []
    for design in ("converge:50/4", "converge:50/2", "converge:100/2"):
        quality, seconds = fidelity_report.curve_design(row, design)
        step = study.run_design(env, mask, design, None, seed=2)
        assert step["quality"] == pytest.approx(quality, abs=1e-6), design
        assert seconds > 0
        stopped_early.append(step["batches"] < 600)
    assert any(stopped_early)  # the rule really stopped a run, so the replay was exercised


def test_two_seed_truth_ranks_seed_2_designs_against_the_mean_of_seeds_0_and_1(tiny_data):
    """The truth is the mean of two seeds; a design that follows it gets ρ 1, its reverse −1.

    Seed 1 alone reverses two masks of each budget, so only the mean of seeds 0 and 1 gives the
    order the "follows" design was built from; a mask without seed 1 is left out.
    """
    masks, probes, rows = [], [], []
    for c in (0.8, 0.9):
        for k in range(5):
            sizes = np.full(tiny_data.n_users, 10 + k + (20 if c == 0.9 else 0))
            masks.append(study.Mask(f"m{k} @{c}", "x", c, sizes, np.full(tiny_data.n_items, 4)))
    for i, m in enumerate(masks):
        k = i % 5
        t0, t1 = 0.10 + 0.01 * k, 0.10 + 0.01 * k + (0.015 if k in (0, 2) else 0.0)
        for seed, q in ((0, t0), (1, t1)):
            if k == 4 and seed == 1 and m.budget == 0.9:
                continue  # one mask with only one truth seed
            hist = [[50, q - 0.01, q, q, 1.0, 0.1], [100, q, q, q, 2.0, 0.1]]
            probes.append({"digest": m.digest, "seed": seed, "history": hist})
        mean = t0 + (t1 - t0) / 2
        for design, q, s in (("converge:50/4", mean, 10.0), ("follows", mean, 1.5),
                             ("reverse", -mean, 2.0)):  # fmt: skip
            rows.append({"digest": m.digest, "design": design, "seed": 2, "quality": q,
                         "train_s": s - 0.5, "eval_s": 0.5,
                         **({"load": 1.0 + i % 2} if design == "follows" else {})})  # fmt: skip
    rows.append(
        {
            "digest": masks[0].digest,
            "design": "follows",
            "seed": 1,
            "quality": -1.0,
            "train_s": 1.0,
            "eval_s": 0.5,
        }
    )  # another seed: not part of this table
    got = fidelity_report.two_seed_truth(probes, tiny_data, rows, masks)
    assert got["n"] == 9
    follows, reverse = got["rows"]["follows"], got["rows"]["reverse"]
    assert follows["rho"] == {0.8: pytest.approx(1.0), 0.9: pytest.approx(1.0)}
    assert reverse["mean"] == pytest.approx(-1.0)
    assert (follows["top1"], reverse["top1"], reverse["top3"]) == (2, 0, 0)
    assert follows["ratio"] == pytest.approx(10.0 / 1.5)
    assert follows["ci"][0] <= 1.0 <= follows["ci"][1] + 1e-12
    assert 1.0 < follows["load"] < 2.0
    assert math.isnan(reverse["load"])
    lines = fidelity_report._two_seed_truth_lines(probes, tiny_data, rows, masks, 0.9)
    assert any(line.startswith("| follows | 1.00 | 1.00 | 1.00 [") for line in lines)
    assert any(line.startswith("| reverse |") and line.endswith("| — |") for line in lines)
    assert "√0.95 = 0.97" in "\n".join(lines)


def test_seed_means_average_two_independent_runs_at_twice_the_cost():
    quality = {"d (seed 1)": {"a": 0.1, "b": 0.2, "c": 0.3},
               "d (seed 2)": {"a": 0.3, "b": 0.2, "c": 0.1},
               "e (seed 1)": {"a": 0.1, "b": 0.2, "c": 0.3, "x": 0.5},
               "e (seed 2)": {"a": 0.3, "b": 0.2, "c": 0.1},
               "final retraining (seed 1)": {"a": 1.0, "b": 1.0, "c": 1.0}}  # fmt: skip
    seconds = {"d (seed 1)": [2.0, 4.0], "d (seed 2)": [5.0], "final retraining (seed 1)": [9.0],
               "e (seed 1)": [1.0], "e (seed 2)": [1.0]}  # fmt: skip
    fidelity_report._add_seed_means(quality, seconds)
    assert quality["d (mean of seeds 1, 2)"] == pytest.approx({"a": 0.2, "b": 0.2, "c": 0.2})
    assert seconds["d (mean of seeds 1, 2)"] == [8.0]
    assert "final retraining (mean of seeds 1, 2)" not in quality  # no seed-2 run of it
    assert "e (mean of seeds 1, 2)" not in quality  # seed 2 misses a mask of seed 1
