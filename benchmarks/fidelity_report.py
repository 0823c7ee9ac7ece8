"""Tables and plot of ``fidelity_ground_truth.py`` (issue 14): JSONL caches in, markdown out.

Two files per data set: ``final_retraining_<data>.md`` (item 0: seed-to-seed spread of the final
score under each stopping rule) and ``fidelity_ground_truth_<data>.md`` (items 1, 2, 4: the
per-mask ground truth, each design's rank agreement with it and its cost, and a plot).
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import sys
from pathlib import Path

import numpy as np
import torch
from fidelity_rules import DEFAULT, FIXED, RESULTS, RULES, replay, rule_count
from report import md_table
from scipy.stats import kendalltau, spearmanr

#: Designs read off the probes' validation curves (every 50 batches): ``scratch`` and
#: ``scratch@K`` stop at a fixed count, ``converge:E/P`` replays "evaluate every E batches, stop
#: after P evaluations without improvement, report the best" (``-v1``'s step is converge:50/4;
#: the cheaper 50/2, 100/2, 50/1, 100/1 and the fixed 300 test whether stopping earlier alone,
#: at no other change, ranks as well — issue 29's cheapest lever, read off at no new cost).
CURVE_DESIGNS = ("scratch", "scratch@300", "scratch@500", "converge:50/4", "converge:50/2",
                 "converge:100/2", "converge:50/1", "converge:100/1")  # fmt: skip


def _budget_tag(c: float) -> str:
    return f"{round(c * 100)} %"


def _rule_r20(probe: dict, data, rule: str) -> float:
    """Test R@20 of one probe under a stopping rule (its train + validation count, replayed)."""
    n = rule_count(probe["history"], data, rule, 2000)[1]
    return {b: r20 for b, r20, _ in probe["test"]}[n]


def _seed_spread(probes: list[dict], data) -> list[dict]:
    by_mask: dict[str, list[dict]] = {}
    for r in probes:
        by_mask.setdefault(r["digest"], []).append(r)
    specs = [(label, label) for label in RULES] + [(f"fixed {n} on train + val", n) for n in FIXED]
    out = []
    for label, how in specs:
        spreads, scores, counts, cut = [], [], [], 0
        for runs in by_mask.values():
            if len(runs) < 2:
                continue
            vals = []
            for r in runs:
                test = {b: r20 for b, r20, _ in r["test"]}
                if isinstance(how, int):
                    n = how
                else:
                    _, n, stopped = rule_count(r["history"], data, how, 2000)
                    cut += not stopped
                vals.append(test[n])
                counts.append(n)
            scores += vals
            spreads += [abs(a - b) / ((a + b) / 2) for a, b in itertools.combinations(vals, 2)]
        if spreads:
            out.append({"rule": label, "mean": float(np.mean(scores)),
                        "spread": float(np.mean(spreads)), "max": float(np.max(spreads)),
                        "pairs": len(spreads), "batches": float(np.mean(counts)),
                        "cut": cut})  # fmt: skip
    return out


def _mean_of_k_spread(probes: list[dict], data, k: int) -> list[dict]:
    """Spread between two disjoint k-seed means of the same mask (the score of a k-seed rule).

    For a mask with 2k seeds or more, every split of 2k of them into two groups of k gives one
    pair (mean test R@20 of each group); the spread is as in :func:`_seed_spread`.
    """
    by_mask: dict[str, list[dict]] = {}
    for r in probes:
        by_mask.setdefault(r["digest"], []).append(r)
    out = []
    for label in RULES:
        spreads, masks = [], 0
        for runs in by_mask.values():
            runs = sorted(runs, key=lambda r: r["seed"])[: 2 * k]
            if len(runs) < 2 * k:
                continue
            masks += 1
            vals = [_rule_r20(r, data, label) for r in runs]
            for group in itertools.combinations(range(2 * k), k):
                if 0 not in group:  # each split once
                    continue
                a = np.mean([vals[i] for i in group])
                b = np.mean([vals[i] for i in range(2 * k) if i not in group])
                spreads.append(abs(a - b) / ((a + b) / 2))
        if spreads:
            out.append({"rule": label, "spread": float(np.mean(spreads)),
                        "max": float(np.max(spreads)), "pairs": len(spreads),
                        "masks": masks})  # fmt: skip
    return out


def ground_truth(probes: list[dict], data, rule: str = DEFAULT) -> dict[str, dict]:
    """Seed-0 ground truth per mask digest under ``rule``."""
    out = {}
    for r in probes:
        if r["seed"] != 0:
            continue
        best, n, _ = rule_count(r["history"], data, rule, 2000)
        h = {row[0]: row for row in r["history"]}[best]
        test = {b: (r20, n20) for b, r20, n20 in r["test"]}
        out[r["digest"]] = {"val_q": h[1], "val_r20": h[2], "test_r20": test[n][0],
                            "test_n20": test[n][1], "best": best, "final": n,
                            "probe": r}  # fmt: skip
    return out


def curve_design(probe: dict, design: str) -> tuple[float, float] | None:
    """(quality, seconds) of a design read off a probe's validation curve (None: not on it)."""
    hist = probe["history"]
    at = {row[0]: row for row in hist}
    if design.startswith("scratch"):  # "scratch" needs a full probe (to 2,000 batches)
        row = at.get(2000 if design == "scratch" else int(design.split("@")[1]))
        return None if row is None else (row[1], row[4] + row[5])
    every, patience = (int(x) for x in design.split(":")[1].split("/"))
    best, _ = replay(hist, every, patience, 2000)
    upto = [row for row in hist if row[0] <= best + patience * every]
    evals = sum(row[5] for row in upto if row[0] % every == 0)
    return at[best][1], upto[-1][4] + evals


