"""The ``ciess`` command line: list envs, manage data, search, retrain, export, compare, demo.

Every run folder holds what is needed to rerun it: ``config.json`` (the exact arguments, seed
and package versions), the budget log, the agent, the curves and the figures.

A wrong argument or input ends the command with one line, ``ciess <command>: error: ...``, and
exit status 2 (the project's errors, :class:`~ciess_env.errors.CIESSError`, and usage errors);
anything else is a bug and keeps its traceback. ``--help`` and ``envs`` import neither torch nor
pandas, so they answer at once.
"""

from __future__ import annotations

import argparse
import ast
import json
import logging
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

__all__ = ["build_parser", "main"]

logger = logging.getLogger("ciess")

DEMO_ENV = "CIESS-LightGCN-Synthetic-v1"


def _kv(items: Sequence[str] | None) -> dict[str, Any]:
    """Parse ``key=value`` pairs; values are Python literals when they parse, else strings."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            msg = f"expected key=value, got {item!r}"
            raise argparse.ArgumentTypeError(msg)
        key, value = item.split("=", 1)
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value
    return out


def _int_at_least(text: str, minimum: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        msg = f"expected {what}, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def _positive_int(text: str) -> int:
    """Argparse type: an integer >= 1."""
    return _int_at_least(text, 1, "a positive integer")


def _seed(text: str) -> int:
    """Argparse type: a seed, an integer >= 0 (numpy's generators refuse negative ones)."""
    return _int_at_least(text, 0, "a seed, an integer >= 0")


class _AgentsHelp(argparse.RawDescriptionHelpFormatter):
    """Option help wrapped without breaking agent names at hyphens; the epilog kept as written.

    (rw-td3-lagrange stays whole; the epilog has one line per agent kind.)
    """

    def _split_lines(self, text: str, width: int) -> list[str]:
        import textwrap

        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line, like every other error of ``ciess``."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ciess-env")
    except PackageNotFoundError:  # a source tree that was never installed
        return "unknown (not installed)"


def _versions() -> dict[str, str]:
    import gymnasium
    import numpy
    import stable_baselines3
    import torch

    import ciess_env

    return {
        "ciess_env": ciess_env.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "gymnasium": gymnasium.__version__,
        "stable_baselines3": stable_baselines3.__version__,
    }


def _agent(spec: str) -> Any:
    """A registered agent name as is, or ``"module:builder"`` imported as an AgentBuilder.

    Any agent enters the CLI this way (:mod:`agents.protocol`): ``builder(vec_env, seed)``
    returns an object with ``predict`` (and ``learn`` if it learns).
    """
    if ":" not in spec:
        return spec
    import importlib

    module, _, attr = spec.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as err:
        msg = f"`--agent` {spec!r} must name an importable module:builder, got {err}."
        raise argparse.ArgumentTypeError(msg) from err


