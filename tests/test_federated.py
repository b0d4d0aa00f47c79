"""Federated equals centralised, and the order replies arrive in does not matter."""

import numpy as np
import pytest
from sklearn.datasets import load_digits, load_iris

from fedgmmtree import GMMTree
from simulations.engine import simulate
from simulations.partitions import partition
from strategies import FedGMMTree

SETTINGS = {"n_components_pca": 10, "n_init": 2, "random_state": 7}


def _assert_same_tree(fed, central, rtol=1e-9):
    a, b = fed.tree_, central.tree_
    assert np.array_equal(a.parent, b.parent)
    assert np.array_equal(a.state, b.state)
    assert np.array_equal(a.reason, b.reason)
    for name in ("weight", "means", "covariances", "n_samples"):
        x, y = getattr(a, name), getattr(b, name)
        scale = np.abs(y).max()
        np.testing.assert_allclose(x, y, rtol=rtol, atol=rtol * scale, err_msg=name)


@pytest.fixture(scope="module")
def digits_parts():
    X, y = load_digits(return_X_y=True)
    parts = partition(y, "dirichlet", 5, seed=0, alpha=0.5)
    return X, y, parts


def test_federated_equals_centralised_in_process(digits_parts):
    X, y, parts = digits_parts
    model, history = simulate(
        [X[p] for p in parts], FedGMMTree(**SETTINGS), labels=[y[p] for p in parts]
    )
    central = GMMTree(**SETTINGS).fit(X)
    _assert_same_tree(model, central)
    assert model.n_leaves_ > 3
    # ARI over the pooled contingency counts equals ARI over the pooled labels
    from sklearn.metrics import adjusted_rand_score

    order = np.concatenate(parts)
    expected = adjusted_rand_score(y[order], central.predict(X[order]))
    assert history["evaluation"]["ari"] == pytest.approx(expected, abs=1e-12)


def test_federated_trees_are_bit_identical_whatever_the_reply_order(digits_parts):
    X, _, parts = digits_parts
    data = [X[p] for p in parts]
    first = simulate(data, FedGMMTree(**SETTINGS), reply_seed=1).model
    second = simulate(data, FedGMMTree(**SETTINGS), reply_seed=2).model
    a, b = first.tree_.to_arrays(), second.tree_.to_arrays()
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_client_with_no_work_gets_no_message(digits_parts):
    X, _, parts = digits_parts
    strategy = FedGMMTree(**SETTINGS)
    simulate([X[p] for p in parts], strategy)
    rounds = strategy.grower.history
    assert any(r["clients"] < len(parts) for r in rounds[1:])


@pytest.mark.slow
def test_federated_equals_centralised_on_flowers_ray_engine():
    X, y = load_iris(return_X_y=True)
    parts = partition(y, "dirichlet", 3, seed=1, alpha=1.0)
    settings = {"n_init": 2, "random_state": 3, "n_clusters": 3}
    model, history = simulate(
        [X[p] for p in parts],
        FedGMMTree(**settings),
        labels=[y[p] for p in parts],
        engine="ray",
    )
    central = GMMTree(**settings).fit(X)
    _assert_same_tree(model, central)
    assert history["evaluation"]["ari"] > 0.5
    assert history["bytes_down"] > 0 and history["bytes_up"] > 0
