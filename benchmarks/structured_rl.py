r"""Do SAC and PPO learn on the structured action? Reward curves and final test R@20 (issue 33).

SAC and PPO from SB3 on :class:`~ciess_env.structured_action.StructuredAction`
(``sac-structured``, ``ppo-structured``: :mod:`agents.structured_rl`) against structured TPE
(the same four-number family searched by Optuna), ES and RW-TD3, each one search of
``--episodes`` × 10 env steps per budget, then the same top-3 selective retraining and final
retraining as every agent. The units are :mod:`budget_agents`'s (one per seed × agent × budget,
one JSONL line each as it finishes, so the study resumes where it stopped; one torch thread; the
load average recorded per unit), which also keep each search's per-step curve. This script adds
the learning curves: per agent and budget, the mean reward of each episode, mean over seeds
with its 95 % bootstrap band (``<out>_curves.png``), and a table of the first against the last
episode, paired by seed, appended to ``<out>.md``.

Run (from the repository root; ``--report`` only redraws from the JSONL)::

    CIESS_DATA_DIR=../shared/data python benchmarks/structured_rl.py            # ML-100K
    python benchmarks/structured_rl.py --env-id CIESS-LightGCN-Synthetic-v1 \
        --budgets 0.9 --episodes 8 --agents sac-structured ppo-structured \
        --out benchmarks/results/structured_rl_synthetic

Every other option is :mod:`budget_agents`'s (``--seeds``, ``--agents``, ``--top-l``...); an
option given on the command line replaces its default below.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from jsonl_cache import read_units
from report import md_table

#: The study's defaults, given to budget_agents before the command line's own options.
DEFAULTS = [
    "--env-id", "CIESS-LightGCN-ML100K-v1",
    "--env-kw", "",
    "--seeds", "0", "1", "2",
    "--episodes", "3",
    "--agents", "es", "sac-structured", "ppo-structured", "structured-tpe",
    "--out", "benchmarks/results/structured_rl_ml100k_v1",
]  # fmt: skip


def curves(units: list[dict]) -> pd.DataFrame:
    """Per (agent, seed, budget, episode): the mean reward and q̄ of the episode's steps.

    Units without a curve (heuristics) are skipped; a search for all budgets at once (budget
    NaN in its curve) is kept under each budget of its rows.
    """
    parts = []
    for u in units:
        if not u.get("curve"):
            continue
        steps = pd.DataFrame(u["curve"]).assign(agent=u["agent"], seed=u["seed"])
        if steps["budget"].isna().all():
            budgets = sorted({r["budget"] for r in u["rows"]})
            steps = pd.concat([steps.assign(budget=c) for c in budgets], ignore_index=True)
        parts.append(steps)
    if not parts:
        columns = ["agent", "seed", "budget", "episode", "reward", "mean_quality"]
        return pd.DataFrame(columns=columns)
    steps = pd.concat(parts, ignore_index=True)
    steps = steps.drop_duplicates(["agent", "seed", "budget", "episode", "step"], keep="first")
    keys = ["agent", "seed", "budget", "episode"]
    return steps.groupby(keys, as_index=False)[["reward", "mean_quality"]].mean()


def step_curves(units: list[dict]) -> pd.DataFrame:
    """Per (agent, seed, budget, step): q̄ and reward of each env step, steps counted from 0.

    For one-episode searches (TPE's 10 steps per budget), where a per-episode curve is a single
    point. ``step`` is the step's index in the whole search (``episode · T + step − 1``).
    """
    parts = []
    for u in units:
        if not u.get("curve"):
            continue
        steps = pd.DataFrame(u["curve"]).assign(agent=u["agent"], seed=u["seed"])
        steps["step"] = steps["episode"] * steps["step"].max() + steps["step"] - 1
        parts.append(steps[steps["budget"].notna()])
    columns = ["agent", "seed", "budget", "step", "reward", "mean_quality"]
    if not parts:
        return pd.DataFrame(columns=columns)
    frame = pd.concat(parts, ignore_index=True)[columns]
    return frame.drop_duplicates(["agent", "seed", "budget", "step"], keep="first")


def window_rise_table(
    frame: pd.DataFrame,
    windows: dict[str, list[int]],
    column: str = "mean_quality",
) -> list[str]:
    """Per agent × budget: ``column``'s mean over three windows of steps, and differences.

    ``windows`` names three windows in order, e.g. the warm start (steps 0–1, ES and MDE), the
    policy's first steps and its last steps; the table gives the last window minus each of
    the first two, paired by seed. A curve rises when the last window is above the policy's
    first.
    """
    from agents.experiments.stats import bootstrap_ci, difference_ci

    (warm_name, warm), (early_name, early), (late_name, late) = windows.items()
    rows = []
    for (agent, c), grp in frame.groupby(["agent", "budget"], sort=False):
        wide = grp.pivot_table(index="seed", columns="step", values=column)
        if not set(warm + early + late) <= set(wide.columns):
            continue
        means = [wide[w].mean(axis=1).to_numpy() for w in (warm, early, late)]
        rows.append([
            agent, f"{100 * c:g} %", str(wide.shape[0]),
            *(bootstrap_ci(m).format(".4f", missing="—") for m in means),
            difference_ci(means[2], means[1], paired=True).format("+.4f", star=True, missing="—"),
            difference_ci(means[2], means[0], paired=True).format("+.4f", star=True, missing="—"),
        ])  # fmt: skip
    head = ["agent", "budget", "seeds", warm_name, early_name, late_name,
            f"{late_name} − {early_name}", f"{late_name} − {warm_name}"]  # fmt: skip
    return md_table(head, rows)


def _band(values: np.ndarray) -> tuple[float, float, float]:
    from agents.experiments.stats import bootstrap_ci

    iv = bootstrap_ci(values)
    return iv.estimate, iv.low, iv.high


def plot(
    frame: pd.DataFrame, path: Path, *, title: str, column: str = "reward", x: str = "episode"
) -> None:
    """One panel per budget: per agent the mean ``column`` per ``x`` over seeds, 95 % band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    budgets = sorted(frame["budget"].unique())
    width = max(5.0, 4.2 * len(budgets))
    fig, axes = plt.subplots(1, len(budgets), figsize=(width, 3.6), squeeze=False)
    for ax, c in zip(axes[0], budgets, strict=True):
        for agent, rows in frame[frame["budget"] == c].groupby("agent", sort=False):
            wide = rows.pivot_table(index=x, columns="seed", values=column)
            stats = np.array([_band(wide.loc[e].to_numpy()) for e in wide.index])
            label = f"{agent} ({wide.shape[1]})"
            (line,) = ax.plot(wide.index, stats[:, 0], marker=".", label=label)
            if np.isfinite(stats[:, 1]).any():
                ax.fill_between(wide.index, stats[:, 1], stats[:, 2], alpha=0.2,
                                color=line.get_color())  # fmt: skip
        ax.set_title(f"{100 * c:g} % pruned")
        ax.set_xlabel("episode (10 env steps)" if x == "episode" else "env step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(f"mean {column} per {x}")
    axes[0][-1].legend(fontsize=7)
    fig.suptitle(f"{title}\nmean over seeds, 95 % bootstrap band (seeds)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def rise_table(frame: pd.DataFrame, column: str = "reward") -> list[str]:
    """Per agent × budget: first and last episode's mean reward and their paired differences.

    Also against episode 1: SAC's episode 0 is its uniform warm-up (``learning_starts`` = one
    episode), so episode 0 is the family's random-search level and episode 1 the policy's first.
    """
    from agents.experiments.stats import bootstrap_ci, difference_ci

    rows = []
    for (agent, c), grp in frame.groupby(["agent", "budget"], sort=False):
        wide = grp.pivot_table(index="seed", columns="episode", values=column)
        if wide.shape[1] < 2:
            continue
        first, last = wide.iloc[:, 0].to_numpy(), wide.iloc[:, -1].to_numpy()
        second = wide.iloc[:, 1].to_numpy()  # SAC's first policy episode (0 is uniform)
        rows.append([
            agent, f"{100 * c:g} %", str(wide.shape[0]), str(int(wide.columns[-1]) + 1),
            bootstrap_ci(first).format(".4f", missing="—"),
            bootstrap_ci(last).format(".4f", missing="—"),
            difference_ci(last, first, paired=True).format("+.4f", star=True, missing="—"),
            difference_ci(last, second, paired=True).format("+.4f", star=True, missing="—"),
        ])  # fmt: skip
    head = ["agent", "budget", "seeds", "episodes", "episode 0", "last episode",
            "last − episode 0", "last − episode 1"]  # fmt: skip
    return md_table(head, rows)


#: The step windows of a 10-step search compared in the rise table (the warm start, the
#: policy's first three steps, the last three).
STEP_WINDOWS = {"steps 0–1": [0, 1], "steps 2–4": [2, 3, 4], "steps 7–9": [7, 8, 9]}


def _step_section(steps: pd.DataFrame, png: str) -> list[str]:
    return [
        "",
        "## Learning curves",
        "",
        f"![q̄ per env step]({png})",
        "",
        "One search episode of 10 env steps per budget, so the curve is over steps: q̄ (the "
        "mean quality ratio, each step's validation score of a freshly trained model, the "
        "reward `sac-structured` learns from) of each env step, mean over seeds [95 % "
        "bootstrap interval]; differences paired by seed, `*` where the interval excludes 0. "
        "With `sac-structured`'s `warm_start` (its default since issue 33's second session), "
        "steps 0–1 are ES then MDE, the two masks structured TPE also tries first, and from "
        "step 2 the policy acts, updated after every step (before that default, steps 0–9 "
        "were all uniform warm-up).",
        "",
        *window_rise_table(steps, STEP_WINDOWS),
        "",
    ]


#: Env id → (the study holding structured TPE's cells, the agent): the reference the issue
#: asks SAC to reach ("TPE's test R@20 within its interval, with at most its env steps").
REFERENCE = {
    "CIESS-LightGCN-ML100K-v1": ("budget_agents_ml100k_v1", "structured-tpe"),
    "CIESS-LightGCN-ML1M-v1": ("budget_agents_ml1m_v1", "structured-tpe"),
}


def reference_table(units: list[dict], reference: pd.DataFrame, ref_agent: str) -> list[str]:
    """Per budget and searching agent: its mean test R@20 against the reference agent's.

    ``reference``: rows (agent, seed, budget, recall@20) of the reference study. Says whether
    the agent's mean lies inside the reference's 95 % interval, and the paired difference.
    """
    from agents.experiments.stats import bootstrap_ci, difference_ci

    searches = [u for u in units if u.get("curve") and u["agent"] != ref_agent]
    ours = pd.DataFrame([r for u in searches for r in u["rows"]])
    ref = reference[reference["agent"] == ref_agent]
    if ours.empty or ref.empty:
        return []
    ours = ours.drop_duplicates(["agent", "seed", "budget"], keep="first")
    rows = []
    for (agent, c), grp in ours.groupby(["agent", "budget"]):
        theirs = ref[ref["budget"] == c].set_index("seed")["recall@20"]
        mine = grp.set_index("seed")["recall@20"]
        seeds = sorted(set(mine.index) & set(theirs.index))
        if not seeds:
            continue
        ref_iv, our_iv = bootstrap_ci(theirs.to_numpy()), bootstrap_ci(mine.to_numpy())
        inside = "—" if math.isnan(ref_iv.low) else (
            "yes" if ref_iv.low <= our_iv.estimate <= ref_iv.high else
            ("above" if our_iv.estimate > ref_iv.high else "below"))  # fmt: skip
        diff = difference_ci(mine[seeds].to_numpy(), theirs[seeds].to_numpy(), paired=True)
        rows.append([
            agent, f"{100 * c:g} %", str(len(seeds)), our_iv.format(".4f", missing="—"),
            ref_iv.format(".4f", missing="—"), inside, diff.format("+.4f", star=True, missing="—"),
        ])  # fmt: skip
    head = ["agent", "budget", "seeds", "test R@20", f"{ref_agent} test R@20",
            f"mean inside {ref_agent}'s interval", f"− {ref_agent} (paired)"]  # fmt: skip
    return md_table(head, rows)


def _reference_section(units: list[dict], env_id: str, results: Path) -> list[str]:
    if env_id not in REFERENCE:
        return []
    from beats_es import _study_units, budget_agents_rows

    stem, agent = REFERENCE[env_id]
    try:
        reference = budget_agents_rows(_study_units(results, stem))
    except FileNotFoundError:
        return []
    table = reference_table(units, reference, agent)
    if not table:
        return []
    return [
        "",
        f"## Against {agent}",
        "",
        f"Test R@20 of each search agent against `{agent}` (`{stem}`: the same env, seeds, "
        "search length per budget and top-3 selective + final retraining), mean over seeds "
        "[95 % bootstrap interval]; the difference is paired by seed, `*` where its interval "
        "excludes 0.",
        "",
        *table,
    ]


def with_defaults(given: list[str], defaults: list[str] = DEFAULTS) -> list[str]:
    """``given`` plus every default option it does not set (so the recorded command is short)."""
    options: dict[str, list[str]] = {}
    for token in defaults:
        if token.startswith("--"):
            key = token
            options[key] = []
        else:
            options[key].append(token)
    kept = [k for k in options if k not in given]
    return [tok for k in kept for tok in (k, *options[k])] + given


def _option(argv: list[str], name: str) -> str:
    """The last value given for ``name`` (argparse's rule: the last occurrence wins)."""
    return [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == name][-1]


def report(out: Path, env_id: str) -> None:
    """Add the curves (png) and the first-vs-last table to the study's markdown."""
    jsonl, md = out.with_suffix(".jsonl"), out.with_suffix(".md")
    units = read_units(jsonl)
    frame = curves(units)
    if frame.empty or not md.exists():
        return
    png = out.with_name(out.name + "_curves.png")
    text = md.read_text().split("\n## Learning curves", 1)[0].rstrip()
    reference = _reference_section(units, env_id, out.parent)
    if frame["episode"].max() == 0:  # one-episode searches: a curve over steps
        steps = step_curves(units)
        plot(steps, png, title=env_id, column="mean_quality", x="step")
        section = _step_section(steps, png.name)
        md.write_text(text + "\n" + "\n".join([*section[:-1], *reference, ""]))
        return
    plot(frame, png, title=env_id)
    section = [
        "",
        "## Learning curves",
        "",
        f"![reward per episode]({png.name})",
        "",
        "Mean env reward of each search episode (the env's reward, `q̄ − λ·mean((d/d_max)²)`, as "
        "the budget log records it, also for agents trained on q̄), mean over seeds [95 % "
        "bootstrap interval]; differences paired by seed, `*` where the interval excludes 0. "
        "With `sac-structured`'s `warm_start` (its default since issue 33's second session), "
        "SAC's episode 0 is ES, MDE, then 8 policy steps; before that default it was uniform "
        "sampling of the family (`learning_starts` = 10 steps). `last − episode 1` compares "
        "the last episode with the policy's own first full episode. One-budget agents search "
        "each budget on its own; RW-TD3 searches once for all budgets (its curve is repeated "
        "under each budget).",
        "",
        *rise_table(frame),
        *reference,
        "",
    ]
    md.write_text(text + "\n" + "\n".join(section))


def study_report(name: str, out: Path) -> Path:
    """Learning curves and the against-TPE table of a study's one-episode searches.

    For studies run through ``study.py`` (ML-1M on ``-v1``: ``budget_agents_ml1m_v1`` with its
    ``sac-structured`` variant), whose cells keep each search's per-step curve. The cells are
    read next to ``out`` (``<out's folder>/<name>/cells``), so a copy of ``results/`` reports on
    its own. Budgets where an agent has fewer seeds than its spec asks are labelled partial.
    """
    import study as studies

    st = studies.STUDIES[name]
    units = studies.units(st, out.parent / name)
    searches = [u for u in units if u.get("curve")]
    steps = step_curves(searches)
    if steps.empty:
        msg = f"{name} has no finished search cell with a curve in {out.parent / name}."
        raise SystemExit(msg)
    env_id = st.specs[0][0].base["env_id"]
    expected: dict[tuple[str, float], int] = {}
    for spec, label in st.specs:
        for cell in spec.cells():
            for c in cell.config["budgets"]:
                key = (label or cell.config["agent"], c)
                expected[key] = expected.get(key, 0) + 1
    done = steps.groupby(["agent", "budget"], sort=False)["seed"].nunique()
    coverage = [
        f"`{agent}` at {100 * c:g} %: {n} of {expected.get((agent, c), n)} seeds"
        + (" (partial)" if n < expected.get((agent, c), n) else "")
        for (agent, c), n in done.items()
    ]
    png = out.with_name(out.name + "_curves.png")
    plot(steps, png, title=env_id, column="mean_quality", x="step")
    command = (
        f"python benchmarks/structured_rl.py --study {name} --out benchmarks/results/{out.name}"
    )
    lines = [
        f"# Do the searches on the structured action learn? {env_id}",
        "",
        f"Command: `{command}` (reads the cells of `{name}`; run or resume them with "
        f"`{st.command} --sequential`).",
        "",
        "Searches with a per-step curve: " + "; ".join(coverage) + ". Every search is one "
        "episode of 10 env steps per budget, then top-3 selective and final retraining "
        f"(test numbers: [`{name}.md`]({name}.md)).",
        *_step_section(steps, png.name)[:-1],
        *_reference_section(units, env_id, out.parent),
        "",
    ]
    md = out.with_suffix(".md")
    md.write_text("\n".join(lines))
    return md


def main(argv: list[str] | None = None) -> int:
    given = list(sys.argv[1:] if argv is None else argv)
    if "--study" in given:
        import argparse

        p = argparse.ArgumentParser(description="learning curves of a study's searches")
        p.add_argument("--study", required=True)
        p.add_argument("--out", type=Path, required=True)
        args = p.parse_args(given)
        print(f"wrote {study_report(args.study, args.out)}")
        return 0
    import budget_agents

    args = with_defaults(given)
    code = budget_agents.main(args)
    report(Path(_option(args, "--out")), _option(args, "--env-id"))
    return code


if __name__ == "__main__":
    raise SystemExit(main())