# --------------------------------------------------------------------------- commands
def cmd_envs(args: argparse.Namespace) -> int:
    """Print every registered CIESS env id with its data set, λ and step design."""
    import gymnasium as gym

    import ciess_env  # noqa: F401

    for env_id, spec in sorted(gym.registry.items()):
        if env_id.startswith("CIESS-"):
            kw = spec.kwargs
            step = kw.get("retrain", "scratch")
            print(f"{env_id:34s} dataset={kw.get('dataset')!s:10s} lam={kw.get('lam')} step={step}")
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    """Download, verify or describe a named data set."""
    from ciess_env.data import fetch_dataset, load_dataset, resolve_data_dir

    if args.action == "download":
        paths = fetch_dataset(args.name, resolve_data_dir(args.data_dir))
        for p in paths:
            print(p)
        return 0
    data = load_dataset(args.name, data_dir=args.data_dir, split_seed=args.split_seed)
    if args.action == "verify":
        print(f"OK: {args.name} matches its canonical counts")
    print(data)
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    """Train one agent on one env; save log, model, curves, figures and config.

    The search checkpoints into ``RUN/checkpoint`` after every episode; ``--resume RUN``
    continues it (same results as an uninterrupted run) and ``--stop-after K`` ends a sitting
    after K episodes.
    """
    from agents.experiments.checkpoint import CheckpointError
    from agents.experiments.rundir import STOPPED, check_not_running, read_config, run_status
    from agents.experiments.session import SearchSession

    if args.resume is not None:
        out = Path(args.resume)
        config = read_config(out, needs=("command", "env_id", "seed", "agent"))
        if config.get("command") != "search":
            msg = f"--resume needs a folder written by `ciess search`, got {out} ({config})."
            raise CheckpointError(msg)
        if args.env_id is not None and args.env_id != config["env_id"]:
            msg = f"ENV_ID {args.env_id!r} differs from the run's {config['env_id']!r}; omit it."
            raise CheckpointError(msg)
        check_not_running(out)
        _check_resumable(out, config)
        with run_status(out, "search") as status:
            session = SearchSession(
                config["env_id"], seed=config["seed"], env_kwargs=config.get("env_kwargs")
            )
            t0 = time.perf_counter()
            log, curve = session.resume(out / "checkpoint", stop_after=args.stop_after)
            agent, env_id = config["agent"], config["env_id"]
            if session.last_search_finished:
                best = _write_search_outputs(session, log, curve, out, title=f"{agent} on {env_id}")
            else:
                status.outcome = STOPPED
    else:
        if args.env_id is None:
            msg = "ENV_ID is required unless --resume RUN_DIR is given (see `ciess envs`)."
            raise CheckpointError(msg)
        agent_kwargs = _kv(args.agent_kw)
        agent = _agent(args.agent)
        # A named agent's search is checkpointed; a module:builder agent runs in one sitting.
        named = isinstance(agent, str)
        if not named and (args.stop_after or args.deterministic_masks or agent_kwargs):
            msg = (
                "--stop-after, --deterministic-masks and --agent-kw need a named agent (see "
                f"`ciess search --help`); got the builder {args.agent!r}."
            )
            raise CheckpointError(msg)
        if named:
            _check_search_agent(agent, agent_kwargs)
        out, env_kwargs = _start_run("search", args, agent_kwargs=agent_kwargs)
        extra: dict[str, Any] = (
            dict(
                checkpoint_dir=out / "checkpoint",
                stop_after=args.stop_after,
                deterministic_masks=args.deterministic_masks,
                **agent_kwargs,
            )
            if named
            else {}
        )
        with run_status(out, "search") as status:
            session = SearchSession(
                args.env_id, seed=args.seed, env_kwargs=env_kwargs, log_budgets=args.budgets,
                log_top_l=args.top_l,
            )  # fmt: skip
            t0 = time.perf_counter()
            log, curve = session.search(agent, episodes=args.episodes, **extra)
            agent, env_id = args.agent, args.env_id
            if session.last_search_finished:
                best = _write_search_outputs(session, log, curve, out, title=f"{agent} on {env_id}")
            else:
                status.outcome = STOPPED
    seconds = time.perf_counter() - t0
    if not session.last_search_finished:
        done = curve["episode"].max() + 1 if len(curve) else 0
        print(
            f"search: stopped after {done} episodes ({seconds:.1f} s); checkpoint in "
            f"{out / 'checkpoint'}; continue with `ciess search --resume {out}`"
        )
        return 0
    # The log keeps only the top masks per budget; the curve has every step of the search.
    print(
        f"search: {_count(len(curve), 'step')} ({_count(curve['episode'].nunique(), 'episode')}) "
        f"in {seconds:.1f} s, {_count(len(log), 'mask')} kept for retrain; results in {out}"
    )
    first = min((e.episode for e in log.steps), default=0)  # the curve's episode 0
    print(
        f"best step: episode {best.episode - first} step {best.step}, reward {best.reward:.4f}, "
        f"sparsity {best.sparsity:.1%}"
    )
    print(curve.groupby("episode")[["reward", "sparsity", "mean_quality"]].mean().to_string())
    return 0


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' * (n != 1)}"