def _fidelity(gt: dict, design_q: dict, masks) -> dict:
    rows = {"budgets": {}}
    allx, ally = [], []
    for c in sorted({m.budget for m in masks}):
        ds = [m.digest for m in masks if m.budget == c and m.digest in gt and m.digest in design_q]
        x = np.array([gt[d]["val_q"] for d in ds])
        y = np.array([design_q[d] for d in ds])
        allx += list(x)
        ally += list(y)
        if len(ds) < 3:
            continue
        order_y = np.argsort(-y)
        rows["budgets"][c] = {
            "n": len(ds), "rho": spearmanr(x, y).statistic, "tau": kendalltau(x, y).statistic,
            "top1": int(np.argmax(x) == order_y[0]), "top3": int(np.argmax(x) in order_y[:3]),
        }  # fmt: skip
    ds = [m.digest for m in masks if m.digest in gt and m.digest in design_q]
    if len(ds) >= 3:
        rows["rho_test"] = spearmanr([gt[d]["test_r20"] for d in ds],
                                     [design_q[d] for d in ds]).statistic  # fmt: skip
    if len(allx) >= 3:
        rows["rho_all"] = spearmanr(allx, ally).statistic
        rows["tau_all"] = kendalltau(allx, ally).statistic
        rows["n"] = len(allx)
    return rows


def two_seed_headroom(probes: list[dict], data, masks) -> dict[float, dict]:
    """Per budget, ES and the best probed mask by the mean test R@20 of probe seeds 0 and 1.

    What the default rule reports for a mask (two seeds): the gain over ES that the best of the
    probed masks shows, a lower bound on what the best mask of the budget could. Returns
    ``{budget: {"es", "best", "best_r20", "best_by_val", "best_by_val_r20", "n_masks"}}`` for
    budgets with ES and another mask.
    """
    two: dict[str, dict[int, tuple[float, float]]] = {}
    for r in probes:
        if r["seed"] in (0, 1):
            best, n, _ = rule_count(r["history"], data, DEFAULT, 2000)
            val = {h[0]: h[1] for h in r["history"]}[best]
            test = {b: r20 for b, r20, _ in r["test"]}[n]
            two.setdefault(r["digest"], {})[r["seed"]] = (val, test)
    two = {d: v for d, v in two.items() if len(v) == 2}
    out: dict[float, dict] = {}
    for c in sorted({m.budget for m in masks}):
        here = [m for m in masks if m.budget == c and m.digest in two]
        es = next((m for m in here if m.family == "ES"), None)
        if es is None or len(here) < 2:
            continue

        def mean(m: object, k: int) -> float:
            return float(np.mean([v[k] for v in two[m.digest].values()]))

        bt = max(here, key=lambda m: mean(m, 1))
        bv = max(here, key=lambda m: mean(m, 0))
        out[c] = {"es": mean(es, 1), "best": bt.name, "best_r20": mean(bt, 1),
                  "best_by_val": bv.name, "best_by_val_r20": mean(bv, 1),
                  "n_masks": len(here)}  # fmt: skip
    return out


def _two_seed_headroom(probes: list[dict], data, gt: dict, masks) -> list[str]:
    """Headroom over ES under the default rule itself: the mean of probe seeds 0 and 1."""
    seeds: dict[str, set[int]] = {}
    for r in probes:
        if r["digest"] in gt:
            seeds.setdefault(r["digest"], set()).add(r["seed"])
    n_two = sum({0, 1} <= s for s in seeds.values())
    if not n_two:
        return []
    rows = two_seed_headroom([r for r in probes if r["digest"] in gt], data, masks)
    lines = [
        "",
        "### The same with two seeds (what the default rule reports)",
        "",
        "Mean test R@20 of seeds 0 and 1 under the default stopping rule, for every mask "
        f"with both ({n_two} of {len(gt)}); two 2-seed scores of one mask differ by "
        "about 0.8 % (`final_retraining_<data>.md`), so a gain below that is noise.",
        "",
    ]
    head = ["budget", "ES", "best mask (2 seeds)", "its R@20", "vs ES",
            "best by validation (2 seeds)", "its R@20", "vs ES"]  # fmt: skip
    table = [[_budget_tag(c), h["es"], h["best"], h["best_r20"],
              f"{h['best_r20'] / h['es'] - 1:+.1%}",
              h["best_by_val"], h["best_by_val_r20"],
              f"{h['best_by_val_r20'] / h['es'] - 1:+.1%}"] for c, h in rows.items()]  # fmt: skip
    return [*lines, *md_table(head, table)]


