"""``python -m simulations.benchmark``: every method, data set, partition and seed.

Simulation layer, a Hydra entry point with its own config, ``conf/benchmark.yaml``
(alternatives in ``conf/benchmark_grid/``)::

    python -m simulations.benchmark data_dir=../shared/data/clustering-data-v1
    python -m simulations.benchmark datasets=[wine:std] seeds=[0,1,2]
    python -m simulations.benchmark benchmark_grid=full data_dir=...

A data set is named as :func:`simulations.datasets.load_dataset` names it, with
an optional preprocessing suffix: ``digits:pca20`` (20 principal components),
``wine:std`` (standardised), ``gagolewski/uci/*:std`` (every set of a battery
under ``data_dir``). Gagolewski sets are skipped with a note without
``data_dir``. ``n_clusters`` is the true number of classes (label 0 of a
Gagolewski set marks noise and is not counted).

The federated methods run on the fast in-process driver
(:func:`simulations.engine.run_federated`); the centralised references fit
the pooled training rows of the same clients. One cell (``engine_check``) runs
every federated method on Flower's simulation engine too, so that the table
shows the two agree and what the engine costs. A setting that cannot be met
(too few rows or classes for the clients) is retried with half the clients and
noted; a cell that still fails is noted and skipped. Cells are run seed by seed,
and none starts after ``time_budget_s``; the notes say what was left out.

Writes ``benchmark.md``, ``benchmark.csv`` (mean and standard deviation over
seeds per data set x partition x method) and ``benchmark_runs.csv`` (one row per
fit) into the Hydra run folder, and prints the Markdown.
"""

import csv
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from logging import WARNING
from pathlib import Path

import hydra
import numpy as np
from flwr.supercore import log
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from threadpoolctl import threadpool_limits

from fedgmmtree import GMMTree
from strategies import FedGMMTree

from .bench_baselines import federated_methods, federated_row, reference_rows
from .clients import split_client_data
from .datasets import list_gagolewski, load_dataset, preprocess
from .engine import run_federated
from .partitions import partition

_logger = logging.getLogger(__name__)

# method key -> (row name, kind); kind "federated", "tree" or a reference name
METHODS = {
    "fedem": ("FedEM (gaussian init)", "federated"),
    "fedem_kfed": ("FedEM (k-FED init)", "federated"),
    "kfed": ("k-FED (nearest centre)", "federated"),
    "kfed_induced": ("k-FED (induced)", "federated"),
    "fedgengmm": ("FedGenGMM", "federated"),
    "fedgmmtree": ("FedGMMTree (n_clusters)", "tree"),
    "fedgmmtree_free": ("FedGMMTree (all leaves)", "tree"),
    "fedgmmtree_refine": ("FedGMMTree + refine_leaves (n_clusters)", "tree"),
    "fedgmmtree_grow_merge": ("FedGMMTree grown by AIC, merged (n_clusters)", "tree"),
    "fedgmmtree_n_init": ("FedGMMTree n_init=3, init_steps=5 (n_clusters)", "tree"),
    "gmm_central": ("GaussianMixture (central)", "gaussian_mixture"),
    "bkmeans_central": ("BisectingKMeans (central)", "bisecting_kmeans"),
    "gmmtree_central": ("GMMTree (central)", "gmmtree"),
}

# (key, column title, format) of the metrics averaged over seeds
METRICS: tuple[tuple[str, str, Callable[[float], str]], ...] = (
    ("ari", "ARI", lambda v: f"{v:.3f}"),
    ("nmi", "NMI", lambda v: f"{v:.3f}"),
    ("heldout_mean_loglik", "held-out loglik", lambda v: f"{v:.2f}"),
    ("rounds", "rounds", lambda v: f"{v:.0f}"),
    ("bytes_down", "MB down", lambda v: f"{v / 1e6:.3f}"),
    ("bytes_up", "MB up", lambda v: f"{v / 1e6:.3f}"),
    ("wall_time_s", "wall s", lambda v: f"{v:.2f}"),
)