def _write_search_outputs(session: Any, log: Any, curve: Any, out: Path, *, title: str) -> Any:
    """The files of a finished search (budget logs, curve, agent, figures); its best step."""
    from agents.experiments.plots import plot_search_curves, plot_size_vs_popularity
    from agents.experiments.session import best_entry

    log.save(out / "budget_log")
    if len(session.last_deterministic_log):
        session.last_deterministic_log.save(out / "deterministic_log")
    curve.to_csv(out / "curve.csv", index=False)
    if hasattr(session.last_model, "save"):  # SB3 models; a hand-written agent may have none
        session.last_model.save(out / "agent")
    _close(plot_search_curves(curve, out / "search_curves.png", title=title))
    best = best_entry(log)
    fields = ("episode", "step", "reward", "sparsity", "mean_quality")
    (out / "best_step.json").write_text(json.dumps({k: getattr(best, k) for k in fields}))
    _close(
        plot_size_vs_popularity(
            best.user_sizes,
            best.item_sizes,
            session.data.user_freq,
            session.data.item_freq,
            out / "size_vs_popularity.png",
            title=f"sparsity {best.sparsity:.1%}",
        )
    )
    return best


def _check_resumable(run: Path, config: dict[str, Any]) -> None:
    """Refuse ``--resume`` of a search that never wrote a checkpoint, saying what to do."""
    from agents.experiments.checkpoint import CheckpointNotFoundError, read_meta
    from agents.experiments.rundir import describe, read_status

    try:
        read_meta(run / "checkpoint")
    except CheckpointNotFoundError:
        held = f" ({describe(run)})" if read_status(run) else ""
        msg = (
            f"{run} holds no checkpoint to resume{held}: the search ended before "
            f"its first episode did. Rerun it without --resume: `ciess search {config['env_id']} "
            f"--output {run}` with its other options (see {run / 'config.json'})."
        )
        raise CheckpointNotFoundError(msg) from None


def cmd_retrain(args: argparse.Namespace) -> int:
    """Selective retraining over a search run's budget log → Table 1 format."""
    import pandas as pd

    from agents.experiments.comparison import markdown_table, result_row
    from agents.experiments.rundir import read_config
    from agents.experiments.selective import selective_retrain
    from agents.experiments.session import SearchSession
    from ciess_env.budget_log import BudgetLog
    from ciess_env.config import FinalRetrainRule

    run = Path(args.run)
    config = read_config(run, needs=("env_id", "seed"))
    if not (run / f"{args.log}.json").is_file():
        from agents.experiments.checkpoint import CheckpointNotFoundError
        from agents.experiments.rundir import describe

        hint = " (search with --deterministic-masks)" if args.log == "deterministic_log" else ""
        msg = f"{run} has no {args.log}{hint}; it holds {describe(run)}."
        raise CheckpointNotFoundError(msg)
    suffix = "" if args.log == "budget_log" else f"_{args.log}"
    csv = run / f"retrain{suffix}.csv"
    log = BudgetLog.load(run / args.log)
    if log.bounded and (
        args.top_l > log.top_l
        or not all(any(abs(c - b) <= 1e-9 for b in log.budgets) for c in args.budgets)
    ):
        print(
            f"ciess retrain: error: {run} keeps the top {log.top_l} masks for budgets "
            f"{', '.join(map(str, log.budgets))}; got --budgets {' '.join(map(str, args.budgets))} "
            f"--top-l {args.top_l}. Rerun `ciess search` with those --budgets / --top-l.",
            file=sys.stderr,
        )
        return 2
    if not args.overwrite:  # refuse an earlier table with other settings before retraining
        _merge_retrain(csv, pd.DataFrame({"budget": []}), args, write=False)
    session = SearchSession(
        config["env_id"], seed=config["seed"], env_kwargs=config.get("env_kwargs")
    )
    results = selective_retrain(
        log,
        session.data,
        session.final_step(args.batches),
        rule=FinalRetrainRule(top_l=args.top_l, fill_budget=args.fill_budget),
        budgets=args.budgets,
        seed=config["seed"],
        label=f"{config.get('agent', 'search')}, seed {config['seed']}",
        keep_model=args.save_models,
    )
    if args.save_models:
        _save_models(run / f"models{suffix}", args.budgets, results, config, args.overwrite)
    fields = ("sparsity", "candidates", "validation_quality", "batches")
    rows = [
        {"budget": c, **result_row(r, fields)} for c, r in zip(args.budgets, results, strict=True)
    ]
    table, kept = _merge_retrain(csv, pd.DataFrame(rows), args)
    text = markdown_table(table)
    print(text)
    if kept:
        print(f"(budgets {', '.join(map(str, kept))} are from an earlier retrain)")
    return 0


