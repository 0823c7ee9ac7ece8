"""What does a search step measure? Step designs scored against final-retrained ground truth.

Issue 14, items 1–2. A fixed, committed set of size assignments (``fidelity_masks.py``:
ES, MDE, MR, user/item splits, per-side popularity powers, masks from real RW-TD3 search logs;
80 / 90 / 95 % sparsity) is final-retrained exactly as selective retraining does it
(``ciess_env.retrain.final_retrain``: early stopping on validation, then train + validation → test).
The per-step retraining designs of the env are then run on the same masks and ranked against
that ground truth.

One *probe* per (mask, seed) trains LightGCN on the training split with the env's scratch
schedule for up to 2,000 batches (the code's step), evaluating validation every 50 batches,
then retrains on train + validation and evaluates test every 50 batches. Evaluating never
touches the training random streams (``tests/test_final_retrain.py`` checks it), so from one
probe we replay exactly:

* the ground truth under any stopping rule of ``final_retraining.py`` (the default rule of
  :class:`~ciess_env.retrain.FinalRetrainRule` is the reported one);
* the ``scratch`` design (the point at 2,000 batches) and the early-stopped step
  ``converge:50/4`` (this study's own design: evaluate every 50 batches, patience 4, the best
  validation quality is the step's quality).

Designs that need their own runs (``epochs:E``, ``nested:B``) are cached per (design, mask).
Every unit of work goes to a committed JSONL file as soon as it finishes, so the study resumes
across sessions.

Run (each stage resumes; ``--report`` writes the results file and the plot)::

    python benchmarks/fidelity_ground_truth.py --data-dir ../shared/data --dataset ml-100k \
        --probe --seeds 0
    python benchmarks/fidelity_ground_truth.py ... --designs epochs:1,epochs:5,nested:20
    python benchmarks/fidelity_ground_truth.py ... --report
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from fidelity_masks import BUDGETS, Mask, load_masks, save_masks, structured_masks
from fidelity_rules import DEFAULT, FIXED, RESULTS, RULES, rule_count
from jsonl_cache import append_unit, read_units

from ciess_env.budget import fit_to_budget, kept_budget
from ciess_env.env import EmbeddingSizeEnv
from ciess_env.metrics import evaluate
from ciess_env.recommenders import BPRTrainer, make_backbone
from ciess_env.retrain import RetrainDesign, retrain_and_evaluate, score_on_test

EVERY = 50
ITEM0 = ("ES", "MR", "pop 0.5", "split 0.2")


# --------------------------------------------------------------------------------- probing
def probe(env: EmbeddingSizeEnv, mask: Mask, seed: int, *, full: bool) -> dict:
    """Validation curve (to 2,000 batches if ``full``, else until every rule stopped) + test."""
    data, config = env.data, env.train_config
    cap = config.n_batches
    kw = dict(d_max=env.d_max, d_min=env.d_min, seed=seed, device=env.device)
    start = time.perf_counter()
    model = make_backbone(env.backbone, data, **kw, **(env.backbone_kwargs or {}))
    model.set_sizes(mask.user_sizes, mask.item_sizes)
    trainer = BPRTrainer(model, data, config, seed=seed)
    history, train_s = [], 0.0
    while trainer.batches_done < cap:
        t0 = time.perf_counter()
        trainer.run(EVERY)
        train_s += time.perf_counter() - t0
        ev = evaluate(model, data, "validation")
        history.append([trainer.batches_done, round(ev.mean_user_quality, 6),
                        round(ev.recall(20), 6), round(ev.ndcg(20), 6), round(train_s, 2),
                        round(ev.seconds, 3)])  # fmt: skip
        if not full and all(rule_count(history, data, r, cap)[2] for r in RULES):
            break
    counts = [rule_count(history, data, r, cap)[1] for r in RULES]
    n_default = rule_count(history, data, DEFAULT, cap)[1]
    _, trace = score_on_test(
        data, mask.user_sizes, mask.item_sizes, n_default, env.step_config, seed=seed,
        trace_test_every=EVERY, trace_until=max([*counts, *FIXED]),
    )  # fmt: skip
    return {
        "mask": mask.name, "digest": mask.digest, "budget": mask.budget, "seed": seed,
        "full": full, "history": history,
        "test": [[b, round(ev.recall(20), 6), round(ev.ndcg(20), 6)] for b, ev in trace],
        "seconds": round(time.perf_counter() - start, 1), "load": round(os.getloadavg()[0], 2),
        "torch_threads": torch.get_num_threads(), "device": str(env.device),
    }  # fmt: skip


def run_design(env: EmbeddingSizeEnv, mask: Mask, design: str, nested_state, seed: int) -> dict:
    step = env.step_config.replace(retrain=str(RetrainDesign.parse(design)))
    out = retrain_and_evaluate(
        step, data=env.data, user_sizes=mask.user_sizes, item_sizes=mask.item_sizes,
        init_seed=seed, train_seed=seed, nested_state=nested_state,
    )  # fmt: skip
    return {
        "mask": mask.name, "digest": mask.digest, "design": design, "seed": seed,
        "quality": round(out.eval.mean_user_quality, 6), "recall_20": round(out.eval.recall(20), 6),
        "batches": out.n_batches, "train_s": round(out.train_seconds, 3),
        "eval_s": round(out.eval.seconds, 3), "load": round(os.getloadavg()[0], 2),
    }  # fmt: skip


# -------------------------------------------------------------------------------- masks
def search_masks(env_id: str, args: argparse.Namespace, data) -> list[Mask]:
    """Best logged masks per budget of a RW-TD3 search log, rescaled onto the budget.

    The log is ``--from-log`` (a saved ``BudgetLog`` of a real search on this data set) or a
    short fast-mode search run here (``--add-search`` episodes). A logged mask rarely lands
    within ±0.5 % of a budget; the best ones with sparsity ≥ c are rescaled (sizes as weights,
    ``fit_to_budget``), which keeps their shape.
    """
    from ciess_env.budget_log import BudgetLog

    if args.from_log:
        log, source = BudgetLog.load(args.from_log), Path(args.from_log).name
    else:
        from agents.experiments import SearchSession

        env_kwargs = dict(retrain="fast", data_dir=args.data_dir)
        session = SearchSession(
            env_id, seed=args.search_seed, progress_bar=False, env_kwargs=env_kwargs
        )
        log, _ = session.search("rw-td3", episodes=args.add_search)
        source = f"fast search, {args.add_search} episodes, seed {args.search_seed}"
        session.close()
    if (log.n_users, log.n_items) != (data.n_users, data.n_items):
        msg = f"the log is for {log.n_users} users x {log.n_items} items, not {args.dataset}."
        raise ValueError(msg)
    out = []
    n = data.n_users + data.n_items
    for c in BUDGETS:
        for rank, e in enumerate(log.top_masks(c, args.search_per_budget)):
            sizes = np.concatenate([e.user_sizes, e.item_sizes]).astype(np.float64)
            fitted = fit_to_budget(np.maximum(sizes, 1.0), kept_budget(c, n, 128), 1, 128)
            name = f"RW-TD3 #{rank + 1} (s={e.sparsity:.3f}; {source}) @{round(c * 100)}%"
            out.append(Mask(name, "RW-TD3", c, fitted[: data.n_users], fitted[data.n_users :]))
    return out


# ------------------------------------------------------------------------------- report
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--dataset", default="ml-100k")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--device", default="cpu", help="torch device (recorded per unit)")
    p.add_argument("--probe", action="store_true", help="run missing probes")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--full", action="store_true",
                   help="probe to 2,000 batches (gives the scratch design) instead of stopping "
                        "when every stopping rule has stopped")  # fmt: skip
    p.add_argument("--only", choices=["item0", "all"], default="all")
    p.add_argument("--designs", default="", help="comma-separated designs to run on every mask")
    p.add_argument("--design-seed", type=int, default=1,
                   help="seed of the design runs (not the ground truth's 0, so that a design "
                        "shares no initialisation or sampling with it)")  # fmt: skip
    p.add_argument("--add-search", type=int, default=0, help="RW-TD3 fast-search episodes")
    p.add_argument("--from-log", default=None, help="take RW-TD3 masks from this budget log")
    p.add_argument("--search-seed", type=int, default=0)
    p.add_argument("--search-per-budget", type=int, default=2)
    p.add_argument("--limit", type=int, default=None, help="at most this many masks (in order)")
    p.add_argument("--family", default=None, help="only masks of this family, e.g. RW-TD3")
    p.add_argument("--probed-only", action="store_true",
                   help="designs only on masks whose seed-0 ground truth exists")  # fmt: skip
    p.add_argument("--report", action="store_true")
    p.add_argument("--results-dir", type=Path, default=RESULTS, help="masks, caches, reports")
    args = p.parse_args()
    torch.set_num_threads(1)
    tag = args.dataset
    masks_path = args.results_dir / f"fidelity_masks_{tag}.json"
    probes_path = args.results_dir / f"fidelity_probes_{tag}.jsonl"
    designs_path = args.results_dir / f"fidelity_designs_{tag}.jsonl"
    env_id = {"ml-100k": "CIESS-LightGCN-ML100K-v0", "ml-1m": "CIESS-LightGCN-ML1M-v0"}[tag]
    env = EmbeddingSizeEnv(dataset=tag, data_dir=args.data_dir, device=args.device)
    data = env.data
    if not masks_path.is_file():
        masks = structured_masks(data.user_freq, data.item_freq)
        # Interleave budgets so that a partial run covers all three.
        masks = sorted(masks, key=lambda m: ([x.name.split(" @")[0] for x in masks].index(
            m.name.split(" @")[0]), m.budget))  # fmt: skip
        save_masks(masks, masks_path, dataset=tag)
    masks = load_masks(masks_path)
    if (args.add_search or args.from_log) and not any(m.family == "RW-TD3" for m in masks):
        masks += search_masks(env_id, args, data)
        save_masks(masks, masks_path, dataset=tag)
        print(f"added RW-TD3 masks; {len(masks)} masks", flush=True)
    chosen = [m for m in masks if args.only == "all" or m.name.split(" @")[0] in ITEM0]
    chosen = [m for m in chosen if args.family is None or m.family == args.family]
    chosen = chosen[: args.limit] if args.limit else chosen
    if args.probed_only:
        probed = {r["digest"] for r in read_units(probes_path) if r["seed"] == 0}
        chosen = [m for m in chosen if m.digest in probed]
    if args.probe:
        done = {(r["digest"], r["seed"]) for r in read_units(probes_path)}
        for m in chosen:  # mask-major: each mask's seeds first (pairs for the spread)
            for seed in args.seeds:
                if (m.digest, seed) in done:
                    continue
                row = probe(env, m, seed, full=args.full)
                append_unit(probes_path, row)
                print(f"probe {m.name} seed {seed}: {row['seconds']} s", flush=True)
    if args.designs:
        done = {(r["digest"], r["design"], r.get("seed", 0)) for r in read_units(designs_path)}
        designs = args.designs.split(",")
        nested = env.nested_pretrained.state_dict if any("nested" in d for d in designs) else None
        for m in chosen:
            for d in designs:
                if (m.digest, d, args.design_seed) in done:
                    continue
                row = run_design(env, m, d, nested, args.design_seed)
                append_unit(designs_path, row)
                print(f"design {d} {m.name}: {row['quality']:.4f} {row['train_s']} s", flush=True)
    if args.report:
        from fidelity_report import write_report

        write_report(tag, env, masks, read_units(probes_path), read_units(designs_path),
                     results=args.results_dir)  # fmt: skip


if __name__ == "__main__":
    main()
