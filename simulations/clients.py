"""What one simulated client holds: its partition of a named data set.

Every client rebuilds the same seeded partition of the same data set and keeps
its own rows, so no data moves between processes; the ClientApp calls
:func:`client_partition` with its ``partition-id``.
"""

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .datasets import load_dataset, preprocess
from .partitions import feature_skew, partition

# run-config key -> (option of the partition scheme, schemes that take it)
_PARTITION_OPTIONS = {
    "alpha": ("alpha", {"dirichlet"}),
    "classes-per-client": ("classes_per_client", {"pathological"}),
    "power": ("power", {"quantity_skew"}),
    "strength": ("strength", {"feature_skew"}),
}


@dataclass(frozen=True)
class ClientData:
    """A client's rows, split into the rows it fits on and held-out rows."""

    X_train: np.ndarray
    y_train: np.ndarray | None
    X_test: np.ndarray
    y_test: np.ndarray | None


def train_test_rows(n_rows: int, test_fraction: float, seed: int, client: int):
    """Seeded split of ``n_rows`` local rows into train and test indices."""
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test-fraction must be in [0, 1), but got {test_fraction!r}.")
    order = np.random.default_rng([seed, client]).permutation(n_rows)
    n_test = int(round(test_fraction * n_rows))
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def split_client_data(X, y, test_fraction, seed, client) -> ClientData:
    """:class:`ClientData` from a client's rows."""
    train, test = train_test_rows(X.shape[0], test_fraction, seed, client)
    return ClientData(
        X[train],
        None if y is None else y[train],
        X[test],
        None if y is None else y[test],
    )


def client_partition(
    run_config: dict, partition_id: int, num_partitions: int
) -> ClientData:
    """The rows of client ``partition_id`` for a run config.

    The data set is loaded and partitioned once per process and run config;
    every later call for any client of the same run is a lookup.

    Parameters
    ----------
    run_config : dict
        Kebab-case run config: ``dataset``, ``data-dir``, ``n-samples``,
        ``partition`` and its options, ``partition-seed``, ``test-fraction``,
        and the centralised preprocessing ``pooled-standardize`` and
        ``pooled-pca-components`` (0 means off).
    partition_id : int
        Index of the client, in ``[0, num_partitions)``.
    num_partitions : int
        Number of clients.

    Returns
    -------
    data : ClientData
    """
    if not 0 <= int(partition_id) < int(num_partitions):
        raise ValueError(
            f"partition-id must be in [0, {num_partitions}), but got {partition_id}."
        )
    frozen = tuple((key, run_config.get(key)) for key in _DATA_KEYS)
    return _all_partitions(frozen, int(num_partitions))[int(partition_id)]


_DATA_KEYS = (
    "dataset",
    "data-dir",
    "n-samples",
    "partition",
    "partition-seed",
    "test-fraction",
    "pooled-standardize",
    "pooled-pca-components",
    *_PARTITION_OPTIONS,
)


@lru_cache(maxsize=4)
def _all_partitions(frozen: tuple, num_partitions: int) -> tuple[ClientData, ...]:
    config = dict(frozen)
    seed = int(config.get("partition-seed") or 0)
    n_samples = int(config.get("n-samples") or 0) or None
    dataset = load_dataset(
        str(config["dataset"]),
        data_dir=config.get("data-dir") or None,
        n_samples=n_samples,
        random_state=seed,
    )
    X, y = dataset.X, dataset.y

    # Centralised preprocessing sees every row: a reference, not federated.
    pooled_pca = int(config.get("pooled-pca-components") or 0)
    if config.get("pooled-standardize") or pooled_pca:
        X = preprocess(
            X,
            standardize=bool(config.get("pooled-standardize")),
            pca=pooled_pca or None,
            random_state=seed,
        )

    scheme = str(config.get("partition") or "iid")
    options = {
        name: config[key]
        for key, (name, schemes) in _PARTITION_OPTIONS.items()
        if scheme in schemes and config.get(key) is not None
    }
    if scheme == "feature_skew":
        parts, distortions = feature_skew(X, num_partitions, seed, **options)
        blocks = [d.apply(X[rows]) for rows, d in zip(parts, distortions, strict=True)]
    else:
        parts = partition(y, scheme, num_partitions, seed, **options)
        blocks = [X[rows] for rows in parts]
    test_fraction = float(config.get("test-fraction") or 0.0)
    return tuple(
        split_client_data(block, y[rows], test_fraction, seed, client)
        for client, (rows, block) in enumerate(zip(parts, blocks, strict=True))
    )