def _save_models(
    folder: Path, budgets: list[float], results: list, config: dict, overwrite: bool
) -> None:
    """Save each budget's retrained winner to ``folder/budget-<c>``, moving older ones aside.

    The models follow the table: a budget retrained again replaces its row, so its earlier
    model is moved to ``budget-<c>.old-<time>``; ``--overwrite`` moves the table aside, so the
    whole ``folder`` goes to ``models.old-<time>``. Nothing is deleted.
    """
    from agents.experiments.rundir import move_aside
    from agents.experiments.selective import save_kept_model

    if overwrite and folder.exists():
        print(f"ciess retrain: moved {folder} to {move_aside(folder)}", file=sys.stderr)

    info = {"env_id": config["env_id"], "env_kwargs": config.get("env_kwargs")}
    for c, result in zip(budgets, results, strict=True):
        if result is None:
            continue
        target = folder / f"budget-{c:.2f}"
        if target.exists():
            print(f"ciess retrain: moved {target} to {move_aside(target)}", file=sys.stderr)
        save_kept_model(result, target, info={**info, "budget": c})


def cmd_export(args: argparse.Namespace) -> int:
    """A budget's saved winner → a served-embeddings artefact, checked by a round trip."""
    from agents.experiments.rundir import RunDirError, move_aside, read_config
    from agents.experiments.selective import load_kept_model
    from agents.experiments.session import SearchSession
    from ciess_env.export import export, export_onnx, load
    from ciess_env.metrics import evaluate_scores

    run = Path(args.run)
    config = read_config(run, needs=("env_id", "seed"))
    name = f"budget-{args.budget:.2f}"
    suffix = "" if args.log == "budget_log" else f"_{args.log}"  # cmd_retrain's folders
    saved = run / f"models{suffix}" / name
    if not saved.is_dir():
        log = "" if args.log == "budget_log" else f" --log {args.log}"
        msg = (
            f"{run} has no saved model for budget {args.budget} ({saved}); run "
            f"`ciess retrain {run} --budgets {args.budget}{log}` first."
        )
        raise RunDirError(msg)
    tag = f"{name}{suffix.replace('_', '-')}-{args.format}"
    tag += "" if args.dtype == "float32" else f"-{args.dtype}"
    out = Path(args.output) if args.output else run / "export" / tag
    if out.exists() and any(out.iterdir()):
        if not args.overwrite:
            msg = f"{out} already holds an export; pass --overwrite to move it aside."
            raise RunDirError(msg)
        print(f"ciess export: moved {out} to {move_aside(out)}", file=sys.stderr)
    session = SearchSession(
        config["env_id"], seed=config["seed"], env_kwargs=config.get("env_kwargs")
    )
    merged = session.data.merge_train_validation()
    model, info = load_kept_model(saved, merged, **session.env.backbone_kwargs)
    meta = {"env_id": config["env_id"], "dataset": session.data.name, **info}
    export(model, out, format=args.format, dtype=args.dtype, metadata=meta)
    served = evaluate_scores(load(out).score, merged, "test")
    print(
        f"exported {saved} to {out} ({args.format}, {args.dtype}); test recall@20 "
        f"{served.recall(20):.4f} ndcg@20 {served.ndcg(20):.4f} from the artefact, "
        f"{info['test_recall_20']:.4f} / {info['test_ndcg_20']:.4f} recorded for the model"
    )
    if args.onnx:
        print(f"wrote the scorer as ONNX to {export_onnx(out, out / 'scorer.onnx')}")
    return 0


def _merge_retrain(
    csv: Path, table: Any, args: argparse.Namespace, *, write: bool = True
) -> tuple[Any, list]:
    """Add this retrain's budgets to an earlier one's table in ``csv`` (same settings only)."""
    from agents.experiments.comparison import markdown_table
    from agents.experiments.rundir import merge_results, move_aside, write_text_atomic

    md = csv.with_suffix(".md")
    if args.overwrite and write:
        for path in (csv, md):
            if path.exists():
                print(f"ciess retrain: moved {path} to {move_aside(path)}", file=sys.stderr)
    settings = {"top_l": args.top_l, "max_batches": args.batches, "fill_budget": args.fill_budget}
    table, kept = merge_results(csv, table, key="budget", settings=settings)
    if not write:
        return table, kept
    write_text_atomic(csv, table.to_csv(index=False))
    write_text_atomic(md, markdown_table(table) + "\n")
    return table, kept


