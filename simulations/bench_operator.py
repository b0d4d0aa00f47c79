"""Benchmark of the operator T's options on digits: sampled steps and subspaces.

``python -m simulations.bench_operator`` grows the tree over 10 Dirichlet
clients (in-process, the protocol of the Flower strategy) for every pair of
``sample_size`` and ``subspace_dim`` and prints one Markdown row per pair: ARI
and NMI against the digit labels, leaves, rounds, and the time spent in the
clients' steps (the part of a round that runs on the clients' machines).
"""

import argparse
import time
import warnings

import numpy as np
from sklearn.datasets import load_digits
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from fedgmmtree import DataWarning, GMMTree, TreeGrower, client_step

from .partitions import partition


def grow_timed(parts, model: GMMTree):
    """Grow ``model``'s tree over ``parts``; return the grower and client seconds."""
    grower = TreeGrower(model.growth_params())
    caches = [{} for _ in parts]
    client_seconds = 0.0
    while not grower.done:
        replies = {}
        for key, X in enumerate(parts):
            if not grower.wants(key):
                continue
            instructions = grower.instructions(key)
            started = time.perf_counter()
            replies[key] = client_step(X, instructions, key, caches[key])
            client_seconds += time.perf_counter() - started
        grower.update(replies)
    return grower, client_seconds


def run(sample_sizes, subspace_dims, pca, seed, n_clients):
    """Yield one result dict per (sample_size, subspace_dim) pair."""
    X, y = load_digits(return_X_y=True)
    rows = partition(y, "dirichlet", n_clients, seed=seed, alpha=0.5)
    parts = [X[r] for r in rows]
    order = np.concatenate(rows)
    for sample_size in sample_sizes:
        for subspace_dim in subspace_dims:
            model = GMMTree(
                n_components_pca=pca,
                n_clusters=10,
                sample_size=sample_size,
                subspace_dim=subspace_dim,
                random_state=seed,
            )
            started = time.perf_counter()
            grower, client_seconds = grow_timed(parts, model)
            fitted = GMMTree.from_grower(grower, n_clusters=10)
            labels = fitted.predict(X[order])
            yield {
                "sample_size": sample_size,
                "subspace_dim": subspace_dim,
                "ari": adjusted_rand_score(y[order], labels),
                "nmi": normalized_mutual_info_score(y[order], labels),
                "leaves": fitted.n_leaves_,
                "rounds": grower.round,
                "client_s": client_seconds,
                "wall_s": time.perf_counter() - started,
            }


def main(argv=None) -> None:
    """Print the benchmark table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample-sizes", default="none,2000,500")
    parser.add_argument("--subspace-dims", default="none,16")
    parser.add_argument("--pca", type=int, default=0, help="0: raw 64 features")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--clients", type=int, default=10)
    args = parser.parse_args(argv)

    def parse(text):
        return [None if v == "none" else int(v) for v in text.split(",")]

    print(
        "| sample_size | subspace_dim | ARI | NMI | leaves | rounds "
        "| client compute (s) | wall (s) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        for r in run(
            parse(args.sample_sizes),
            parse(args.subspace_dims),
            args.pca or None,
            args.seed,
            args.clients,
        ):
            print(
                f"| {r['sample_size']} | {r['subspace_dim']} | {r['ari']:.3f} "
                f"| {r['nmi']:.3f} | {r['leaves']} | {r['rounds']} "
                f"| {r['client_s']:.1f} | {r['wall_s']:.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
