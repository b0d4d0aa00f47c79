"""``python -m simulations.run``: federated fits over a grid of Hydra configs.

Composes ``conf/config.yaml`` (groups ``dataset``, ``partition``,
``strategy``, ``simulation``, and ``experiment`` files), partitions the data
set over simulated clients and grows the tree on Flower's Ray-backed
simulation engine (``simulation.engine=inprocess`` runs the same code without
Ray). Every run writes into its Hydra output directory:

- ``results.json``: ARI, NMI, held-out mean log-likelihood, BIC (on the
  clients' training rows), leaves, depth, rounds, bytes each way, wall time
  (``total_time_s`` with the engine's start, ``wall_time_s`` of the strategy
  alone), the overrides, the run config and the history of rounds;
- ``model.npz``: the fitted :class:`fedgmmtree.GMMTree`
  (``GMMTree.load(path)``);
- ``tree.png``, ``projection.png``, ``loglik.png``;
- ``.hydra/`` (the composed config and the overrides) and ``run.log``.

A run that stops because too few clients answer writes ``results.json`` with
``"status": "failed"`` and the error (and the tree so far as
``partial_tree.npz``), and the sweep goes on.

Examples
--------
::

    python -m simulations.run dataset=iris partition=dirichlet partition.alpha=0.3
    python -m simulations.run -m partition=iid,dirichlet partition.alpha=0.1,1.0
    python -m simulations.run -m experiment=label_skew
    python -m simulations.summarize multirun/<date>/<time>
"""

import json
import logging
import math
import time
from collections.abc import Sequence
from logging import ERROR, INFO
from pathlib import Path

import hydra
import numpy as np
from flwr.supercore import log
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from fedgmmtree import FederationError
from fedgmmtree.server_app import (
    results_table,
    strategy_from_run_config,
    write_partial,
    write_results,
)

from .clients import client_partition
from .config import Engine, register_schema, to_run_config
from .faults import ClientFaults
from .federation import run_federation
from .plots import plot_loglik, plot_projection, plot_tree
from .progress import RoundProgress, use_root_handlers

register_schema()


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> float:
    """Hydra entry point: one run per composed config; returns its ARI."""
    hydra_cfg = HydraConfig.get()
    results = run(cfg, hydra_cfg.runtime.output_dir, hydra_cfg.overrides.task)
    return float(results.get("ari", math.nan))


def run(cfg: DictConfig, output_dir: str | Path, overrides: Sequence[str] = ()) -> dict:
    """Grow one tree for a composed config and write the run's folder.

    Parameters
    ----------
    cfg : DictConfig
        A config composed against :class:`simulations.config.Config`.
    output_dir : str or Path
        Folder the results, the model and the plots go to.
    overrides : sequence of str, default=()
        The command-line overrides that made this run, recorded in
        ``results.json``.

    Returns
    -------
    results : dict
        What ``results.json`` holds.
    """
    use_root_handlers()
    logging.captureWarnings(True)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    sim = cfg.simulation
    run_config = to_run_config(cfg, str(output_dir))
    faults = ClientFaults(float(sim.dropout), float(sim.late), int(sim.seed))
    extras = {
        "overrides": list(overrides),
        "engine": sim.engine.value,
        "num_clients": int(sim.num_clients),
        "dropout": float(sim.dropout),
        "late": float(sim.late),
        "run_config": run_config,
    }
    log(INFO, "Run: %s", describe(cfg))

    started = time.time()
    strategy = strategy_from_run_config(run_config)
    try:
        with RoundProgress(strategy, disable=None if sim.progress else True):
            strategy, results = run_federation(
                run_config,
                engine=sim.engine.value,
                num_clients=int(sim.num_clients),
                faults=faults,
                backend_config=_backend_config(cfg),
                strategy=strategy,
            )
    except FederationError as error:
        write_partial(strategy, error, str(output_dir))
        results = _merge_json(output_dir / "results.json", extras)
        log(ERROR, "Run failed, partial results in %s: %s", output_dir, error)
        return results

    # The clients' training rows, pooled here in the driver for the BIC and the
    # plots only; the federation itself never pools them.
    model = strategy.model()
    clients = [
        client_partition(run_config, i, int(sim.num_clients))
        for i in range(int(sim.num_clients))
    ]
    X = np.vstack([c.X_train for c in clients])
    y = np.concatenate([c.y_train for c in clients])
    results.update(extras)
    results["bic"] = float(model.bic(X))
    results["total_time_s"] = time.time() - started
    write_results(results, strategy, str(output_dir))

    if cfg.plots:
        title = describe(cfg)
        plot_tree(model, output_dir / "tree.png", title=f"Tree of Gaussians: {title}")
        plot_projection(
            model,
            X,
            output_dir / "projection.png",
            y=y,
            title=f"Training rows of all clients, by leaf and by label: {title}",
            random_state=int(sim.seed),
        )
        plot_loglik(
            results["history"],
            output_dir / "loglik.png",
            heldout_mean_loglik=results["heldout_mean_loglik"],
            title=f"Mean log-likelihood by round: {title}",
        )
    log(INFO, "Results in %s:\n%s", output_dir, results_table(results))
    return results


def describe(cfg: DictConfig) -> str:
    """One line naming the data set, partition, clients and engine of a run."""
    part = cfg.partition
    options = {
        "dirichlet": f"alpha={part.alpha:g}",
        "pathological": f"{part.classes_per_client} classes per client",
        "quantity_skew": f"power={part.power:g}",
        "feature_skew": f"strength={part.strength:g}",
    }.get(part.scheme.value)
    scheme = f"{part.scheme.value} ({options})" if options else part.scheme.value
    faults = ""
    if cfg.simulation.dropout or cfg.simulation.late:
        faults = f", dropout {cfg.simulation.dropout:g}, late {cfg.simulation.late:g}"
    return (
        f"{cfg.dataset.name}, {scheme}, {cfg.simulation.num_clients} clients"
        f"{faults}, {cfg.simulation.engine.value}"
    )


def _backend_config(cfg: DictConfig) -> dict | None:
    if cfg.simulation.engine != Engine.ray:
        return None
    resources = OmegaConf.to_container(cfg.simulation.client_resources)
    return {"client_resources": resources}


def _merge_json(path: Path, extras: dict) -> dict:
    results = json.loads(path.read_text())
    results.update(extras)
    path.write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