def cmd_compare(args: argparse.Namespace) -> int:
    """Several agents on one env at the given budgets → markdown table + plot."""
    from agents.experiments.rundir import run_status

    out, env_kwargs = _start_run("compare", args)
    with run_status(out, "compare"):
        result = _compare(args, out, env_kwargs)
    print(result.to_markdown())
    print(f"\nresults, plots and logs in {out}/")
    return 0


def _compare(args: argparse.Namespace, out: Path, env_kwargs: dict[str, Any]) -> Any:
    """Run the comparison of ``ciess compare`` and write its files to ``out``."""
    from agents.experiments.comparison import compare

    result = compare(
        args.env_id,
        [a if ":" not in a else (a, _agent(a)) for a in args.agents],
        budgets=args.budgets,
        episodes=args.episodes,
        top_l=args.top_l,
        seed=args.seed,
        seeds=args.seeds,
        env_kwargs=env_kwargs,
        retrain_batches=args.batches,
        output_dir=out,
        fill_budget=args.fill_budget,
    )
    if result.curves:
        import pandas as pd

        from agents.experiments.plots import plot_search_curves

        curves = pd.concat([c.assign(agent=n) for n, c in result.curves.items()])
        _close(plot_search_curves(curves, out / "search_curves.png", title=args.env_id))
    return result


def cmd_demo(args: argparse.Namespace) -> int:
    """The main job on the offline synthetic default: search + comparison → table and plot."""
    argv = [
        "compare",
        DEMO_ENV,
        "--agents",
        "es",
        "mr",
        "mde",
        "td3",
        "rw-td3",
        "sac-structured",
        "--episodes",
        str(args.episodes),
        "--seed",
        str(args.seed),
        "--output",
        args.output,
        *(["--overwrite"] if args.overwrite else []),
    ]
    print(
        f"ciess demo: ES, MR, MDE, TD3, RandomWalkTD3 and SAC on the structured action "
        f"(sac-structured) on {DEMO_ENV} ({args.episodes} search episodes per RL agent, per "
        "budget for sac-structured)"
    )
    code = main(argv)
    if code == 0:
        print("\n".join(learning_lines(Path(args.output))))
    return code


def learning_lines(out: Path) -> list[str]:
    """Does each search's reward rise? First and last episode's mean reward, per curve file.

    The demo's answer to the first question about an RL environment (does a standard agent
    learn in it?), read from the ``curve_<agent>.csv`` files a comparison wrote.
    """
    import pandas as pd

    lines = [f"\nlearning (mean reward per episode; plot: {out / 'search_curves.png'}):"]
    for path in sorted(out.glob("curve_*.csv")):
        per_episode = pd.read_csv(path).groupby("episode")["reward"].mean()
        if len(per_episode) < 2:
            continue
        first, last = float(per_episode.iloc[0]), float(per_episode.iloc[-1])
        verdict = "rises" if last > first else "does not rise"
        lines.append(
            f"  {path.stem.removeprefix('curve_')}: {first:.4f} in episode 0 -> {last:.4f} in "
            f"episode {per_episode.index[-1]} ({verdict})"
        )
    lines.extend(LEARNING_NOTE)
    return lines


#: What the demo's one seed cannot show, and where the seeded measurements are (issue 33).
LEARNING_NOTE = (
    "  One seed's first-to-last change is within the noise of a step (each step trains a "
    "fresh model).",
    "  On this synthetic set sac-structured is not shown to learn: over 3 seeds its last "
    "episode is within noise of its first, and ES stays ahead of its final masks "
    "(benchmarks/results/structured_rl_synthetic_warm.md).",
    "  Where it learns: on ML-100K and ML-1M (-v1 step) SAC's validation reward rises "
    "after its warm start (docs/structured_action.md, 'Does it learn?').",
    "  sac-structured acts on 4 numbers whose every mask meets the budget "
    "(StructuredAction); td3 and rw-td3 size each user and item, and their per-entity "
    "noise scrambles the masks.",
)