PARTITIONS = {
    "iid": ("iid", {}),
    "dirichlet_1.0": ("dirichlet", {"alpha": 1.0}),
    "dirichlet_0.1": ("dirichlet", {"alpha": 0.1}),
    "pathological_2": ("pathological", {"classes_per_client": 2}),
}


@dataclass
class Cell:
    """One data set under one partition and seed, ready for the methods.

    Attributes
    ----------
    parts, labels : list of ndarray
        Every client's rows, shape (n_rows_client, n_features), and labels.
    n_clusters : int
    clients : int
        Clients actually used (fewer than asked where the setting needed it).
    note : str
        Why clients were dropped; empty otherwise.
    """

    parts: list
    labels: list
    n_clusters: int
    clients: int
    note: str = ""


@hydra.main(version_base="1.3", config_path="../conf", config_name="benchmark")
def main(cfg: DictConfig) -> None:
    """Hydra entry point: run the grid and write the tables to the run folder."""
    run_benchmark(cfg, HydraConfig.get().runtime.output_dir)


def run_benchmark(cfg: DictConfig, output_dir: str | Path) -> list[dict]:
    """Run the grid of ``cfg`` and write ``benchmark.md`` and ``benchmark.csv``.

    Parameters
    ----------
    cfg : DictConfig
        ``conf/benchmark.yaml`` composed.
    output_dir : str or Path

    Returns
    -------
    table : list of dict
        One row per data set x partition x method x engine, as in the CSV.
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    # the strategies log every round at INFO; a grid of fits keeps their warnings
    logging.getLogger("flwr").setLevel(logging.WARNING)
    logging.captureWarnings(True)
    unknown = sorted((set(cfg.methods) | set(cfg.remedies.methods)) - set(METHODS))
    if unknown:
        raise ValueError(f"methods must be among {sorted(METHODS)}, but got {unknown}.")
    started = time.time()
    datasets, notes = expand_datasets(list(cfg.datasets), cfg.data_dir)
    runs: list[dict] = []
    with threadpool_limits(1):
        for seed in cfg.seeds:
            for spec in datasets:
                for scheme in cfg.partitions:
                    if time.time() - started > cfg.time_budget_s:
                        notes.append(
                            f"time budget {cfg.time_budget_s:g} s spent: "
                            f"{spec} / {scheme} / seed {seed} not run"
                        )
                        continue
                    runs += run_cell(cfg, spec, scheme, int(seed), notes)
                    _write_runs(runs, output_dir / "benchmark_runs.csv")
        notes.append(f"grid wall time {time.time() - started:.0f} s")
        # the tables are written before the engine check too, which may be slow
        table = _write_tables(runs, notes, cfg, output_dir)
        if cfg.engine_check.enabled and cfg.engine_check.dataset:
            runs += _engine_check(cfg, notes)
            notes.append(f"total wall time {time.time() - started:.0f} s")
            table = _write_tables(runs, notes, cfg, output_dir)
    print((output_dir / "benchmark.md").read_text())
    print(
        f"\nbenchmark.md, benchmark.csv and benchmark_runs.csv are in "
        f"{output_dir.resolve()}"
    )
    return table


def _write_tables(
    runs: Sequence[dict], notes: Sequence[str], cfg: DictConfig, output_dir: Path
) -> list[dict]:
    table = summarize(runs)
    (output_dir / "benchmark.md").write_text(to_markdown(table, notes, cfg) + "\n")
    write_csv(table, output_dir / "benchmark.csv")
    _write_runs(runs, output_dir / "benchmark_runs.csv")
    return table


def expand_datasets(
    specs: Sequence[str], data_dir: str | None
) -> tuple[list[str], list[str]]:
    """Expand ``gagolewski/<battery>/*`` and drop Gagolewski sets without a folder.

    Parameters
    ----------
    specs : sequence of str
        Data set names, each with an optional ``:std`` or ``:pcaN`` suffix.
    data_dir : str or None

    Returns
    -------
    datasets : list of str
    notes : list of str
        One line per data set skipped.
    """
    datasets, notes = [], []
    for spec in specs:
        name, _, suffix = spec.partition(":")
        if not name.startswith("gagolewski/"):
            datasets.append(spec)
            continue
        if not data_dir:
            notes.append(f"{spec} skipped: no data_dir given")
            continue
        battery, _, set_name = name.removeprefix("gagolewski/").partition("/")
        if set_name != "*":
            datasets.append(spec)
            continue
        tail = f":{suffix}" if suffix else ""
        datasets += [
            f"gagolewski/{battery}/{n}{tail}"
            for n in list_gagolewski(data_dir, battery)
        ]
    return datasets, notes


def load_cell(
    spec: str,
    scheme: str,
    seed: int,
    clients: int,
    data_dir: str | None,
) -> Cell:
    """Load, preprocess and partition one data set for one seed.

    Parameters
    ----------
    spec : str
        Data set name with an optional ``:std`` or ``:pcaN`` suffix.
    scheme : str
        A key of ``PARTITIONS``.
    seed : int
    clients : int
        Clients asked for; halved (down to 2) while the partition cannot be made.
    data_dir : str or None

    Returns
    -------
    cell : Cell

    Raises
    ------
    ValueError
        If even 2 clients cannot be given the partition.
    """
    name, _, suffix = spec.partition(":")
    dataset = load_dataset(name, data_dir=data_dir or None, random_state=seed)
    pca = int(suffix.removeprefix("pca")) if suffix.startswith("pca") else None
    X = preprocess(dataset.X, standardize=suffix == "std", pca=pca, random_state=seed)
    y = dataset.y
    classes = np.unique(y)
    if name.startswith("gagolewski/"):
        classes = classes[classes != 0]
    if scheme not in PARTITIONS:
        raise ValueError(
            f"partitions must be among {sorted(PARTITIONS)}, but got {scheme!r}."
        )
    kind, options = PARTITIONS[scheme]
    asked, error = clients, None
    while clients >= 2:
        try:
            rows_of = partition(y, kind, clients, seed, **options)
        except ValueError as caught:
            error, clients = caught, clients // 2
            continue
        # a client needs a training row and a held-out row at least
        if min(len(r) for r in rows_of) >= 4 or clients == 2:
            note = "" if clients == asked else f"{clients} clients, not {asked}"
            return Cell(
                [X[r] for r in rows_of],
                [y[r] for r in rows_of],
                int(classes.size),
                clients,
                note,
            )
        clients //= 2
    raise ValueError(f"{spec} / {scheme}: no partition over 2 or more clients: {error}")


def make_strategy(key: str, n_clusters: int, cfg: DictConfig, seed: int):
    """A fresh federated strategy for the method ``key``."""
    if METHODS[key][1] == "tree":
        options = OmegaConf.to_container(cfg.fedgmmtree)
        remedies = cfg.remedies
        if key == "fedgmmtree_refine":
            options["refine_leaves"] = int(remedies.refine_leaves)
        elif key == "fedgmmtree_grow_merge":
            options["split_criterion"] = "aic"
            options["max_leaves"] = int(remedies.leaves_per_cluster) * n_clusters
        elif key == "fedgmmtree_n_init":
            options.update(n_init=3, init_steps=5)
        return FedGMMTree(
            n_clusters=None if key == "fedgmmtree_free" else n_clusters,
            covariance_type=cfg.covariance_type,
            random_state=seed,
            **options,
        )
    row_name = METHODS[key][0]
    return federated_methods(n_clusters, cfg.covariance_type, seed)[row_name]()


def run_cell(
    cfg: DictConfig,
    spec: str,
    scheme: str,
    seed: int,
    notes: list[str],
    *,
    engine: str = "inprocess",
    methods: Sequence[str] | None = None,
) -> list[dict]:
    """Fit every method of ``cfg.methods`` on one cell; one row per fit.

    A cell that cannot be partitioned, or a method that fails, adds a line to
    ``notes`` and gives no row.
    """
    base = {"dataset": spec, "partition": scheme, "seed": seed, "engine": engine}
    try:
        cell = load_cell(spec, scheme, seed, int(cfg.clients), cfg.data_dir)
    except (ValueError, FileNotFoundError) as error:
        notes.append(f"{spec} / {scheme} / seed {seed} skipped: {error}")
        return []
    if cell.note and seed == cfg.seeds[0] and engine == "inprocess":
        notes.append(f"{spec} / {scheme}: {cell.note}")
    _logger.info("Cell %s / %s / seed %d, %d clients", spec, scheme, seed, cell.clients)
    split = [
        split_client_data(p, lab, cfg.test_fraction, seed, client)
        for client, (p, lab) in enumerate(zip(cell.parts, cell.labels, strict=True))
    ]
    keys = list(methods if methods is not None else cfg.methods)
    if methods is None and spec in cfg.remedies.datasets:
        if scheme in cfg.remedies.partitions:
            keys += [m for m in cfg.remedies.methods if m not in keys]
    rows, tree_run = [], None
    for key in keys:
        name, kind = METHODS[key]
        row = {**base, "method": name, "clients": cell.clients}
        try:
            if key == "fedgmmtree_free" and tree_run is not None:
                rows.append({**_free_tree_row(tree_run, split), **row})
            elif kind in ("federated", "tree"):
                strategy = make_strategy(key, cell.n_clusters, cfg, seed)
                fit = run_federated(
                    strategy,
                    cell.parts,
                    labels=cell.labels,
                    test_fraction=cfg.test_fraction,
                    engine=engine,
                    seed=seed,
                )
                rows.append({**row, **federated_row(fit)})
                if key == "fedgmmtree" and "fedgmmtree_free" in keys:
                    tree_run = (strategy, rows[-1])
            else:
                (ref,) = reference_rows(
                    {name: kind}, split, cell.n_clusters, cfg.covariance_type, seed
                )
                rows.append({**row, **ref})
        except Exception as error:  # noqa: BLE001 - one failure must not end the grid
            log(WARNING, "%s on %s / %s failed: %s", name, spec, scheme, error)
            notes.append(
                f"{name} on {spec} / {scheme} / seed {seed} ({engine}) failed: "
                f"{type(error).__name__}: {str(error).splitlines()[0][:120]}"
            )
    return rows


def _free_tree_row(tree_run: tuple, split: list) -> dict:
    """The tree of a ``fedgmmtree`` run with all its leaves as clusters.

    ``n_clusters`` only merges leaves after the growth, so both rows share one
    federated growth (its rounds, bytes and wall time); the driver scores the
    unmerged tree on the same rows the clients would score it on.
    """
    strategy, grown = tree_run
    grown = {k: grown[k] for k in ("rounds", "bytes_down", "bytes_up", "wall_time_s")}
    model = GMMTree.from_grower(strategy.grower, n_clusters=None)
    X_all = np.vstack([d.X_train for d in split] + [d.X_test for d in split])
    y_all = np.concatenate([d.y_train for d in split] + [d.y_test for d in split])
    X_test = np.vstack([d.X_test for d in split])
    predicted = model.predict(X_all)
    loglik = float(np.mean(model.score_samples(X_test))) if len(X_test) else math.nan
    return {
        **grown,
        "ari": float(adjusted_rand_score(y_all, predicted)),
        "nmi": float(normalized_mutual_info_score(y_all, predicted)),
        "heldout_mean_loglik": loglik,
    }


def _engine_check(cfg: DictConfig, notes: list[str]) -> list[dict]:
    check = cfg.engine_check
    methods = [m for m in cfg.methods if METHODS[m][1] in ("federated", "tree")]
    rows = []
    for engine in ("inprocess", "ray"):
        rows += run_cell(
            cfg,
            check.dataset,
            check.partition,
            int(check.seed),
            notes,
            engine=engine,
            methods=methods,
        )
    notes.append(
        f"engine check: {check.dataset} / {check.partition} / seed {check.seed} "
        "run by the in-process driver (engine inprocess*) and by Flower's "
        "simulation engine (engine ray); wall time of ray includes the "
        "engine's start"
    )
    for row in rows:
        if row["engine"] == "inprocess":
            row["engine"] = "inprocess*"
    return rows


def summarize(runs: Sequence[dict]) -> list[dict]:
    """Mean and standard deviation over seeds per data set x partition x method.

    Parameters
    ----------
    runs : sequence of dict
        One per fit, with the keys of ``METRICS``.

    Returns
    -------
    table : list of dict
        ``dataset``, ``partition``, ``method``, ``engine``, ``clients``,
        ``seeds`` and ``<metric>_mean``, ``<metric>_sd`` (sd 0 for one seed).
    """
    groups: dict[tuple, list[dict]] = {}
    for run in runs:
        key = (run["dataset"], run["partition"], run["engine"], run["method"])
        groups.setdefault(key, []).append(run)
    method_order = [name for name, _ in METHODS.values()]
    table = []
    for key in sorted(
        groups,
        key=lambda k: (k[2] != "inprocess", k[0], k[1], method_order.index(k[3])),
    ):
        members = groups[key]
        row = dict(zip(("dataset", "partition", "engine", "method"), key, strict=True))
        row["clients"] = min(m["clients"] for m in members)
        row["seeds"] = len(members)
        for metric, _, _ in METRICS:
            values = np.array([m[metric] for m in members], dtype=float)
            finite = values[np.isfinite(values)]
            row[f"{metric}_mean"] = float(finite.mean()) if finite.size else math.nan
            row[f"{metric}_sd"] = float(finite.std()) if finite.size else math.nan
        table.append(row)
    return table


def to_markdown(table: Sequence[dict], notes: Sequence[str], cfg: DictConfig) -> str:
    """The summary table as Markdown (mean ± sd over seeds), with notes below."""
    heads = ["data set", "partition", "method", "engine", "clients", "seeds"]
    heads += [title for _, title, _ in METRICS]
    lines = ["| " + " | ".join(heads) + " |", "|" + " --- |" * len(heads)]
    for row in table:
        cells = [row["dataset"], row["partition"], row["method"], row["engine"]]
        cells += [str(row["clients"]), str(row["seeds"])]
        for metric, _, fmt in METRICS:
            mean, sd = row[f"{metric}_mean"], row[f"{metric}_sd"]
            cells.append("n/a" if math.isnan(mean) else f"{fmt(mean)} ± {fmt(sd)}")
        lines.append("| " + " | ".join(cells) + " |")
    settings = OmegaConf.to_container(cfg.fedgmmtree)
    lines += [
        "",
        f"Mean ± sd over seeds {list(cfg.seeds)}; {cfg.clients} clients asked; "
        f"covariance {cfg.covariance_type}; test fraction {cfg.test_fraction}; "
        f"FedGMMTree settings {settings}. ARI and NMI over all rows, log-likelihood "
        "over held-out rows; bytes of the training rounds.",
        "",
        "Notes:",
        "",
        *[f"- {note}" for note in notes],
    ]
    return "\n".join(lines)


def write_csv(table: Sequence[dict], path: str | Path) -> Path:
    """Write the summary table as CSV; returns the path."""
    path = Path(path)
    if not table:
        path.write_text("")
        return path
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows(table)
    return path


def _write_runs(runs: Sequence[dict], path: Path) -> None:
    # rewritten after every cell so that an interrupted grid keeps its fits
    write_csv(runs, path)


if __name__ == "__main__":
    main()
