"""The Flower ServerApp that ``flwr run .`` starts.

It reads the tree's settings from ``context.run_config`` (the
``[tool.flwr.app.config]`` table of ``pyproject.toml``), grows the tree with
:class:`strategies.FedGMMTree`, prints a results table and writes
``results.json`` and ``model.npz`` to ``results-dir``. A run that stops with a
:class:`fedgmmtree.FederationError` (nodes that do not answer) writes
``results.json`` with the error and the tree so far as ``partial_tree.npz``,
then fails.
"""

import json
import time
from logging import ERROR
from pathlib import Path

import numpy as np
from flwr.app import Context
from flwr.serverapp import Grid, ServerApp
from flwr.supercore import log

from fedgmmtree import FederationError
from strategies import FedGMMTree

app = ServerApp()

# run-config key -> (GrowthParams / strategy argument, type, value meaning None);
# a key that the run config lacks keeps the strategy's default
RUN_CONFIG_KEYS = {
    "n-children": ("n_children", int, None),
    "covariance-type": ("covariance_type", str, None),
    "split-criterion": ("split_criterion", str, None),
    "min-samples-leaf": ("min_samples_leaf", int, None),
    "max-depth": ("max_depth", int, 0),
    "max-leaves": ("max_leaves", int, 0),
    "reg-covar": ("reg_covar", float, None),
    "tol": ("tol", float, None),
    "max-iter": ("max_iter", int, None),
    "n-init": ("n_init", int, None),
    "init-steps": ("init_steps", int, 0),
    "refine-leaves": ("refine_leaves", int, None),
    "standardize": ("standardize", bool, None),
    "pca-components": ("n_components_pca", int, 0),
    "random-state": ("random_state", int, None),
    "min-count": ("min_count", int, None),
    "noise-multiplier": ("noise_multiplier", float, None),
    "clip-norm": ("clip_norm", float, 0.0),
    "n-clusters": ("n_clusters", int, 0),
    "min-nodes": ("min_nodes", int, None),
    "min-replies": ("min_replies", float, None),
    "max-retries": ("max_retries", int, None),
    "node-wait-timeout": ("node_wait_timeout", float, None),
    "checkpoint-dir": ("checkpoint_dir", str, ""),
}


def strategy_from_run_config(run_config: dict) -> FedGMMTree:
    """Build the strategy from kebab-case run-config keys (0 means "no limit")."""
    kwargs = {}
    for key, (name, kind, none_value) in RUN_CONFIG_KEYS.items():
        if key not in run_config:
            continue
        value = _read_setting(key, run_config[key], kind)
        kwargs[name] = None if none_value is not None and value == none_value else value
    return FedGMMTree(**kwargs)


def _read_setting(key: str, raw, kind):
    """``raw`` as ``kind``, or a ValueError that names the run-config key."""
    expected = {int: "an integer", float: "a number", bool: "true or false"}
    try:
        if kind is int and isinstance(raw, float) and not raw.is_integer():
            raise ValueError
        if kind is bool and not isinstance(raw, bool):
            raise ValueError
        return kind(raw)
    except (TypeError, ValueError):
        raise ValueError(
            f"Run config {key} must be {expected.get(kind, kind.__name__)}, "
            f"but got {raw!r}."
        ) from None