def _close(fig) -> None:
    """Release a figure written to disk: main() may run many times in one process."""
    import matplotlib.pyplot as plt

    plt.close(fig)


def _start_run(command: str, args: argparse.Namespace, **extra: Any) -> tuple[Path, dict]:
    """Check the arguments, claim the run folder, write its ``config.json``.

    The folder is never reused silently (:func:`~agents.experiments.rundir.prepare_run_dir`).
    """
    from agents.experiments.rundir import prepare_run_dir

    env_kwargs = _kv(args.env_kw)
    _check_env(args.env_id, env_kwargs)
    out = Path(args.output)
    prepare_run_dir(out, command=command, overwrite=args.overwrite, resumable=command == "search")
    _write_config(out, command, args, env_kwargs=env_kwargs, **extra)
    return out, env_kwargs


def _check_env(env_id: str, env_kwargs: dict[str, Any]) -> None:
    """Refuse an unknown env id or an env argument the env does not take, before any work.

    gym.make would fail too, but later (after the run folder is made) and with a traceback.
    """
    import inspect

    import gymnasium as gym

    import ciess_env
    from ciess_env.data import canonical_name
    from ciess_env.env import EmbeddingSizeEnv, check_dataset_kwargs
    from ciess_env.errors import UnknownNameError, suggest

    if env_id not in gym.registry:
        import difflib

        close = difflib.get_close_matches(env_id, ciess_env.ENV_IDS, n=1, cutoff=0.6)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        msg = f"Unknown env id {env_id!r}.{hint} `ciess envs` lists every id."
        raise UnknownNameError(msg)
    known = set(inspect.signature(EmbeddingSizeEnv.__init__).parameters) - {"self"}
    for key in env_kwargs:
        if key not in known:
            raise suggest(key, known, what="env argument")
    dataset = env_kwargs.get("dataset", gym.spec(env_id).kwargs.get("dataset"))
    if "dataset_kwargs" in env_kwargs and isinstance(dataset, str):
        check_dataset_kwargs(canonical_name(dataset), env_kwargs["dataset_kwargs"])


def _check_search_agent(agent: str, agent_kwargs: dict[str, Any]) -> None:
    """Refuse an agent ``ciess search`` cannot run, or an argument it does not take."""
    from agents.registry import AGENT_SPECS, agent_spec, check_user_kwargs
    from ciess_env.errors import UnknownNameError

    try:
        agent_spec(agent, kinds=("rl",), what="agent for `ciess search`")
    except UnknownNameError as err:
        if agent not in AGENT_SPECS:
            raise
        msg = f"{err} Instead, run it with `ciess compare` (every kind runs there)."
        raise UnknownNameError(msg) from None
    check_user_kwargs(agent, agent_kwargs)


def _write_config(out: Path, command: str, args: argparse.Namespace, **extra: Any) -> None:
    from agents.experiments.rundir import write_json_atomic

    raw = {k: v for k, v in vars(args).items() if k != "func"}
    config = {"command": command, **raw, **extra, "argv": sys.argv, "versions": _versions()}
    write_json_atomic(out / "config.json", config)