def _best_val_q(probe: dict, data) -> float:
    """Validation quality of a probe's best state under the default rule (the truth's score)."""
    best, _, _ = rule_count(probe["history"], data, DEFAULT, 2000)
    return {h[0]: h[1] for h in probe["history"]}[best]


def _rho_interval(truth: dict, q: dict, groups: list[list[str]], n: int = 2000) -> tuple:
    """95 % interval of the mean within-budget ρ, resampling masks within each budget.

    A budget holds about a dozen masks, so one ρ moves a lot with which masks were drawn: the
    interval says whether two designs' ρ differ beyond that.
    """
    rng = np.random.default_rng(0)
    got = []
    for _ in range(n):
        rhos = []
        for g in groups:
            pick = [g[i] for i in rng.integers(0, len(g), len(g))]
            x, y = [truth[d] for d in pick], [q[d] for d in pick]
            if len(set(x)) > 1 and len(set(y)) > 1:
                rhos.append(spearmanr(x, y).statistic)
        if rhos:
            got.append(np.mean(rhos))
    return tuple(np.percentile(got, [2.5, 97.5]))


def two_seed_truth(probes: list[dict], data, design_rows: list[dict], masks) -> dict:
    """Designs of seed 2 ranked against the mean of two ground-truth seeds (0 and 1).

    The default final-retraining rule reports the mean of two seeds, so that mean is the truth a
    search is judged by; a one-seed truth caps any design at its own seed-to-seed noise. Seed-2
    runs share nothing with either truth seed. Returns ``{"n", "budgets", "rows": {label:
    {"rho": {c: ρ}, "mean", "ci", "top1", "top3", "seconds", "ratio", "load"}}}`` over the masks
    that have both truth seeds and every seed-2 design; ``load`` is the mean 1-minute load
    average its units recorded (NaN if none), since designs scored by separate jobs may have
    shared their core with different neighbours.
    """
    vals: dict[str, dict[int, float]] = {}
    for r in probes:
        if r["seed"] in (0, 1):
            vals.setdefault(r["digest"], {})[r["seed"]] = _best_val_q(r, data)
    truth = {d: float(np.mean(list(v.values()))) for d, v in vals.items() if len(v) == 2}
    runs: dict[str, dict[str, dict]] = {}
    for r in design_rows:
        if r.get("seed") == 2 and r["digest"] in truth:
            runs.setdefault(r["design"], {})[r["digest"]] = r
    common = set(truth)
    for rows in runs.values():
        common &= set(rows)
    budgets = sorted({m.budget for m in masks})
    groups = [[m.digest for m in masks if m.budget == c and m.digest in common] for c in budgets]
    if not runs or min((len(g) for g in groups), default=0) < 3:
        return {"n": len(common), "budgets": budgets, "rows": {}}
    ref = runs.get("converge:50/4")
    ref_s = np.mean([ref[d]["train_s"] + ref[d]["eval_s"] for d in common]) if ref else math.nan
    out = {}
    for design, rows in runs.items():
        q = {d: rows[d]["quality"] for d in common}
        rho = {c: spearmanr([truth[d] for d in g], [q[d] for d in g]).statistic
               for c, g in zip(budgets, groups, strict=True)}  # fmt: skip
        best_t = [max(g, key=truth.get) for g in groups]
        order = [sorted(g, key=q.get, reverse=True) for g in groups]
        secs = float(np.mean([rows[d]["train_s"] + rows[d]["eval_s"] for d in common]))
        loads = [rows[d]["load"] for d in common if rows[d].get("load") is not None]
        out[design] = {
            "rho": rho, "mean": float(np.mean(list(rho.values()))),
            "ci": _rho_interval(truth, q, groups),
            "top1": sum(o[0] == b for o, b in zip(order, best_t, strict=True)),
            "top3": sum(b in o[:3] for o, b in zip(order, best_t, strict=True)),
            "seconds": secs, "ratio": ref_s / secs,
            "load": float(np.mean(loads)) if loads else math.nan,
        }  # fmt: skip
    return {"n": len(common), "budgets": budgets, "rows": out}


