"""Figures of a search: the paper's Fig. 3 curves and chosen size against popularity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["plot_quality_vs_memory", "plot_search_curves", "plot_size_vs_popularity"]


def _plt():
    # pyplot picks the backend itself (inline in notebooks, Agg when headless or MPLBACKEND=Agg);
    # switching it here would silently stop later inline plots.
    import matplotlib.pyplot as plt

    return plt


def _finish(fig, path: str | Path | None, title: str = ""):
    """Title, tight layout and an optional PNG: the common end of every figure here."""
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig


def plot_search_curves(curve: pd.DataFrame, path: str | Path | None = None, *, title: str = ""):
    """Per-episode mean reward and mean user/item size (paper Fig. 3).

    Episodes are numbered as in the curve (and the budget log, and ``ciess search``'s table):
    from 0, on whole-number ticks.

    Args:
        curve: The per-step frame of :func:`agents.experiments.session.search_curve` (or
            several, with an ``agent`` column: one line per agent).
        path: Where to save the PNG, if given.
        title: Figure title.
    """
    plt = _plt()
    if "agent" not in curve.columns:
        curve = curve.assign(agent="agent")
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    for agent, rows in curve.groupby("agent", sort=False):
        per_ep = rows.groupby("episode").mean(numeric_only=True)
        axes[0].plot(per_ep.index, per_ep["reward"], marker=".", label=agent)
        axes[1].plot(per_ep.index, per_ep["mean_user_size"], marker=".", label=agent)
        axes[2].plot(per_ep.index, per_ep["mean_item_size"], marker=".", label=agent)
    from matplotlib.ticker import MaxNLocator

    for ax, label in zip(axes, ("mean reward", "mean user size", "mean item size"), strict=True):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("episode")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend()
    return _finish(fig, path, title)


def plot_size_vs_popularity(
    user_sizes: np.ndarray,
    item_sizes: np.ndarray,
    user_freq: np.ndarray,
    item_freq: np.ndarray,
    path: str | Path | None = None,
    *,
    title: str = "",
):
    """Scatter of chosen size against training frequency, users and items side by side."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), sharey=True)
    for ax, sizes, freq, label in (
        (axes[0], user_sizes, user_freq, "users"),
        (axes[1], item_sizes, item_freq, "items"),
    ):
        ax.scatter(np.maximum(freq, 1), sizes, s=4, alpha=0.4)
        ax.set_xscale("log")
        ax.set_xlabel(f"{label}: training interactions")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("embedding size")
    return _finish(fig, path, title)


def plot_quality_vs_memory(table: pd.DataFrame, path: str | Path | None = None):
    """Test Recall@20 against kept embedding parameters, one line per agent.

    Args:
        table: Rows with ``agent``, ``sparsity`` and ``recall@20`` (``Comparison.table``), or a
            multi-seed summary (:func:`agents.experiments.stats.summarize`): its
            ``recall@20_low``/``_high`` interval becomes error bars.
        path: Where to save the PNG, if given.
    """
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    has_ci = {"recall@20_low", "recall@20_high"} <= set(table.columns)
    for agent, rows in table.groupby("agent", sort=False):
        rows = rows.dropna(subset=["recall@20"])
        y = rows["recall@20"].to_numpy()
        yerr = None
        if has_ci:  # asymmetric bars; an undefined interval (one seed) draws none
            yerr = np.nan_to_num(
                np.stack([y - rows["recall@20_low"], rows["recall@20_high"] - y]), nan=0.0
            )
        x = 100 * (1 - rows["sparsity"])
        ax.errorbar(x, y, yerr=yerr, marker="o", capsize=3, label=agent)
    ax.set_xlabel("kept embedding parameters (%)")
    ax.set_ylabel("test Recall@20" + (" (mean, 95 % CI)" if has_ci else ""))
    ax.set_title("Quality against memory")
    ax.grid(alpha=0.3)
    ax.legend()
    return _finish(fig, path)
