"""Seeds and intervals: what a comparison of agents reports per agent × budget.

One seed says little about an RL search: the agent, the per-step training and the final
retraining are all random. Every comparison here therefore runs several seeds and reports, per
agent and budget,

* the mean over seeds and a 95 % percentile-bootstrap confidence interval of that mean;
* the **probability of improvement** over a baseline (ES by default): the chance that a random
  seed of the agent scores higher than a random seed of the baseline, ``P(X > Y) + ½·P(X = Y)``
  (the Mann–Whitney statistic divided by ``n·m``; Agarwal et al., "Deep RL at the edge of the
  statistical precipice", NeurIPS 2021, as rliable reports it), with its own bootstrap interval;
* the mean difference to the baseline with a bootstrap interval, paired by seed when both sides
  ran the same seeds (the seed fixes the final retraining, so paired is the sharper test).

Why not rliable itself: its only release on PyPI is a source archive that pins ``arch`` and pulls
seaborn and absl-py for three small formulas; scipy (already a dependency) has the bootstrap.

The bootstrap is seeded (``seed=``), so the same table always gives the same intervals. With 3
seeds a percentile interval is narrow and under-covers; it is still the honest summary of what
was run, and the table says how many seeds each cell has. Below :data:`MIN_SEEDS` seeds there is
no interval at all: two values resample to only three distinct means, so their "95 %" interval
is the range of the two and a ``*`` from it means nothing. The mean is still given, and the
table says why its interval is missing.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as _sps

from ciess_env.errors import InvalidArgumentError, NonFiniteError

__all__ = [
    "METRICS",
    "MIN_SEEDS",
    "Interval",
    "bootstrap_ci",
    "difference_ci",
    "probability_of_improvement",
    "probability_of_improvement_ci",
    "summarize",
    "summary_markdown",
    "write_report",
]

#: The test metrics a comparison summarises by default (the paper's Table 1 columns).
METRICS: tuple[str, ...] = ("recall@20", "ndcg@20")

#: Fewest values (seeds) an interval, a ``*`` mark or a probability-of-improvement interval is
#: computed from; fewer give the estimate alone.
MIN_SEEDS = 3

_N_RESAMPLES = 10_000
# scipy 1.15 renamed bootstrap's `random_state` to `rng` (SPEC 7) and deprecates the old name.
_RNG_ARG = "rng" if "rng" in inspect.signature(_sps.bootstrap).parameters else "random_state"


@dataclass(frozen=True)
class Interval:
    """A point estimate and its confidence interval ``[low, high]`` (NaN where undefined)."""

    estimate: float
    low: float
    high: float

    def __iter__(self):
        return iter((self.estimate, self.low, self.high))

    def excludes(self, value: float) -> bool:
        """Whether ``value`` lies outside the interval (False when the interval is undefined)."""
        return not math.isnan(self.low) and (value < self.low or value > self.high)

    def format(self, spec: str = ".4f", *, star: bool = False, missing: str = "—") -> str:
        """``estimate [low, high]`` with the format ``spec`` (e.g. ``"+.4f"``, ``"+.1%"``).

        The one way every report writes an interval: just the estimate when the interval is
        undefined (one seed), ``missing`` when there is no estimate, and with ``star`` a trailing
        `` *`` when the interval excludes 0.
        """
        if math.isnan(self.estimate):
            return missing
        if math.isnan(self.low):
            return format(self.estimate, spec)
        mark = " *" if star and self.excludes(0.0) else ""
        return f"{self.estimate:{spec}} [{self.low:{spec}}, {self.high:{spec}}]{mark}"


def _clean(values: Sequence[float] | np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64).ravel()
    if np.isinf(x).any():
        msg = f"`{name}` must be finite (NaN marks a missing seed), got {x.tolist()}."
        raise NonFiniteError(msg)
    return x[~np.isnan(x)]


def _check_level(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        msg = f"`confidence` must be in (0, 1), e.g. 0.95; got {confidence!r}."
        raise InvalidArgumentError(msg)


def _percentile_bootstrap(
    samples: tuple[np.ndarray, ...], statistic, *, paired: bool, confidence: float,
    n_resamples: int, seed: int,
) -> tuple[float, float]:  # fmt: skip
    """The percentile bootstrap of scipy over the given samples; returns (low, high)."""
    res = _sps.bootstrap(
        samples, statistic, n_resamples=n_resamples, confidence_level=confidence,
        method="percentile", paired=paired, vectorized=True,
        **{_RNG_ARG: np.random.default_rng(seed)},
    )  # fmt: skip
    low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
    return low, high


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    *,
    confidence: float = 0.95,
    n_resamples: int = _N_RESAMPLES,
    seed: int = 0,
) -> Interval:
    """Mean of ``values`` and a percentile-bootstrap confidence interval of the mean.

    NaNs (a seed that never reached the budget) are dropped. No value gives all NaN; fewer than
    :data:`MIN_SEEDS` values give the mean with an undefined (NaN) interval; equal values give a
    zero-width interval.

    Args:
        values: One number per seed.
        confidence: Coverage of the interval (default 95 %).
        n_resamples: Bootstrap resamples.
        seed: Seed of the resampling, so that a table's intervals are reproducible.
    """
    _check_level(confidence)
    x = _clean(values, "values")
    if x.size == 0:
        return Interval(math.nan, math.nan, math.nan)
    mean = float(x.mean())
    if x.size < MIN_SEEDS:
        return Interval(mean, math.nan, math.nan)
    if np.ptp(x) == 0:
        return Interval(float(x[0]), float(x[0]), float(x[0]))  # exact, no rounding of a mean
    low, high = _percentile_bootstrap(
        (x,), lambda s, axis: s.mean(axis=axis), paired=False, confidence=confidence,
        n_resamples=n_resamples, seed=seed,
    )  # fmt: skip
    return Interval(mean, low, high)


def _poi(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """``P(X > Y) + ½ P(X = Y)`` over all pairs, vectorised over leading resample axes."""
    x = np.moveaxis(np.asarray(x), axis, -1)[..., :, None]
    y = np.moveaxis(np.asarray(y), axis, -1)[..., None, :]
    return ((x > y) + 0.5 * (x == y)).mean(axis=(-2, -1))


def probability_of_improvement(
    x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray
) -> float:
    """Probability that a random run of ``x`` scores higher than a random run of ``y``.

    Ties count one half, so two identical samples give 0.5. NaNs are dropped; NaN if a side is
    empty.
    """
    a, b = _clean(x, "x"), _clean(y, "y")
    if a.size == 0 or b.size == 0:
        return math.nan
    return float(_poi(a, b))


def probability_of_improvement_ci(
    x: Sequence[float] | np.ndarray,
    y: Sequence[float] | np.ndarray,
    *,
    confidence: float = 0.95,
    n_resamples: int = _N_RESAMPLES,
    seed: int = 0,
) -> Interval:
    """:func:`probability_of_improvement` with a bootstrap interval (each side resampled).

    The interval is undefined (NaN) when a side has fewer than :data:`MIN_SEEDS` values.
    """
    _check_level(confidence)
    a, b = _clean(x, "x"), _clean(y, "y")
    p = probability_of_improvement(a, b)
    if math.isnan(p) or min(a.size, b.size) < MIN_SEEDS:
        return Interval(p, math.nan, math.nan)
    if np.ptp(np.r_[a, b]) == 0:
        return Interval(p, p, p)
    low, high = _percentile_bootstrap(
        (a, b), _poi, paired=False, confidence=confidence, n_resamples=n_resamples, seed=seed
    )
    return Interval(p, low, high)


def difference_ci(
    x: Sequence[float] | np.ndarray,
    y: Sequence[float] | np.ndarray,
    *,
    paired: bool = False,
    confidence: float = 0.95,
    n_resamples: int = _N_RESAMPLES,
    seed: int = 0,
) -> Interval:
    """``mean(x) − mean(y)`` with a bootstrap interval.

    Args:
        x: The agent's values, one per seed.
        y: The baseline's values.
        paired: ``x[i]`` and ``y[i]`` share seed ``i``: resample the per-seed differences
            (NaN pairs dropped). Otherwise both sides are resampled independently. Either way
            the interval is undefined (NaN) below :data:`MIN_SEEDS` pairs or values a side.
        confidence: Coverage of the interval.
        n_resamples: Bootstrap resamples.
        seed: Seed of the resampling.
    """
    _check_level(confidence)
    if paired:
        a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        if a.shape != b.shape:
            msg = f"paired samples need equal lengths, got {a.size} and {b.size}."
            raise InvalidArgumentError(msg)
        return bootstrap_ci(a - b, confidence=confidence, n_resamples=n_resamples, seed=seed)
    a, b = _clean(x, "x"), _clean(y, "y")
    if a.size == 0 or b.size == 0:
        return Interval(math.nan, math.nan, math.nan)
    diff = float(a.mean() - b.mean())
    if min(a.size, b.size) < MIN_SEEDS:
        return Interval(diff, math.nan, math.nan)
    if np.ptp(a) == 0 and np.ptp(b) == 0:
        return Interval(diff, diff, diff)
    low, high = _percentile_bootstrap(
        (a, b), lambda s, t, axis: s.mean(axis=axis) - t.mean(axis=axis), paired=False,
        confidence=confidence, n_resamples=n_resamples, seed=seed,
    )  # fmt: skip
    return Interval(diff, low, high)


def summarize(
    table: pd.DataFrame,
    *,
    metrics: Sequence[str] = METRICS,
    baseline: str | None = "es",
    confidence: float = 0.95,
    n_resamples: int = _N_RESAMPLES,
    seed: int = 0,
) -> pd.DataFrame:
    """Per agent × budget: seeds, mean sparsity, each metric's mean and CI, and vs the baseline.

    Args:
        table: One row per (agent, budget, seed), as :func:`~agents.experiments.compare`
            returns; without a ``seed`` column every row counts as its own seed.
        metrics: Columns to summarise.
        baseline: Agent compared against (probability of improvement and mean difference per
            metric); None or absent: no comparison.
        confidence: Coverage of every interval.
        n_resamples: Bootstrap resamples per interval.
        seed: Seed of the resampling.

    Returns:
        One row per (agent, budget) in the table's order, with columns ``agent``, ``budget``,
        ``seeds`` (rows), ``reached`` (seeds with a result), ``sparsity``, and per metric ``m``:
        ``m``, ``m_low``, ``m_high``, ``m_n`` (seeds with a value); with a baseline also
        ``m_pairs`` (seeds where both sides
        have a value of ``m``; 0: the difference is unpaired), ``m_diff``, ``m_diff_low``,
        ``m_diff_high``, ``m_p_improve``, ``m_p_improve_low``, ``m_p_improve_high``.

    The difference to the baseline is paired over the seeds where both sides have a value, also
    when one side ran more seeds (a partial study) or missed the budget on some: the seed fixes
    the final retraining, so comparing seed ``s`` with seed ``s`` removes the retraining's noise
    that a difference of means over unequal seed sets keeps. Without a seed in common (or a
    ``seed`` column) the two samples are compared unpaired. The probability of improvement uses
    every value of both sides (it is defined unpaired).
    """
    missing = [c for c in ("agent", "budget", *metrics) if c not in table.columns]
    if missing:
        msg = f"the table lacks column(s) {missing}; it has {list(table.columns)}."
        raise InvalidArgumentError(msg)
    kw = dict(confidence=confidence, n_resamples=n_resamples, seed=seed)
    has_seed = "seed" in table.columns
    base = None
    if baseline is not None and baseline in set(table["agent"]):
        base = table[table["agent"] == baseline]
    rows = []
    for (agent, budget), grp in table.groupby(["agent", "budget"], sort=False):
        first = grp[metrics[0]] if metrics else grp["budget"]
        row: dict[str, object] = {
            "agent": agent,
            "budget": budget,
            "seeds": len(grp),
            "reached": int(first.notna().sum()),
            "sparsity": float(grp["sparsity"].mean()) if "sparsity" in grp else math.nan,
        }
        ref = None
        if base is not None and agent != baseline:
            ref = base[np.isclose(base["budget"], budget)]
        for m in metrics:
            row[m], row[f"{m}_low"], row[f"{m}_high"] = bootstrap_ci(grp[m], **kw)
            row[f"{m}_n"] = int(grp[m].notna().sum())
            if base is None:
                continue
            if ref is None:  # the baseline itself: nothing to compare
                diff = poi = Interval(math.nan, math.nan, math.nan)
                pairs = 0
            else:
                x, y = grp[m].to_numpy(), ref[m].to_numpy()
                joined = None
                if has_seed:
                    joined = grp.merge(ref, on="seed", suffixes=("", "_ref"))
                    joined = joined[joined[[m, f"{m}_ref"]].notna().all(axis=1)]
                pairs = 0 if joined is None else len(joined)
                if pairs:  # paired over the seeds both have, even if one side has more
                    xj, yj = joined[m].to_numpy(), joined[f"{m}_ref"].to_numpy()
                    diff = difference_ci(xj, yj, paired=True, **kw)
                elif has_seed and len(grp.merge(ref, on="seed")):
                    diff = Interval(math.nan, math.nan, math.nan)  # common seeds, none reached
                else:  # no seed in common: the two samples are independent
                    diff = difference_ci(x, y, **kw)
                poi = probability_of_improvement_ci(x, y, **kw)
            row[f"{m}_pairs"] = pairs
            row[f"{m}_diff"], row[f"{m}_diff_low"], row[f"{m}_diff_high"] = diff
            row[f"{m}_p_improve"], row[f"{m}_p_improve_low"], row[f"{m}_p_improve_high"] = poi
        rows.append(row)
    return pd.DataFrame(rows)


def _interval(row: pd.Series, col: str) -> Interval:
    return Interval(float(row[col]), float(row[f"{col}_low"]), float(row[f"{col}_high"]))


def _pairing_note(row: pd.Series, m: str, base: pd.Series | None) -> str:
    """`` (paired on n seeds)`` when fewer seeds pair than either side has; `` (unpaired)``."""
    if math.isnan(row[f"{m}_diff"]):
        return ""
    pairs = int(row[f"{m}_pairs"])
    if pairs == 0:
        return " (unpaired)"
    have = max(int(row[f"{m}_n"]), 0 if base is None else int(base[f"{m}_n"]))
    return f" (paired on {pairs} seed{'s' * (pairs > 1)})" if pairs < have else ""


def _too_few_seeds(summary: pd.DataFrame, metrics: Sequence[str], has_base: bool) -> list[int]:
    """The seed counts (below :data:`MIN_SEEDS`) behind the table's cells that have no interval."""
    counts: set[int] = set()
    for _, row in summary.iterrows():
        for m in metrics:
            n = int(row[f"{m}_n"])
            if 0 < n < MIN_SEEDS:
                counts.add(n)
            if has_base and not math.isnan(row[f"{m}_diff"]) and math.isnan(row[f"{m}_diff_low"]):
                pairs = int(row[f"{m}_pairs"])
                if 0 < pairs < MIN_SEEDS:
                    counts.add(pairs)
    return sorted(counts)


