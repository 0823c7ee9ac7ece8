"""Bootstrap intervals, probability of improvement and the per agent × budget summary."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import mannwhitneyu, norm

from agents.experiments.stats import (
    MIN_SEEDS,
    Interval,
    bootstrap_ci,
    difference_ci,
    probability_of_improvement,
    probability_of_improvement_ci,
    summarize,
    summary_markdown,
)


def _exact_bootstrap_quantiles(x: np.ndarray, q: tuple[float, float]) -> tuple[float, float]:
    """The percentile interval of the *exact* bootstrap distribution of the mean.

    Every one of the n**n equally likely resamples is enumerated (no random draws), so this is
    an independent computation of what a percentile bootstrap estimates.
    """
    means = np.sort([np.mean(c) for c in itertools.product(x, repeat=len(x))])
    return tuple(float(np.quantile(means, p)) for p in q)  # type: ignore[return-value]


def test_bootstrap_ci_matches_the_exact_bootstrap_on_a_tiny_fixed_sample() -> None:
    x = np.array([0.21, 0.18, 0.25, 0.19, 0.30])
    lo, hi = _exact_bootstrap_quantiles(x, (0.025, 0.975))
    ci = bootstrap_ci(x, n_resamples=100_000, seed=1)
    assert ci.estimate == pytest.approx(0.226)
    # Monte Carlo error of a 2.5 % quantile from 1e5 draws is ~1e-3 of the spread here.
    assert ci.low == pytest.approx(lo, abs=2e-3)
    assert ci.high == pytest.approx(hi, abs=2e-3)
    assert lo < ci.estimate < hi


def test_bootstrap_ci_covers_the_mean_and_shrinks_with_more_seeds() -> None:
    widths = {}
    for n in (5, 20, 200):
        # The same spread at every n (normal quantiles), so only n changes the width.
        x = 0.2 + 0.02 * norm.ppf((np.arange(n) + 0.5) / n)
        ci = bootstrap_ci(x, n_resamples=4000)
        assert ci.low <= ci.estimate <= ci.high
        assert ci.estimate == pytest.approx(x.mean())
        widths[n] = ci.high - ci.low
    assert widths[5] > widths[20] > widths[200]
    # The width of a mean's interval scales like 1/sqrt(n): 10x the seeds, ~3.2x narrower.
    assert 2.0 < widths[20] / widths[200] < 5.0


def test_bootstrap_ci_covers_the_true_mean_about_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(3)
    hits = [bootstrap_ci(rng.normal(1.0, 1.0, 30), n_resamples=2000, seed=i).excludes(1.0)
            for i in range(300)]  # fmt: skip
    coverage = 1 - np.mean(hits)
    assert 0.88 <= coverage <= 0.99  # the percentile bootstrap under-covers slightly at n = 30


def test_bootstrap_ci_is_reproducible_and_its_seed_matters() -> None:
    x = [0.1, 0.4, 0.35, 0.2]
    assert tuple(bootstrap_ci(x, seed=5)) == tuple(bootstrap_ci(x, seed=5))
    assert tuple(bootstrap_ci(x, seed=5, n_resamples=200)) != tuple(
        bootstrap_ci(x, seed=6, n_resamples=200)
    )


def test_bootstrap_ci_edge_cases_drop_nan_and_say_what_is_undefined() -> None:
    assert all(math.isnan(v) for v in bootstrap_ci([math.nan, math.nan]))
    one = bootstrap_ci([0.3, math.nan])
    assert one.estimate == 0.3
    assert math.isnan(one.low)
    assert math.isnan(one.high)
    assert tuple(bootstrap_ci([0.2, 0.2, 0.2])) == (0.2, 0.2, 0.2)
    with pytest.raises(ValueError, match="`confidence` must be in"):
        bootstrap_ci([1.0, 2.0], confidence=95)
    with pytest.raises(ValueError, match="must be finite"):
        bootstrap_ci([1.0, math.inf])


def test_probability_of_improvement_is_the_mann_whitney_statistic_over_nm() -> None:
    x, y = [0.30, 0.21, 0.25, 0.25], [0.20, 0.25, 0.22]
    u = mannwhitneyu(x, y, alternative="two-sided").statistic  # U of x, ties count one half
    assert probability_of_improvement(x, y) == pytest.approx(u / (len(x) * len(y)))
    assert probability_of_improvement([1, 2, 3], [2, 2, 2]) == pytest.approx(0.5)
    assert probability_of_improvement([3, 4], [1, 2]) == 1.0
    assert probability_of_improvement([1, 2], [3, 4]) == 0.0


def test_probability_of_improvement_interval_brackets_the_estimate() -> None:
    rng = np.random.default_rng(1)
    x, y = rng.normal(0.22, 0.01, 8), rng.normal(0.20, 0.01, 8)
    poi = probability_of_improvement_ci(x, y, n_resamples=4000)
    assert 0.0 <= poi.low <= poi.estimate <= poi.high <= 1.0
    assert poi.estimate > 0.8
    assert poi.excludes(0.5)


def test_paired_difference_removes_the_shared_seed_effect() -> None:
    # Per-seed effects dwarf a constant gain of 0.01: only the paired interval sees it.
    seed_effect = np.array([0.0, 0.05, -0.04, 0.08, -0.06])
    y = 0.2 + seed_effect
    x = y + 0.01 + np.array([0.001, -0.001, 0.0, 0.002, -0.002])
    paired = difference_ci(x, y, paired=True, n_resamples=4000)
    unpaired = difference_ci(x, y, paired=False, n_resamples=4000)
    assert paired.estimate == pytest.approx(0.01) == unpaired.estimate
    assert paired.excludes(0.0)
    assert not unpaired.excludes(0.0)
    with pytest.raises(ValueError, match="equal lengths"):
        difference_ci([1.0, 2.0], [1.0], paired=True)


def _table() -> pd.DataFrame:
    rows = []
    for seed in range(4):
        for budget in (0.8, 0.9):
            rows.append({"agent": "es", "budget": budget, "seed": seed, "sparsity": budget,
                         "recall@20": 0.20 + 0.001 * seed, "ndcg@20": 0.30})  # fmt: skip
            rows.append({"agent": "rw-td3", "budget": budget, "seed": seed, "sparsity": 0.85,
                         "recall@20": 0.21 + 0.001 * seed if budget == 0.8 else math.nan,
                         "ndcg@20": 0.31 if budget == 0.8 else math.nan})  # fmt: skip
    return pd.DataFrame(rows)


def test_summarize_gives_one_row_per_agent_and_budget_with_baseline_comparisons() -> None:
    summary = summarize(_table(), n_resamples=2000)
    assert list(zip(summary["agent"], summary["budget"], strict=True)) == [
        ("es", 0.8), ("rw-td3", 0.8), ("es", 0.9), ("rw-td3", 0.9)
    ]  # fmt: skip
    rw = summary[(summary["agent"] == "rw-td3") & (summary["budget"] == 0.8)].iloc[0]
    assert rw["seeds"] == 4
    assert rw["reached"] == 4
    assert rw["recall@20"] == pytest.approx(0.2115)
    assert rw["recall@20_diff"] == pytest.approx(0.01)
    assert rw["recall@20_diff_low"] == pytest.approx(0.01)  # paired: every seed gains 0.01
    assert rw["recall@20_p_improve"] == pytest.approx(1.0)
    missing = summary[(summary["agent"] == "rw-td3") & (summary["budget"] == 0.9)].iloc[0]
    assert missing["reached"] == 0
    assert math.isnan(missing["recall@20"])
    es = summary[summary["agent"] == "es"].iloc[0]
    assert math.isnan(es["recall@20_p_improve"])  # the baseline is not compared with itself


def test_a_partial_study_with_one_seed_on_one_side_reports_no_interval_instead_of_failing() -> None:
    """An agent with one seed against a baseline with two: seed 0 against seed 0, no interval."""
    table = pd.DataFrame(
        [{"agent": "es", "seed": s, "budget": 0.8, "sparsity": 0.8, "recall@20": 0.30 + s / 100}
         for s in (0, 1)]
        + [{"agent": "tpe", "seed": 0, "budget": 0.8, "sparsity": 0.8, "recall@20": 0.32}]
    )  # fmt: skip
    row = summarize(table, metrics=("recall@20",)).set_index("agent").loc["tpe"]
    assert row["recall@20_pairs"] == 1
    assert row["recall@20_diff"] == pytest.approx(0.32 - 0.30)
    assert math.isnan(row["recall@20_diff_low"])
    assert math.isnan(row["recall@20_p_improve_low"])
    assert math.isnan(difference_ci([0.3], [0.2, 0.25]).low)


def _es_vs_tpe(es: dict[int, float], agent: dict[int, float]) -> pd.DataFrame:
    """Summary of ES and "tpe" at 80 %, test R@20 given per seed."""
    table = pd.DataFrame(
        [{"agent": name, "seed": s, "budget": 0.8, "sparsity": 0.8, "recall@20": v}
         for name, values in (("es", es), ("tpe", agent)) for s, v in values.items()]
    )  # fmt: skip
    return summarize(table, metrics=("recall@20",), n_resamples=500)


def test_unequal_seed_sets_are_paired_over_the_common_seeds() -> None:
    """ES ran seeds 0-3, the agent 0, 2 and 3: the difference is the paired one over those."""
    es = {0: 0.22, 1: 0.20, 2: 0.18, 3: 0.24}
    agent = {0: 0.23, 2: 0.19, 3: 0.25}  # +0.01 on each seed it ran
    summary = _es_vs_tpe(es, agent)
    row = summary.set_index("agent").loc["tpe"]
    assert row["recall@20_pairs"] == 3
    # The difference of the means (0.2233 - 0.21) does not: paired, every seed gains exactly
    # 0.01, so the difference is 0.01 and its interval a point.
    assert row["recall@20_diff"] == pytest.approx(0.01)
    assert (row["recall@20_diff_low"], row["recall@20_diff_high"]) == pytest.approx((0.01, 0.01))
    assert row["recall@20_p_improve"] == pytest.approx(probability_of_improvement(
        list(agent.values()), list(es.values())))  # fmt: skip
    text = summary_markdown(summary, metrics=("recall@20",))
    assert "| tpe | 3 | 0.8000 | 0.2233 [" in text
    assert "+0.0100 [+0.0100, +0.0100] * (paired on 3 seeds)" in text
    assert "intervals need" not in text


def test_two_seeds_give_means_without_interval_star_or_p_interval_and_say_why() -> None:
    """`compare --seeds 2` printed 95 % intervals, `*` and P [0.00, 1.00] from two values."""
    summary = _es_vs_tpe({0: 0.20, 1: 0.21}, {0: 0.25, 1: 0.27})
    row = summary.set_index("agent").loc["tpe"]
    assert row["recall@20"] == pytest.approx(0.26)
    assert row["recall@20_diff"] == pytest.approx(0.055)
    for col in ("recall@20_low", "recall@20_diff_low", "recall@20_p_improve_low"):
        assert math.isnan(row[col]), col
    text = summary_markdown(summary, metrics=("recall@20",))
    assert "| tpe | 2 | 0.8000 | 0.2600 | +0.0550 | 1.00 |" in text
    assert "[" not in text.split("Means only")[0]  # no interval anywhere in the table
    assert "*" not in text.split("Means only")[0]
    assert "Means only (no 95 % interval, `*` mark or P(·) interval): intervals need >= 3 " in text
    assert "intervals need >= 3 seeds; got 2." in text


def test_primitives_give_no_interval_below_three_values() -> None:
    """Two values resample to three means: no interval from them, whatever the helper."""
    assert MIN_SEEDS == 3
    assert math.isnan(bootstrap_ci([0.1, 0.3]).low)
    assert math.isnan(bootstrap_ci([0.2, 0.2]).low)
    assert math.isnan(difference_ci([0.3, 0.4], [0.1, 0.2]).low)
    assert math.isnan(difference_ci([0.3, 0.4], [0.1, 0.2], paired=True).low)
    assert math.isnan(probability_of_improvement_ci([0.3, 0.4], [0.1, 0.2]).low)
    assert not math.isnan(bootstrap_ci([0.1, 0.3, 0.2]).low)


def test_a_table_mixing_three_and_two_seeds_says_which_cells_lack_an_interval() -> None:
    summary = _es_vs_tpe({0: 0.20, 1: 0.21, 2: 0.22}, {0: 0.25, 1: 0.27})
    text = summary_markdown(summary, metrics=("recall@20",))
    assert "| es | 3 | 0.8000 | 0.2100 [" in text
    assert "| tpe | 2 | 0.8000 | 0.2600 | +0.0550 (paired on 2 seeds) | 1.00 |" in text
    assert "Cells without an interval give the mean only" in text
    assert "intervals need >= 3 seeds; got 2." in text


def test_summary_markdown_has_one_table_per_budget_and_marks_significant_gains() -> None:
    text = summary_markdown(summarize(_table(), n_resamples=2000))
    assert text.count("### Budget") == 2
    assert "### Budget 80 % pruned" in text
    assert "| rw-td3 | 4 | 0.8500 | 0.2115 [" in text
    assert "+0.0100 [+0.0100, +0.0100] *" in text
    assert "paired on" not in text  # every agent ran the baseline's seeds
    assert "| rw-td3 | 0/4 |" in text
    assert "| es | 4 | 0.8000 | 0.2015 [" in text
    assert "| (baseline) | — |" in text


def test_summarize_names_missing_columns() -> None:
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['ndcg@20'\]"):
        summarize(pd.DataFrame({"agent": ["es"], "budget": [0.8], "recall@20": [0.2]}))


def test_write_report_writes_the_summary_and_an_error_bar_plot(tmp_path) -> None:
    from agents.experiments.stats import write_report

    fig_summary = write_report(_table(), tmp_path, title="toy")
    assert (tmp_path / "summary.md").read_text().startswith("# toy\n\n### Budget 80 % pruned")
    assert len(pd.read_csv(tmp_path / "summary.csv")) == len(fig_summary) == 4
    assert (tmp_path / "quality_vs_memory.png").stat().st_size > 0


def test_the_plot_draws_the_interval_as_error_bars() -> None:
    from agents.experiments.plots import plot_quality_vs_memory

    summary = summarize(_table(), n_resamples=500)
    fig = plot_quality_vs_memory(summary)
    bars = [c for c in fig.axes[0].containers if c.has_yerr]
    assert len(bars) == 2  # es and rw-td3
    segments = bars[0].lines[2][0].get_segments()  # es: one vertical bar per budget
    lows = sorted(round(seg[0][1], 6) for seg in segments)
    expected = summary[summary["agent"] == "es"]["recall@20_low"].round(6).sort_values()
    assert lows == list(expected)
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_a_seed_that_missed_the_budget_is_not_a_pair() -> None:
    """Seed 1 of the agent reached no mask: the difference pairs seeds 0 and 2 and says so."""
    es = {0: 0.22, 1: 0.20, 2: 0.18}
    agent = {0: 0.23, 1: math.nan, 2: 0.20}
    summary = _es_vs_tpe(es, agent)
    row = summary.set_index("agent").loc["tpe"]
    assert (row["recall@20_pairs"], row["recall@20_n"], row["reached"]) == (2, 2, 2)
    assert row["recall@20_diff"] == pytest.approx(0.015)  # (0.01 + 0.02) / 2, not vs 0.20
    text = summary_markdown(summary, metrics=("recall@20",))
    assert "(paired on 2 seeds)" in text


def test_without_a_seed_in_common_the_difference_is_unpaired_and_marked() -> None:
    table = pd.DataFrame(
        [{"agent": "es", "seed": s, "budget": 0.8, "sparsity": 0.8, "recall@20": 0.2 + s / 100}
         for s in (0, 1)]
        + [{"agent": "tpe", "seed": s, "budget": 0.8, "sparsity": 0.8, "recall@20": 0.25}
           for s in (5, 6)]
    )  # fmt: skip
    summary = summarize(table, metrics=("recall@20",), n_resamples=500)
    row = summary.set_index("agent").loc["tpe"]
    assert row["recall@20_pairs"] == 0
    assert row["recall@20_diff"] == pytest.approx(0.25 - 0.205)
    assert "(unpaired)" in summary_markdown(summary, metrics=("recall@20",))


def test_interval_format_is_the_one_way_reports_write_an_interval() -> None:
    assert Interval(0.01234, 0.00512, 0.0201).format("+.4f", star=True) == (
        "+0.0123 [+0.0051, +0.0201] *"
    )
    assert Interval(0.01, -0.002, 0.02).format("+.1%", star=True) == "+1.0% [-0.2%, +2.0%]"
    assert Interval(0.2, math.nan, math.nan).format() == "0.2000"  # one seed: no interval
    assert Interval(math.nan, math.nan, math.nan).format(missing="not reached") == "not reached"
