"""Tests of simulations.clients: a client's rows for a run config."""

import numpy as np
import pytest

from simulations.clients import client_partition
from simulations.datasets import load_dataset


def run_config(**overrides):
    config = {
        "dataset": "wine",
        "partition": "dirichlet",
        "alpha": 1.0,
        "partition-seed": 3,
        "test-fraction": 0.25,
    }
    config.update(overrides)
    return config


def pooled(config, n_clients):
    parts = [client_partition(config, i, n_clients) for i in range(n_clients)]
    X = np.vstack([np.vstack([p.X_train, p.X_test]) for p in parts])
    y = np.concatenate([np.concatenate([p.y_train, p.y_test]) for p in parts])
    return parts, X, y


def test_clients_hold_every_row_once():
    wine = load_dataset("wine")
    parts, X, _ = pooled(run_config(), 4)

    assert sum(p.X_train.shape[0] + p.X_test.shape[0] for p in parts) == 178
    rows = {tuple(row) for row in X}
    assert rows == {tuple(row) for row in wine.X}


def test_data_set_is_partitioned_once_per_run_config():
    config = run_config(**{"partition-seed": 11})

    first = client_partition(config, 2, 5)
    assert client_partition(dict(config), 2, 5) is first


def test_pooled_preprocessing_standardises_and_projects():
    config = run_config(**{"pooled-standardize": True, "pooled-pca-components": 3})
    parts, X, _ = pooled(config, 3)

    assert X.shape == (178, 3)
    np.testing.assert_allclose(X.mean(axis=0), 0.0, atol=1e-10)


def test_pooled_standardisation_alone_keeps_every_column():
    _, X, _ = pooled(run_config(**{"pooled-standardize": True}), 3)

    assert X.shape == (178, 13)
    np.testing.assert_allclose(X.std(axis=0), 1.0, rtol=1e-10)


def test_partition_id_out_of_range_is_refused():
    with pytest.raises(
        ValueError, match=r"partition-id must be in \[0, 3\), but got 3"
    ):
        client_partition(run_config(), 3, 3)