def results_table(results: dict) -> str:
    """A small Markdown table of the headline results."""
    rows = [
        ("ARI", f"{results['ari']:.3f}"),
        ("NMI", f"{results['nmi']:.3f}"),
        ("leaves", str(results["leaves"])),
        ("clusters", str(results["clusters"])),
        ("depth", str(results["depth"])),
        ("rounds", str(results["rounds"])),
        ("held-out mean log-likelihood", f"{results['heldout_mean_loglik']:.3f}"),
        ("bytes sent to clients", f"{results['bytes_down']:,}"),
        ("bytes sent by clients", f"{results['bytes_up']:,}"),
        ("wall time (s)", f"{results['wall_time_s']:.1f}"),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [f"| {'metric':<{width}} | value |", f"|{'-' * (width + 2)}|-------|"]
    lines += [f"| {name:<{width}} | {value} |" for name, value in rows]
    return "\n".join(lines)


def run_strategy(
    grid: Grid, run_config: dict, strategy: FedGMMTree | None = None
) -> tuple[FedGMMTree, dict]:
    """Grow the tree on the grid and collect the results as a dict."""
    started = time.time()
    if strategy is None:
        strategy = strategy_from_run_config(run_config)
    result = strategy.start(
        grid,
        num_rounds=int(run_config.get("num-rounds", 1000)),
        timeout=float(run_config.get("round-timeout", 600.0)),
    )
    model = strategy.model()
    evaluation = next(iter(result.evaluate_metrics_clientapp.values()), {})
    results = {
        "status": "completed",
        "dataset": str(run_config.get("dataset", "")),
        "partition": str(run_config.get("partition", "")),
        "ari": float(evaluation.get("ari", float("nan"))),
        "nmi": float(evaluation.get("nmi", float("nan"))),
        "heldout_mean_loglik": float(
            evaluation.get("heldout_mean_loglik", float("nan"))
        ),
        "leaves": int(model.n_leaves_),
        "clusters": int(model.leaf_cluster_.max()) + 1,
        "depth": int(model.depth_),
        "rounds": int(model.n_rounds_),
        "bytes_down": int(strategy.bytes_down),
        "bytes_up": int(strategy.bytes_up),
        "wall_time_s": time.time() - started,
        "pca_components": strategy.params.n_components_pca,
        "history": [dict(r) for r in strategy.grower.history],
    }
    return strategy, results


RESULT_FILES = ("results.json", "model.npz", "partial_tree.npz")


def clear_results(results_dir: str) -> Path:
    """Remove an earlier run's result files from ``results_dir`` (nothing else)."""
    folder = Path(results_dir).expanduser().resolve()
    for name in RESULT_FILES:
        (folder / name).unlink(missing_ok=True)
    return folder


def write_results(results: dict, strategy: FedGMMTree, results_dir: str) -> Path:
    """Write ``results.json`` and ``model.npz`` into ``results_dir``."""
    folder = Path(results_dir).expanduser().resolve()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.json").write_text(json.dumps(results, indent=2))
    strategy.model().save(folder / "model.npz")
    return folder


def write_failure(error: Exception, results_dir: str) -> Path:
    """Write ``results.json`` for a run that failed before it could start."""
    folder = Path(results_dir).expanduser().resolve()
    folder.mkdir(parents=True, exist_ok=True)
    results = {"status": "failed", "error": str(error), "rounds": 0}
    (folder / "results.json").write_text(json.dumps(results, indent=2))
    return folder


def write_partial(strategy: FedGMMTree, error: Exception, results_dir: str) -> Path:
    """Write a failed run's error and tree so far into ``results_dir``.

    ``results.json`` holds the error and the rounds that completed;
    ``partial_tree.npz`` holds the tree's named arrays (read them with
    :meth:`fedgmmtree.Tree.from_arrays`), with the data transform if any.
    """
    folder = Path(results_dir).expanduser().resolve()
    folder.mkdir(parents=True, exist_ok=True)
    grower = strategy.grower
    results = {
        "status": "failed",
        "error": str(error),
        "rounds": int(grower.round),
        "bytes_down": int(strategy.bytes_down),
        "bytes_up": int(strategy.bytes_up),
        "history": [dict(r) for r in grower.history],
    }
    (folder / "results.json").write_text(json.dumps(results, indent=2))
    if grower.tree is not None:
        arrays = {**grower.tree.to_arrays(), **grower.transform_arrays()}
        np.savez(folder / "partial_tree.npz", **arrays)
    return folder


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Grow the tree, print the results table and write the results folder."""
    run_config = dict(context.run_config)
    results_dir = str(run_config.get("results-dir", "results"))
    clear_results(results_dir)
    try:
        strategy = strategy_from_run_config(run_config)
    except ValueError as error:
        folder = write_failure(error, results_dir)
        log(ERROR, "main: %s (results.json in %s says so)", error, folder)
        raise
    try:
        strategy, results = run_strategy(grid, run_config, strategy)
    except FederationError as error:
        folder = write_partial(strategy, error, results_dir)
        if strategy.grower.tree is None:
            log(ERROR, "main: the run failed before any tree; see %s", folder)
        else:
            log(ERROR, "main: the run failed; its tree so far is in %s", folder)
        raise
    folder = write_results(results, strategy, results_dir)
    reduced = results["pca_components"]
    note = (
        f"data reduced to {reduced} principal components computed federatedly "
        "from the root statistics"
        if reduced
        else "raw features"
    )
    print(f"\nFedGMMTree on {results['dataset']} ({note}):\n")
    print(results_table(results))
    print(f"\nResults written to {folder}\n")