# --------------------------------------------------------------------------- parser
def _output_arguments(s: argparse.ArgumentParser, default: str, *, resume: bool = False) -> None:
    """``--output`` and ``--overwrite``: a run folder is never reused silently."""
    how = "continue a stopped search with --resume, or " if resume else ""
    s.add_argument(
        "--output", default=default,
        help=f"run folder (default {default}); one that holds another run is refused: {how}see "
        "--overwrite",
    )  # fmt: skip
    s.add_argument(
        "--overwrite", action="store_true",
        help="if --output holds another run, move it aside to OUTPUT.old-<time> and start anew "
        "(nothing is ever deleted)",
    )  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``ciess`` (exposed for docs and tests).

    Help texts are plain text (no reST markup: ``--help`` prints them as they are), and every
    option that has a default shows it.
    """
    from agents.registry import agents_help, kinds_help

    p = _Parser(
        prog="ciess",
        description="The CIESS embedding-size search environments: list envs, manage data, "
        "search, retrain, export, compare, sweep, demo.",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    p.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("envs", help="list the registered env ids")
    s.set_defaults(func=cmd_envs)

    s = sub.add_parser("data", help="download / verify / describe a data set")
    s.add_argument(
        "action",
        choices=["download", "verify", "info"],
        help="download the official files, check their counts, or describe the data set",
    )
    s.add_argument("name", help="ml-1m, ml-100k, yelp2018 or synthetic")
    s.add_argument("--data-dir", default=None, help="default: $CIESS_DATA_DIR or the user cache")
    s.add_argument(
        "--split-seed", type=_seed, default=42, help="seed of the per-user split (default 42)"
    )
    s.set_defaults(func=cmd_data)

    budgets = dict(
        nargs="+",
        type=float,
        default=[0.8, 0.9, 0.95],
        help="target sparsities (default: 0.8 0.9 0.95)",
    )
    env_kw = dict(
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="env overrides, e.g. lam=0.2 retrain=fast batches_per_step=200",
    )
    batches = dict(
        type=_positive_int,
        default=None,
        help="cap on each early-stopped final retraining, in batches (default: the env's "
        "final-retraining budget)",
    )
    seed = dict(
        type=_seed, default=0, help="seed of the env, the agents and every retraining (default 0)"
    )
    top_l = dict(
        type=_positive_int,
        default=3,
        help="logged masks retrained per budget, the best on validation kept (default 3)",
    )
    fill = dict(
        action="store_true",
        help="grow each searched mask to meet its budget exactly before retraining it",
    )

    s = sub.add_parser(
        "search", help="train an agent on an env (saves log, model, curves)",
        formatter_class=_AgentsHelp,
    )  # fmt: skip
    s.add_argument(
        "env_id",
        nargs="?",
        default=None,
        help="a registered env id (`ciess envs`); omit with --resume",
    )
    s.add_argument(
        "--agent", default="rw-td3",
        help=f"an agent of kind rl ({agents_help('rl').removeprefix('rl: ')}), or "
        "module:builder for any agent (default rw-td3)",
    )  # fmt: skip
    s.add_argument(
        "--episodes", type=_positive_int, default=30, help="search episodes (default 30)"
    )
    s.add_argument("--seed", **seed)
    _output_arguments(s, "runs/search", resume=True)
    s.add_argument("--env-kw", **env_kw)
    s.add_argument(
        "--agent-kw", nargs="*", default=[], metavar="KEY=VALUE",
        help="agent constructor overrides, e.g. batch_size=64 learning_rate=0.01 (default: "
        "none, the paper's settings)",
    )  # fmt: skip
    s.add_argument(
        "--resume",
        metavar="RUN_DIR",
        default=None,
        help="continue the search checkpointed in RUN_DIR (its config.json decides the rest)",
    )
    s.add_argument(
        "--stop-after",
        type=_positive_int,
        default=None,
        metavar="K",
        help="end this sitting after K episodes (checkpoint kept; continue with --resume)",
    )
    s.add_argument(
        "--deterministic-masks",
        action="store_true",
        help="also score and log the policy's noise-free mask after every episode",
    )
    s.add_argument(
        "--budgets",
        **{
            **budgets,
            "help": "budgets whose top masks the log keeps for retrain (default 0.8 0.9 0.95)",
        },
    )
    s.add_argument(
        "--top-l", type=_positive_int, default=3,
        help="masks the log keeps per budget, the most retrain can use (default 3)",
    )  # fmt: skip
    s.set_defaults(func=cmd_search)

    s = sub.add_parser("retrain", help="selective retraining of a search run → Table 1")
    s.add_argument("run", help="a folder written by `ciess search`")
    s.add_argument("--budgets", **budgets)
    s.add_argument("--top-l", **top_l)
    s.add_argument("--batches", **batches)
    s.add_argument(
        "--log",
        choices=["budget_log", "deterministic_log"],
        default="budget_log",
        help="the explored masks (default) or the policy's noise-free ones",
    )
    s.add_argument("--fill-budget", **fill)
    s.add_argument(
        "--no-save-models", dest="save_models", action="store_false",
        help="do not save each budget's retrained winner to RUN/models/budget-<c>/ "
        "(model.safetensors + model.json; saved by default)",
    )  # fmt: skip
    s.add_argument(
        "--overwrite", action="store_true",
        help="move an earlier retrain's table aside (retrain.old-<time>.csv) instead of adding "
        "these budgets to it; needed when its --top-l/--batches/--fill-budget differ",
    )  # fmt: skip
    s.set_defaults(func=cmd_retrain)

    s = sub.add_parser("export", help="a retrained winner → a served-embeddings artefact")
    s.add_argument("run", help="a folder where `ciess retrain` saved models")
    s.add_argument(
        "--budget", type=float, required=True, help="the budget whose saved winner to export"
    )
    s.add_argument(
        "--format", choices=["buckets", "ragged"], default="buckets",
        help="a dense table per stored width, or values + offsets (default buckets)",
    )  # fmt: skip
    s.add_argument(
        "--dtype", choices=["float32", "int8"], default="float32",
        help="float32 rows, or int8 codes with a scale and bias per row (default float32)",
    )  # fmt: skip
    s.add_argument(
        "--log", choices=["budget_log", "deterministic_log"], default="budget_log",
        help="whose models: RUN/models (default) or RUN/models_deterministic_log",
    )  # fmt: skip
    s.add_argument("--onnx", action="store_true", help="also write scorer.onnx (onnx extra)")
    s.add_argument(
        "--output", default=None,
        help="artefact folder (default RUN/export/budget-<c>[-deterministic-log]-<format>"
        "[-int8])",
    )  # fmt: skip
    s.add_argument(
        "--overwrite", action="store_true",
        help="move an earlier artefact in the output folder aside instead of refusing it",
    )  # fmt: skip
    s.set_defaults(func=cmd_export)

    s = sub.add_parser(
        "compare", help="several agents on one env → table + plot",
        epilog=f"agent kinds:\n{kinds_help()}\nA Python module adds an agent with "
        "agents.registry.register_agent (docs/agents.md).",
        formatter_class=_AgentsHelp,
    )  # fmt: skip
    s.add_argument("env_id", help="a registered env id (see `ciess envs`)")
    s.add_argument(
        "--agents",
        nargs="+",
        default=["es", "mr", "mde", "td3", "rw-td3"],
        help=f"registered agents by kind ({agents_help()}), or module:builder for any agent "
        "(default es mr mde td3 rw-td3)",
    )
    s.add_argument("--budgets", **budgets)
    s.add_argument(
        "--episodes", type=_positive_int, default=30,
        help="search episodes per RL agent, per budget for one-budget agents (default 30)",
    )  # fmt: skip
    s.add_argument("--top-l", **top_l)
    s.add_argument("--seed", **seed)
    s.add_argument(
        "--seeds", type=_positive_int, default=1, metavar="N",
        help="run seeds SEED .. SEED+N-1 and report the mean per budget, with a 95 %% interval "
        "from 3 seeds on (default 1)",
    )  # fmt: skip
    s.add_argument("--batches", **batches)
    s.add_argument("--fill-budget", **fill)
    _output_arguments(s, "runs/compare")
    s.add_argument("--env-kw", **env_kw)
    s.set_defaults(func=cmd_compare)

    from agents.experiments.sweep import add_arguments as sweep_arguments
    from agents.experiments.sweep import cmd_sweep

    s = sub.add_parser("sweep", help="a grid of searches on Ray, resumable → mean ± CI tables")
    sweep_arguments(s)
    s.set_defaults(func=cmd_sweep)

    s = sub.add_parser("demo", help="the main job on the offline synthetic data set")
    s.add_argument(
        "--episodes",
        type=_positive_int,
        default=12,
        help="search episodes per RL agent (default 12)",
    )
    s.add_argument("--seed", **seed)
    _output_arguments(s, "runs/demo")
    s.set_defaults(func=cmd_demo)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ciess`` console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    from ciess_env.errors import CIESSError

    try:
        return int(args.func(args))
    except (CIESSError, argparse.ArgumentTypeError) as err:  # not Exception: bugs keep traces
        one_line = " ".join(str(err).split())
        print(f"ciess {args.command}: error: {one_line}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `ciess envs | head`: the reader left; not an error of ours
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
