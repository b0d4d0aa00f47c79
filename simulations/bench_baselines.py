"""Compare the federated baselines with centralised references on one data set.

Simulation layer, a command-line benchmark::

    python -m simulations.bench_baselines --dataset digits --clients 20 \
        --alpha 0.1 --pca 20

Every federated method runs in-process over the same Dirichlet label-skew
partition and the same train/test split per client; the centralised references
fit the pooled training rows. ARI and NMI are over all rows (training and
held-out), as the federated evaluation counts them; the log-likelihood is the
mean over held-out rows. PCA, when asked for, is fitted on the pooled data
before partitioning (a preprocessing shortcut of the benchmark, not a federated
step).
"""

import argparse
import json
import logging
import time

import numpy as np
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from strategies import FedEM, FedGenGMM, FedGMMTree, KFed

from .baselines import fit_reference
from .clients import split_client_data
from .datasets import load_dataset, preprocess
from .engine import run_federated
from .partitions import partition


def federated_methods(n_clusters: int, covariance_type: str, seed: int) -> dict:
    """Factories of the federated strategies compared, by name."""
    return {
        "FedEM (gaussian init)": lambda: FedEM(
            n_clusters, covariance_type=covariance_type, random_state=seed
        ),
        "FedEM (k-FED init)": lambda: FedEM(
            n_clusters, covariance_type=covariance_type, init="kfed", random_state=seed
        ),
        "k-FED (nearest centre)": lambda: KFed(n_clusters, random_state=seed),
        "k-FED (induced)": lambda: KFed(
            n_clusters, assignment="local", random_state=seed
        ),
        "FedGenGMM": lambda: FedGenGMM(
            n_clusters, covariance_type=covariance_type, random_state=seed
        ),
        "FedGMMTree": lambda: FedGMMTree(
            n_clusters=n_clusters, covariance_type=covariance_type, random_state=seed
        ),
    }


REFERENCES = {
    "GaussianMixture (central)": "gaussian_mixture",
    "BisectingKMeans (central)": "bisecting_kmeans",
    "GMMTree (central)": "gmmtree",
}


def federated_row(run) -> dict:
    """The metrics of one :class:`simulations.baselines.FederatedRun`."""
    return {
        "ari": run.evaluation.get("ari", float("nan")),
        "nmi": run.evaluation.get("nmi", float("nan")),
        "heldout_mean_loglik": run.evaluation["heldout_mean_loglik"],
        "rounds": run.rounds,
        "bytes_down": run.bytes_down,
        "bytes_up": run.bytes_up,
        "wall_time_s": run.wall_time_s,
    }


def reference_rows(
    references: dict,
    split: list,
    n_clusters: int,
    covariance_type: str,
    seed: int,
) -> list[dict]:
    """Fit centralised references on the pooled training rows of the clients.

    Parameters
    ----------
    references : dict of str to str
        Row name to the ``name`` of :func:`simulations.baselines.fit_reference`.
    split : list of ClientData
        Every client's train/test split, as the federated runs see it.
    n_clusters : int
    covariance_type : str
        For the Gaussian references.
    seed : int

    Returns
    -------
    rows : list of dict
        One per reference: method, ARI and NMI over all rows, held-out mean
        log-likelihood, zero rounds and bytes, wall time.
    """
    X_train = np.vstack([d.X_train for d in split])
    X_test = np.vstack([d.X_test for d in split])
    y_all = np.concatenate(
        [np.concatenate([d.y_train for d in split]), *[d.y_test for d in split]]
    )
    rows = []
    for name, reference in references.items():
        options = {}
        if reference != "bisecting_kmeans":
            options["covariance_type"] = covariance_type
        started = time.time()
        fit = fit_reference(
            reference,
            X_train,
            n_clusters,
            X_test=X_test,
            random_state=seed,
            **options,
        )
        predicted = np.concatenate([fit.labels, fit.test_labels])
        rows.append(
            {
                "method": name,
                "ari": float(adjusted_rand_score(y_all, predicted)),
                "nmi": float(normalized_mutual_info_score(y_all, predicted)),
                "heldout_mean_loglik": fit.heldout_mean_loglik,
                "rounds": 0,
                "bytes_down": 0,
                "bytes_up": 0,
                "wall_time_s": time.time() - started,
            }
        )
    return rows


def run(args: argparse.Namespace) -> list[dict]:
    """Run every method once; one row of results per method."""
    dataset = load_dataset(args.dataset, random_state=args.seed)
    X = preprocess(dataset.X, pca=args.pca or None, random_state=args.seed)
    y = dataset.y
    n_clusters = int(np.unique(y).size)
    rows_of = partition(y, "dirichlet", args.clients, args.seed, alpha=args.alpha)
    parts, labels = [X[r] for r in rows_of], [y[r] for r in rows_of]
    results = []
    for name, make in federated_methods(
        n_clusters, args.covariance_type, args.seed
    ).items():
        run = run_federated(
            make(),
            parts,
            labels=labels,
            test_fraction=args.test_fraction,
            seed=args.seed,
        )
        results.append({"method": name, **federated_row(run)})
    split = [
        split_client_data(p, lab, args.test_fraction, args.seed, client)
        for client, (p, lab) in enumerate(zip(parts, labels, strict=True))
    ]
    results.extend(
        reference_rows(REFERENCES, split, n_clusters, args.covariance_type, args.seed)
    )
    return results


def markdown(results: list[dict]) -> str:
    """The results as a Markdown table."""
    lines = [
        "| method | ARI | NMI | held-out loglik | rounds | bytes down | bytes up "
        "| wall s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        lines.append(
            f"| {r['method']} | {r['ari']:.3f} | {r['nmi']:.3f} | "
            f"{r['heldout_mean_loglik']:.2f} | {r['rounds']} | {r['bytes_down']:,} | "
            f"{r['bytes_up']:,} | {r['wall_time_s']:.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point: print the table, optionally write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--alpha", type=float, default=0.1)
    parser.add_argument("--pca", type=int, default=0, help="0: no projection")
    parser.add_argument("--covariance-type", default="full")
    parser.add_argument("--test-fraction", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default="", help="write the rows to this file")
    args = parser.parse_args(argv)
    logging.getLogger("flwr").setLevel(logging.ERROR)
    results = run(args)
    print(markdown(results))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"args": vars(args), "results": results}, handle, indent=2)


if __name__ == "__main__":
    main()