def _two_seed_truth_lines(probes: list[dict], data, design_rows: list[dict], masks,
                          one_seed_ceiling: float) -> list[str]:  # fmt: skip
    got = two_seed_truth(probes, data, design_rows, masks)
    if not got["rows"]:
        return []
    r = one_seed_ceiling
    two = 2 * r / (1 + r)  # Spearman–Brown: reliability of a two-seed mean
    lines = [
        "",
        "## Against the two-seed ground truth (designs on seed 2)",
        "",
        "The default final-retraining rule reports the mean of two seeds, so here the truth is "
        "the mean validation quality of ground-truth seeds 0 and 1 and every design ran on seed "
        f"2, which shares nothing with either ({got['n']} masks with both truth seeds and every "
        "seed-2 design). ρ in brackets: 95 % interval of the mean within-budget ρ, resampling "
        "the masks of each budget (2,000 resamples). Cost: mean seconds per step, and "
        "converge:50/4's seconds over the design's; designs listed in one run command ran mask "
        "by mask, one after the other, on the same core, and the load column (mean 1-minute "
        "load average of the design's units, 2 cores) shows where a design ran beside more "
        "jobs than converge:50/4, which makes its seconds an upper bound.",
        "",
    ]
    head = [
        "design (seed 2)",
        *(f"ρ {_budget_tag(c)}" for c in got["budgets"]),
        "mean within-budget ρ",
        "top-1",
        "top-3",
        "s / step",
        "cheaper than converge:50/4",
        "load",
    ]
    nb = len(got["budgets"])
    table = [
        [
            d,
            *(f"{v['rho'][c]:.2f}" for c in got["budgets"]),
            f"{v['mean']:.2f} [{v['ci'][0]:.2f}, {v['ci'][1]:.2f}]",
            f"{v['top1']}/{nb}",
            f"{v['top3']}/{nb}",
            f"{v['seconds']:.1f}",
            f"{v['ratio']:.1f}×",
            f"{v['load']:.1f}" if math.isfinite(v["load"]) else "—",
        ]
        for d, v in sorted(got["rows"].items(), key=lambda kv: -kv[1]["seconds"])
    ]
    lines += md_table(head, table)
    if math.isfinite(r) and r > 0:
        lines += [
            "",
            f"What a perfect design could reach: the one-seed ceiling above (mean within-budget "
            f"ρ {r:.2f}) makes a two-seed mean about {two:.2f} reliable (Spearman–Brown), so a "
            f"noise-free score of each mask's expected quality would reach about "
            f"√{two:.2f} = {math.sqrt(two):.2f} against this truth, and one more seed of the "
            f"final retraining itself about {r:.2f}/√((1+{r:.2f})/2) = "
            f"{r / math.sqrt((1 + r) / 2):.2f}. These are estimates from a rank correlation "
            "treated as a reliability, not measurements.",
        ]  # fmt: skip
    return lines


def _add_design_runs(rows: list[dict], quality: dict, seconds: dict) -> None:
    """Add the cached design runs to the per-label quality and seconds tables.

    A run that a probe of the same seed already replays (``converge:50/4``, seed 1) is the same
    computation: that label keeps one value per mask.
    """
    for r in rows:
        seed = r.get("seed", 0)
        label = r["design"] if seed == 0 else f"{r['design']} (seed {seed})"
        if r["digest"] in quality.get(label, {}):
            continue
        quality.setdefault(label, {})[r["digest"]] = r["quality"]
        seconds.setdefault(label, []).append(r["train_s"] + r["eval_s"])


def _add_seed_means(quality: dict, seconds: dict) -> None:
    """Add "D (mean of seeds 1, 2)": a step that trains D twice and averages, at twice the cost.

    Both seeds are independent of the seed-0 truth, so the row says how much of a design's gap
    to the truth is seed noise that averaging removes.
    """
    for label in [k for k in quality if k.endswith(" (seed 1)")]:
        design = label.removesuffix(" (seed 1)")
        one, two = quality[label], quality.get(f"{design} (seed 2)", {})
        both = sorted(set(one) & set(two))
        if len(both) < 3 or set(both) != set(one) or design == "final retraining":
            continue  # only where seed 2 covers every mask of seed 1: the same table
        quality[f"{design} (mean of seeds 1, 2)"] = {d: (one[d] + two[d]) / 2 for d in both}
        seconds[f"{design} (mean of seeds 1, 2)"] = [
            float(np.mean(seconds[label])) + float(np.mean(seconds[f"{design} (seed 2)"]))
        ]


