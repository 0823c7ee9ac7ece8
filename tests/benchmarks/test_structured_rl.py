"""benchmarks/structured_rl.py: learning curves from budget_agents units, bands, rise table."""

from __future__ import annotations

import json

import structured_rl


def _unit(agent: str, seed: int, rewards: list[float], budget: float | None = 0.9) -> dict:
    curve = [
        {"budget": budget, "episode": i // 2, "step": i % 2 + 1, "reward": r, "mean_quality": r}
        for i, r in enumerate(rewards)
    ]
    rows = [{"agent": agent, "seed": seed, "budget": budget}]
    return {"agent": agent, "seed": seed, "budget": budget, "rows": rows, "curve": curve}


def test_curves_average_each_episode_and_skip_units_without_a_search() -> None:
    units = [
        _unit("sac-structured", 0, [0.70, 0.72, 0.76, 0.78]),
        {"agent": "es", "seed": 0, "budget": 0.9, "rows": [], "curve": None},
    ]
    frame = structured_rl.curves(units)
    assert frame["reward"].round(4).tolist() == [0.71, 0.77]
    assert set(frame["agent"]) == {"sac-structured"}


def test_rise_table_pairs_first_and_last_episode_by_seed() -> None:
    units = [
        _unit("sac-structured", s, [0.70 + d, 0.70 + d, 0.75 + d, 0.75 + d]) for s, d in
        enumerate([0.0, 0.01, 0.02])
    ]  # fmt: skip
    table = "\n".join(structured_rl.rise_table(structured_rl.curves(units)))
    assert "| sac-structured | 90 % | 3 | 2 | 0.7100 [0.7000, 0.7200] |" in table
    # Every seed rose by 0.05 from episode 0; with two episodes, episode 1 is the last.
    assert "| +0.0500 [+0.0500, +0.0500] * | +0.0000 [+0.0000, +0.0000] |" in table


def test_report_draws_the_bands_and_appends_the_section(tmp_path) -> None:
    out = tmp_path / "study"
    units = [_unit("sac-structured", s, [0.70, 0.71, 0.74 + s / 100, 0.75]) for s in range(3)]
    out.with_suffix(".jsonl").write_text("".join(json.dumps(u) + "\n" for u in units))
    out.with_suffix(".md").write_text("# study\n")
    structured_rl.report(out, "CIESS-LightGCN-Synthetic-v1")
    structured_rl.report(out, "CIESS-LightGCN-Synthetic-v1")  # rewritten, not appended twice
    text = out.with_suffix(".md").read_text()
    assert text.count("## Learning curves") == 1
    assert (tmp_path / "study_curves.png").stat().st_size > 0


def test_one_episode_searches_get_a_curve_over_steps_and_window_differences(tmp_path) -> None:
    # Ten steps in one episode; every seed gains 0.02 from steps 2–4 to steps 7–9.
    q = [0.80, 0.81, 0.80, 0.80, 0.80, 0.81, 0.81, 0.82, 0.82, 0.82]
    units = [
        {"agent": "sac-structured", "seed": s, "budget": 0.9, "rows": [],
         "curve": [{"budget": 0.9, "episode": 0, "step": i + 1, "reward": v,
                    "mean_quality": v + s / 100} for i, v in enumerate(q)]}
        for s in range(3)
    ]  # fmt: skip
    steps = structured_rl.step_curves(units)
    assert steps["step"].tolist() == list(range(10)) * 3
    table = "\n".join(structured_rl.window_rise_table(steps, structured_rl.STEP_WINDOWS))
    assert "| sac-structured | 90 % | 3 | 0.8150 [0.8050, 0.8250] |" in table
    assert "| +0.0200 [+0.0200, +0.0200] * | +0.0150 [+0.0150, +0.0150] * |" in table
    out = tmp_path / "study"
    out.with_suffix(".jsonl").write_text("".join(json.dumps(u) + "\n" for u in units))
    out.with_suffix(".md").write_text("# study\n")
    structured_rl.report(out, "CIESS-LightGCN-ML100K-v1")
    assert "| steps 0–1 | steps 2–4 | steps 7–9 |" in out.with_suffix(".md").read_text()


def test_reference_table_says_whether_the_mean_is_inside_tpes_interval() -> None:
    import pandas as pd

    units = [
        {"agent": "sac-structured", "seed": s, "budget": c, "curve": [{}],
         "rows": [{"agent": "sac-structured", "seed": s, "budget": c, "recall@20": v}]}
        for c, values in ((0.8, [0.30, 0.31, 0.32]), (0.9, [0.20, 0.21, 0.22]))
        for s, v in enumerate(values)
    ]  # fmt: skip
    es = [{"agent": "es", "seed": 0, "budget": 0.8, "rows": [], "curve": None}]
    tpe = pd.DataFrame(
        [{"agent": "structured-tpe", "seed": s, "budget": c, "recall@20": v}
         for c in (0.8, 0.9) for s, v in enumerate([0.305, 0.31, 0.315])]
    )  # fmt: skip
    table = "\n".join(structured_rl.reference_table(units + es, tpe, "structured-tpe"))
    tpe_cell = "0.3100 [0.3050, 0.3150]"
    assert f"| 80 % | 3 | 0.3100 [0.3000, 0.3200] | {tpe_cell} | yes |" in table
    assert (
        f"| 0.2100 [0.2000, 0.2200] | {tpe_cell} | below | -0.1000 [-0.1050, -0.0950] * |" in table
    )
    assert "| es |" not in table


def test_an_option_given_replaces_its_default() -> None:
    args = structured_rl.with_defaults(["--agents", "sac-structured", "--budgets", "0.9"])
    assert args.count("--agents") == 1
    assert args[-4:] == ["--agents", "sac-structured", "--budgets", "0.9"]
    assert args[args.index("--seeds") + 1 : args.index("--seeds") + 4] == ["0", "1", "2"]
    assert args[args.index("--env-kw") + 1] == ""


def test_a_study_reports_its_searches_curves_and_labels_missing_seeds(tmp_path, monkeypatch):
    """`--study`: the cells' own per-step curves (compare/curve_<agent>.csv), partial labels."""
    import shutil

    import study

    monkeypatch.setenv("CIESS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(study, "SWEEPS", tmp_path)
    monkeypatch.setattr(study, "RESULTS", tmp_path / "results")
    (tmp_path / "tiny.toml").write_text(
        'description = "tiny"\nenv_id = "CIESS-MF-Synthetic-v0"\n'
        'agents = ["structured-tpe"]\nseeds = 2\nbudgets = [0.9]\nretrain_batches = 4\n'
        'episodes = 1\n\n[env_kwargs]\npreset = "tiny"\n'
        "dataset_kwargs = { n_users = 40, n_items = 30, mean_interactions = 8 }\n"
    )
    tiny = study.Study("tiny", study.STUDIES["budget_agents_ml100k"].render)
    monkeypatch.setitem(study.STUDIES, "tiny", tiny)
    study.run(tiny, sequential=True, address=None, num_cpus=None)
    units = study.units(tiny)
    assert [len(u["curve"]) for u in units] == [10, 10]  # one episode of T = 10 env steps
    assert {"budget", "step", "mean_quality", "recall@20"} <= set(units[0]["curve"][0])
    md = structured_rl.study_report("tiny", tmp_path / "results" / "curves")
    text = md.read_text()
    assert "`structured-tpe` at 90 %: 2 of 2 seeds." in text
    assert "| structured-tpe | 90 % | 2 |" in text  # the window table, over both seeds
    assert (tmp_path / "results" / "curves_curves.png").stat().st_size > 0
    shutil.rmtree(next((tmp_path / "results" / "tiny" / "cells").iterdir()))
    text = structured_rl.study_report("tiny", tmp_path / "results" / "curves").read_text()
    assert "`structured-tpe` at 90 %: 1 of 2 seeds (partial)" in text
