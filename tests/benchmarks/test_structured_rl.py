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