def write_report(
    tag: str, env, masks, probes: list[dict], design_rows: list[dict], results: Path = RESULTS
) -> None:
    data = env.data
    by_digest = {m.digest: m for m in masks}
    probes = [r for r in probes if r["digest"] in by_digest]
    now = f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC"
    loads = [r["load"] for r in probes] + [r["load"] for r in design_rows]
    load = f"{min(loads):.1f}–{max(loads):.1f}" if loads else "n/a"
    cmd = "python benchmarks/fidelity_ground_truth.py --data-dir ../shared/data --dataset " + tag
    cfg = env.train_config
    header = [
        f"Data: {data!r}; LightGCN, d_max {env.d_max}; scratch schedule {cfg.n_batches} batches of "
        f"{cfg.batch_size}, lr {cfg.lr} × {cfg.lr_decay} every {cfg.decay_batches}. Seed 0 "
        "unless stated (a seed sets the initialisation and the BPR sampling).",
        "",
        f"Machine: 2 CPU cores, one torch thread per job, torch {torch.__version__}; 1-minute "
        f"load average {load} while the units ran (units from a session with a load above 2 "
        f"shared their core, so their seconds are upper bounds). Written {now}.",
        "",
    ]

    _write_item0(tag, probes, data, header, cmd, results)

    # ---------------------------------------------------------------- items 1, 2, 4
    gt = ground_truth(probes, data)
    n_total = len(masks)
    partial = "" if len(gt) >= n_total else f" (partial, {len(gt)} of {n_total} masks)"
    lines = [
        f"# What does a search step measure? Step designs vs final-retrained ground truth "
        f"({tag}){partial}",
        "",
        f"Command: `{cmd} --probe --seeds 0 1` (ML-1M: `--probe --full --seeds 0`), then "
        "`... --designs <list> --design-seed 1`, then `... --report`. "
        f"Masks: `fidelity_masks_{tag}.json` (committed); caches `fidelity_probes_{tag}.jsonl`, "
        f"`fidelity_designs_{tag}.jsonl`.",
        "",
        *header,
        "Ground truth = one seed (0) of `ciess_env.retrain.final_retrain`'s default rule "
        "(validation every 50 batches, patience 8, best state, train + validation for the best "
        "count × |train ∪ val| / |train|), the code path of selective retraining, replayed "
        "from each probe; the default rule reports the mean of two such seeds. The "
        "`final retraining (seed 1)` row below measures how far one seed of it is from another.",
        "",
        "## Ground truth per mask",
        "",
    ]
    table = []
    missing = [m.name for m in masks if m.digest not in gt]
    for m in sorted(masks, key=lambda m: (m.budget, m.family, m.name)):
        g = gt.get(m.digest)
        if g is None:
            continue
        table.append([m.name, m.family, m.sparsity, g["val_q"], g["val_r20"], g["test_r20"],
                      g["test_n20"], g["best"], g["final"]])  # fmt: skip
    lines += md_table(["mask", "family", "sparsity", "val quality", "val R@20", "test R@20",
                       "test N@20", "best batch", "train+val batches"], table)  # fmt: skip
    if missing:
        lines += ["", f"Not run yet ({len(missing)} of {n_total}): {', '.join(missing)}."]
    # headroom
    lines += ["", "## Headroom over ES (test Recall@20)", ""]
    table = []
    for c in sorted({m.budget for m in masks}):
        here = [m for m in masks if m.budget == c and m.digest in gt]
        es = next((m for m in here if m.family == "ES"), None)
        if es is None or len(here) < 2:
            continue
        e = gt[es.digest]["test_r20"]
        bt = max(here, key=lambda m: gt[m.digest]["test_r20"])
        bv = max(here, key=lambda m: gt[m.digest]["val_q"])
        t, v = gt[bt.digest]["test_r20"], gt[bv.digest]["test_r20"]
        table.append([_budget_tag(c), e, bt.name, t, f"{t / e - 1:+.1%}", bv.name, v,
                      f"{v / e - 1:+.1%}"])  # fmt: skip
    lines += md_table(["budget", "ES", "best mask by test R@20", "its R@20", "vs ES",
                       "best by validation", "its R@20", "vs ES"], table)  # fmt: skip
    lines += _two_seed_headroom(probes, data, gt, masks)
    # designs
    design_q: dict[str, dict[str, float]] = {}
    design_s: dict[str, list[float]] = {}
    for d in CURVE_DESIGNS:
        for dig, g in gt.items():
            got = curve_design(g["probe"], d)
            if got is not None:
                design_q.setdefault(d, {})[dig] = got[0]
                design_s.setdefault(d, []).append(got[1])
    # The same designs and the final retraining itself on an independent seed (1): probes of
    # another seed share no initialisation or BPR sampling with the seed-0 ground truth. The
    # "final retraining (seed 1)" row is the noise ceiling: no design can be expected to rank
    # masks better than the ground-truth procedure agrees with itself.
    other = {r["digest"]: r for r in probes if r["seed"] == 1 and r["digest"] in gt}
    for dig, r in other.items():
        design_q.setdefault("final retraining (seed 1)", {})[dig] = _best_val_q(r, data)
        design_s.setdefault("final retraining (seed 1)", []).append(r["seconds"])
        for d in CURVE_DESIGNS:
            got = curve_design(r, d)
            if got is not None:
                design_q.setdefault(f"{d} (seed 1)", {})[dig] = got[0]
                design_s.setdefault(f"{d} (seed 1)", []).append(got[1])
    _add_design_runs(design_rows, design_q, design_s)
    _add_seed_means(design_q, design_s)
    budgets = sorted({m.budget for m in masks})
    lines += [
        "",
        "## Step designs against the ground truth (validation quality)",
        "",
        "ρ / τ: Spearman / Kendall between the design's validation quality after one step and the "
        "ground truth's validation quality, over the masks of one budget (and all pooled). "
        "top-1: the design's best mask is the ground truth's best; top-3: the ground truth's "
        "best is among the design's three best (per budget, summed). Seconds: one step's "
        "training + evaluation on one (shared) core, mean over masks.",
        "",
    ]
    table, summary = [], {}
    for d, q in design_q.items():
        f = _fidelity(gt, q, masks)
        cells = []
        for c in budgets:
            b = f["budgets"].get(c)
            cells += [f"{b['rho']:.2f}", f"{b['tau']:.2f}"] if b else ["—", "—"]
        within = [b["rho"] for b in f["budgets"].values()]
        mean_rho = float(np.mean(within)) if within else math.nan
        top1 = sum(b["top1"] for b in f["budgets"].values())
        top3 = sum(b["top3"] for b in f["budgets"].values())
        nb = len(f["budgets"])
        summary[d] = (mean_rho, float(np.mean(design_s[d])))
        table.append([
            d, *cells, f"{mean_rho:.2f}", f"{f.get('rho_all', math.nan):.2f}",
            f"{f.get('tau_all', math.nan):.2f}", f"{f.get('rho_test', math.nan):.2f}",
            f"{top1}/{nb}", f"{top3}/{nb}", f.get("n", 0), f"{np.mean(design_s[d]):.1f}",
        ])  # fmt: skip
    head = ["design", *(f"{x} {_budget_tag(c)}" for c in budgets for x in ("ρ", "τ")),
            "mean within-budget ρ", "ρ pooled", "τ pooled", "ρ pooled vs test R@20", "top-1",
            "top-3", "masks", "s / step"]  # fmt: skip
    lines += md_table(head, table)
    lines += [
        "",
        "Designs: `scratch` = the code's step (2,000 batches, read off the probe at 2,000); "
        "`scratch@K` = its first K batches; `converge:E/P` = the step evaluates validation "
        "every E batches, stops after P evaluations without improvement and reports its best "
        "(`converge:50/4` is the `-v1` step; the shorter ones ask whether stopping earlier "
        "alone ranks as well). These are read off the probes' training runs (seed 0: the "
        "ground truth's own), so on seed 0 their agreement on "
        "*validation* is partly by construction (converge:50/4 nearly is the ground truth's "
        "first half); the pooled ρ against *test* R@20 is the fairer column for them. "
        "`epochs:E` = E passes over the training split with the scratch schedule compressed "
        "(decay every round(200 · n / 2000) batches); `nested:B` = nested-prefix model, B "
        "fine-tuning batches at lr/10. A design without a seed in its name ran with seed 0, "
        "the ground truth's own initialisation and BPR sampling; `(seed 1)` rows share "
        "nothing with it and are the fair comparison. `final retraining (seed 1)` is the "
        "ground-truth procedure itself on seed 1 (validation quality of its best state): the "
        "noise ceiling of any design on these masks. `(mean of seeds 1, 2)` rows average a "
        "design's two independent runs, a step that trains twice (its seconds are the sum).",
    ]
    ceiling = summary.get("final retraining (seed 1)", (math.nan, math.nan))[0]
    lines += _two_seed_truth_lines(probes, data, design_rows, masks, ceiling)
    (results / f"fidelity_ground_truth_{tag}.md").write_text("\n".join(lines) + "\n")
    _plot(tag, gt, design_q, masks, budgets, results)
    print("\n".join(lines))


