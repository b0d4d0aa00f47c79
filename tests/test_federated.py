"""Federated equals centralised, and the order replies arrive in does not matter."""

import numpy as np
import pytest
from sklearn.datasets import load_iris

from fedgmmtree import GMMTree
from simulations.datasets import make_hierarchical
from simulations.engine import simulate
from simulations.partitions import partition
from strategies import FedGMMTree

SETTINGS = {"n_init": 2, "random_state": 7}


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
def mixture_parts():
    # 3 groups of 3 blobs, 900 rows, split with label skew: some clients hold
    # no row of some groups
    data = make_hierarchical(900, n_features=3, random_state=4)
    parts = partition(data.y, "pathological", 5, seed=0, classes_per_client=2)
    return data.X, data.y, parts


@pytest.fixture(scope="module")
def federated_run(mixture_parts):
    X, y, parts = mixture_parts
    strategy = FedGMMTree(**SETTINGS)
    model, history = simulate(
        [X[p] for p in parts], strategy, labels=[y[p] for p in parts], reply_seed=1
    )
    return strategy, model, history


def test_federated_equals_centralised_in_process(mixture_parts, federated_run):
    X, y, parts = mixture_parts
    _, model, history = federated_run
    central = GMMTree(**SETTINGS).fit(X)
    _assert_same_tree(model, central)
    assert model.n_leaves_ >= 9
    # ARI over the pooled contingency counts equals ARI over the pooled labels
    from sklearn.metrics import adjusted_rand_score

    order = np.concatenate(parts)
    expected = adjusted_rand_score(y[order], central.predict(X[order]))
    assert history["evaluation"]["ari"] == pytest.approx(expected, abs=1e-12)


def test_federated_trees_are_bit_identical_whatever_the_reply_order(
    mixture_parts, federated_run
):
    X, _, parts = mixture_parts
    first = federated_run[1]
    second = simulate([X[p] for p in parts], FedGMMTree(**SETTINGS), reply_seed=2)
    a, b = first.tree_.to_arrays(), second.model.tree_.to_arrays()
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_client_with_no_work_gets_no_message(federated_run):
    strategy = federated_run[0]
    rounds = strategy.grower.history
    assert any(r["clients"] < 5 for r in rounds[1:])


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