def _has_interval(summary: pd.DataFrame) -> bool:
    """Whether any cell of the summary has a defined interval."""
    lows = [c for c in summary.columns if c.endswith("_low")]
    return bool(summary[lows].notna().to_numpy().any()) if lows else False


def summary_markdown(
    summary: pd.DataFrame, *, metrics: Sequence[str] = METRICS, baseline: str | None = "es"
) -> str:
    """One markdown table per budget: each agent's mean [95 % CI] and how it fares vs ES.

    A difference whose interval excludes zero is marked with ``*``. Cells from fewer than
    :data:`MIN_SEEDS` seeds give the mean alone, and the note under the tables says so.
    """
    has_base = baseline is not None and f"{metrics[0]}_diff" in summary.columns
    ci = " [CI]" if _has_interval(summary) else ""
    base_rows = summary[summary["agent"] == baseline]
    base_n = {c: r for c, (_, r) in zip(base_rows["budget"], base_rows.iterrows(), strict=True)}
    out: list[str] = []
    for budget, grp in summary.groupby("budget", sort=True):
        headers = ["agent", "seeds", "sparsity", *(f"{m} mean{ci}" for m in metrics)]
        if has_base:
            for m in metrics:
                headers += [f"{m} − {baseline}{ci}", f"P({m} > {baseline}){ci}"]
        lines = [
            f"### Budget {100 * float(budget):g} % pruned",
            "",
            "| " + " | ".join(headers) + " |",
            "|" + "---|" * len(headers),
        ]
        for _, row in grp.iterrows():
            seeds = f"{row['reached']}/{row['seeds']}" if row["reached"] != row["seeds"] else ""
            sparsity = Interval(float(row["sparsity"]), math.nan, math.nan).format()
            cells = [str(row["agent"]), seeds or str(row["seeds"]), sparsity]
            cells += [_interval(row, m).format() for m in metrics]
            if has_base and row["agent"] == baseline:
                cells += ["(baseline)", "—"] * len(metrics)
            elif has_base:
                for m in metrics:
                    diff = _interval(row, f"{m}_diff")
                    cells += [
                        diff.format("+.4f", star=True) + _pairing_note(row, m, base_n.get(budget)),
                        _interval(row, f"{m}_p_improve").format(".2f"),
                    ]
            lines.append("| " + " | ".join(cells) + " |")
        out += [*lines, ""]
    few = _too_few_seeds(summary, metrics, has_base)
    if few:
        which = (
            "Means only (no 95 % interval, `*` mark or P(·) interval)"
            if not ci
            else "Cells without an interval give the mean only (no `*`, no P(·) interval)"
        )
        out += [
            f"{which}: intervals need >= {MIN_SEEDS} seeds; got {' or '.join(map(str, few))}.",
            "",
        ]
    out.append(
        ("Mean over seeds [95 % percentile-bootstrap interval]" if ci else "Mean over seeds")
        + "; seeds = runs (reached/runs when some runs met no budget). "
        + (
            f"`*`: the interval of the difference to {baseline} excludes 0 (paired by seed, "
            "over the seeds where both have a value, unless marked unpaired). "
            f"P(· > {baseline}): probability that a random seed beats a random {baseline} seed."
            if has_base
            else ""
        )
    )
    return "\n".join(out).rstrip() + "\n"


def write_report(
    table: pd.DataFrame,
    out: str | Path,
    *,
    metrics: Sequence[str] = METRICS,
    baseline: str | None = "es",
    title: str = "",
    seed: int = 0,
) -> pd.DataFrame:
    """Write ``summary.csv``, ``summary.md`` and the error-bar plot of a multi-seed table.

    The one report of ``compare``, ``ciess compare`` and ``ciess sweep --report``.

    Returns:
        The :func:`summarize` frame.
    """
    from agents.experiments.plots import plot_quality_vs_memory

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize(table, metrics=metrics, baseline=baseline, seed=seed)
    summary.to_csv(out / "summary.csv", index=False)
    text = summary_markdown(summary, metrics=metrics, baseline=baseline)
    (out / "summary.md").write_text((f"# {title}\n\n" if title else "") + text)
    import matplotlib.pyplot as plt

    plt.close(plot_quality_vs_memory(summary, out / "quality_vs_memory.png"))  # saved: release it
    return summary