def _es_vs_es(probes: list[dict], data) -> list[str]:
    """ES against itself: how large a "gain" the retraining protocol alone can report (issue 15).

    Both arms are the same ES mask; only the seed, the stopping rule or the stopping point
    differ. Any method that beats ES by less than these numbers under the same protocol has not
    been shown to beat it.
    """
    legacy = next(iter(RULES))
    rows = []
    for c in sorted({r["budget"] for r in probes}):
        runs = sorted((r for r in probes if r["budget"] == c and r["mask"].startswith("ES @")),
                      key=lambda r: r["seed"])  # fmt: skip
        if len(runs) < 2:
            continue
        by_rule = {rule: [_rule_r20(r, data, rule) for r in runs] for rule in (legacy, DEFAULT)}
        two = "—"
        if len(runs) >= 4:
            v = by_rule[DEFAULT][:4]
            means = [np.mean([v[i] for i in g]) for g in itertools.combinations(range(4), 2)]
            two = f"{max(means) / min(means) - 1:+.1%}"
        # The best traced test score over the legacy rule's (by_rule[legacy]) on the same run.
        oracle = [max(r20 for _, r20, _ in r["test"]) / lg - 1
                  for r, lg in zip(runs, by_rule[legacy], strict=True)]  # fmt: skip
        switch = [d / lg - 1 for d, lg in zip(by_rule[DEFAULT], by_rule[legacy], strict=True)]
        rows.append([
            _budget_tag(c), len(runs), f"{max(by_rule[legacy]) / min(by_rule[legacy]) - 1:+.1%}",
            f"{max(by_rule[DEFAULT]) / min(by_rule[DEFAULT]) - 1:+.1%}", two,
            f"{np.mean(oracle):+.1%} (max {np.max(oracle):+.1%})", f"{np.mean(switch):+.1%}",
        ])  # fmt: skip
    if not rows:
        return []
    return [
        "",
        "### ES against ES: the gain the protocol alone can report",
        "",
        "Both arms are the ES mask of one budget (test R@20); only the seed, the rule or the "
        "stopping point differ. *Seeds*: the best seed over the worst under one rule (what a "
        "one-seed comparison of two identical methods can show; the default rule's 2-seed "
        "column compares disjoint seed pairs). *Stopping point*: the best test score over every "
        "train + validation count the probe traced, over the legacy rule's choice (a protocol "
        "that lets the stopping count vary by mask). *Rule*: the default rule over the legacy "
        "one on the same seed (retraining one arm with a better protocol).",
        "",
        *md_table(["budget", "seeds", "seeds, legacy rule", "seeds, default rule (1 seed)",
                   "seeds, default rule (2-seed means)", "stopping point vs legacy",
                   "default vs legacy rule"], rows),
    ]  # fmt: skip


def _verdict_two_rules(probes: list[dict], data) -> list[str]:
    """Each multi-seed mask against ES under the legacy and the default final retraining.

    The same probes replayed under both rules: how large a gain over ES each protocol reports
    for the same masks, and what a one-seed comparison under the legacy rule could have shown
    (any seed of the mask against any seed of ES).
    """
    from agents.experiments.stats import bootstrap_ci

    legacy = next(iter(RULES))
    by: dict[tuple[float, str], dict[int, dict]] = {}
    for r in probes:
        by.setdefault((r["budget"], r["mask"]), {})[r["seed"]] = r

    es_at = {c: runs for (c, name), runs in by.items() if name.startswith("ES @")}
    rows, wins = [], {legacy: 0, DEFAULT: 0}
    for (c, name), runs in sorted(by.items()):
        es = es_at.get(c)
        seeds = sorted(set(runs) & set(es or {}))
        if es is None or name.startswith("ES @") or len(seeds) < 2:
            continue
        cells = []
        for rule in (legacy, DEFAULT):
            m = {s: _rule_r20(runs[s], data, rule) for s in seeds}
            e = {s: _rule_r20(es[s], data, rule) for s in seeds}
            iv = bootstrap_ci([m[s] / e[s] - 1 for s in seeds])
            wins[rule] += iv.low > 0
            cells.append(iv.format("+.1%", star=True))
            if rule == legacy:
                ratios = [m[a] / e[b] - 1 for a in seeds for b in seeds]
                cells.append(f"{min(ratios):+.1%} to {max(ratios):+.1%}")
        # m and e now hold the default rule's scores.
        pairs = [seeds[i : i + 2] for i in range(0, len(seeds) - 1, 2)]
        two = [np.mean([m[s] for s in p]) / np.mean([e[s] for s in p]) - 1 for p in pairs]
        cells.append(", ".join(f"{g:+.1%}" for g in two))
        rows.append([_budget_tag(c), name.split(" @")[0], len(seeds), *cells])
    if not rows:
        return []
    return [
        "",
        "### Each mask against ES under the two final retrainings",
        "",
        "Test R@20 gain over the ES mask of the same budget, paired by seed (mean [95 % "
        "bootstrap interval], `*` where it excludes 0), replayed from the same probes under the "
        "legacy rule (every 200 batches, patience 2, the same count on train + validation) and "
        "the default one (every 50, patience 8, scaled count; one seed, then the mean of seeds "
        "0–1 and 2–3 as `FinalRetrainRule(seeds=2)` reports). *One seed each*: the range of "
        "gains a one-seed comparison under the legacy rule could report (any seed of the mask "
        "against any seed of ES).",
        "",
        *md_table(
            [
                "budget",
                "mask",
                "seeds",
                "legacy rule",
                "legacy, one seed each",
                "default rule (1 seed)",
                "default rule, 2-seed means",
            ],
            rows,
        ),
        "",
        f'Rows whose interval lies above 0 (a "gain over ES"): {wins[legacy]} of '
        f"{len(rows)} under the legacy rule, {wins[DEFAULT]} of {len(rows)} under the default "
        "one (with two seeds an interval spans just the two values).",
    ]


def _write_item0(
    tag: str, probes: list[dict], data, header: list[str], cmd: str, results: Path = RESULTS
) -> None:
    """final_retraining_<tag>.md: the seed-to-seed spread under each stopping rule."""
    spread = _seed_spread(probes, data)
    n_masks = len({r["digest"] for r in probes if r["seed"] != 0})
    seeds = sorted({r["seed"] for r in probes})
    lines = [
        f"# Final retraining: seed-to-seed spread and stopping rules ({tag})",
        "",
        f"Command: `{cmd} --probe --only item0 --seeds 0 1 2 3` then `... --report`; caches "
        f"`fidelity_probes_{tag}.jsonl` (one line per (mask, seed) probe).",
        "",
        *header,
        f"Masks: ES, MR, pop 0.5, split 0.2 at 80 / 90 / 95 % ({n_masks} with ≥ 2 seeds; seeds "
        f"{seeds}). Each probe records validation every 50 batches and the train + validation "
        "run's test Recall@20 every 50 batches; every rule below is replayed exactly from it.",
        "",
        "Spread: mean over masks and seed pairs of |R@20(a) − R@20(b)| / mean(R@20(a), R@20(b)) "
        "(test Recall@20 of the same mask, two seeds). Scaled: the train + validation run trains "
        "best × |train ∪ val| / |train| batches (rounded to the evaluation grid). Cap 2,000.",
        "",
        *md_table(["rule", "mean test R@20", "seed spread (mean)", "seed spread (max)",
                   "seed pairs", "mean train+val batches"],
                  [[r["rule"], r["mean"], f"{r['spread']:.2%}", f"{r['max']:.2%}", r["pairs"],
                    f"{r['batches']:.0f}"] for r in spread]),
    ]  # fmt: skip
    mean2 = _mean_of_k_spread(probes, data, 2)
    if mean2:
        lines += [
            "",
            "### Scoring a mask by the mean of two seeds",
            "",
            "Spread between two disjoint 2-seed means of the same mask (each split of four seeds "
            "into two pairs counts once): what `FinalRetrainRule(seeds=2)` buys over one seed.",
            "",
            *md_table(["rule", "2-seed spread (mean)", "(max)", "pairs", "masks"],
                      [[r["rule"], f"{r['spread']:.2%}", f"{r['max']:.2%}", r["pairs"],
                        r["masks"]] for r in mean2]),
        ]  # fmt: skip
    lines += _es_vs_es(probes, data)
    lines += _verdict_two_rules(probes, data)
    lines += ["", "Per probe: best validation batch / train+val batches / test R@20.", ""]
    table = []
    legacy = next(iter(RULES))
    for r in sorted(probes, key=lambda r: (r["budget"], r["mask"], r["seed"])):
        if not any(p["digest"] == r["digest"] and p["seed"] != r["seed"] for p in probes):
            continue
        test = {b: r20 for b, r20, _ in r["test"]}
        cells = []
        for rule in (legacy, DEFAULT):
            best, n, _ = rule_count(r["history"], data, rule, 2000)
            cells.append(f"{best} / {n} / {test[n]:.4f}")
        table.append([r["mask"], r["seed"], *cells])
    lines += md_table(["mask", "seed", "legacy", "default"], table)
    secs = sum(r["seconds"] for r in probes)
    lines += ["", f"Compute: {secs:,.0f} s of one core over {len(probes)} probes."]
    (results / f"final_retraining_{tag}.md").write_text("\n".join(lines) + "\n")


def _plot(tag, gt, design_q, masks, budgets, results: Path = RESULTS) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(budgets), figsize=(5 * len(budgets), 4.2), squeeze=False)
    for ax, c in zip(axes[0], budgets, strict=True):
        for d, q in design_q.items():
            ds = [m.digest for m in masks if m.budget == c and m.digest in gt and m.digest in q]
            if len(ds) < 3:
                continue
            x = np.array([gt[k]["val_q"] for k in ds])
            y = np.array([q[k] for k in ds])
            y = (y - y.mean()) / (y.std() + 1e-12) * x.std() + x.mean()  # same scale as x
            rho = spearmanr(x, y).statistic
            ax.scatter(x, y, s=14, label=f"{d} (ρ {rho:.2f})")
        lo, hi = ax.get_xlim()
        ax.plot([lo, hi], [lo, hi], color="grey", lw=0.8)
        ax.set_title(f"{tag}, {_budget_tag(c)} sparsity")
        ax.set_xlabel("ground truth: validation quality after final retraining")
        ax.set_ylabel("design's step quality (standardised to the x scale)")
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(results / f"fidelity_ground_truth_{tag}.png", dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit("run benchmarks/fidelity_ground_truth.py --report")
