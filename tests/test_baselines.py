import logging

import numpy as np
import pytest
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score
from sklearn.mixture import GaussianMixture
from threadpoolctl import threadpool_limits

from fedgmmtree import FederationError
from fedgmmtree.client_app import make_client_app
from simulations.baselines import (
    REFERENCES,
    fit_reference,
)
from simulations.engine import run_federated
from simulations.partitions import partition
from strategies import Centroids, FedEM, FedGenGMM, FlatMixture, KFed
from strategies._baseline_client import fedgengmm_reply, kfed_reply
from strategies.fedgengmm import check_local_mixture
from strategies.kfed import check_centres


@pytest.fixture(autouse=True)
def _one_blas_thread():
    # scikit-learn's OpenMP and BLAS threads spin-wait on a busy 2-core machine,
    # which made these small fits 20 times slower
    with threadpool_limits(1):
        yield


def _blobs(n_samples=480, n_features=3, centers=4, std=0.6, seed=0):
    X, y = make_blobs(
        n_samples,
        n_features=n_features,
        centers=centers,
        cluster_std=std,
        center_box=(-12, 12),
        random_state=seed,
    )
    return X, y


def _split(X, y, n_clients, seed=0):
    order = np.random.default_rng(seed).permutation(X.shape[0])
    parts = np.array_split(order, n_clients)
    return [X[p] for p in parts], [y[p] for p in parts]


def _init(X, n_components, covariance_type, seed=0):
    rng = np.random.default_rng(seed)
    weights = rng.dirichlet(np.full(n_components, 5.0))
    means = X[rng.choice(X.shape[0], n_components, replace=False)] + 0.5
    variances = X.var(axis=0) * rng.uniform(0.5, 1.5, (n_components, X.shape[1]))
    if covariance_type == "diag":
        return weights, means, variances
    return weights, means, np.stack([np.diag(v) for v in variances])


def _arrays_equal(a, b):
    a, b = a.to_arrays(), b.to_arrays()
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


# --------------------------------------------------------------------- FedEM


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_fedem_equals_sklearn_em_from_same_init(covariance_type):
    X, y = _blobs(std=1.5, seed=1)
    weights, means, covariances = _init(X, 4, covariance_type)
    precisions = (
        1.0 / covariances if covariance_type == "diag" else np.linalg.inv(covariances)
    )
    reference = GaussianMixture(
        4,
        covariance_type=covariance_type,
        weights_init=weights,
        means_init=means,
        precisions_init=precisions,
        tol=1e-5,
        max_iter=500,
    ).fit(X)
    strategy = FedEM(
        4,
        covariance_type=covariance_type,
        weights_init=weights,
        means_init=means,
        covariances_init=covariances,
        tol=1e-5,
        max_iter=500,
    )
    parts, _ = _split(X, y, 5)
    run = run_federated(strategy, parts, reply_seed=3)

    assert strategy.n_iter_ == reference.n_iter_ > 3
    assert strategy.converged_
    assert run.rounds == reference.n_iter_
    np.testing.assert_allclose(run.model.weights_, reference.weights_, rtol=1e-8)
    np.testing.assert_allclose(run.model.means_, reference.means_, rtol=1e-8)
    np.testing.assert_allclose(
        run.model.covariances_, reference.covariances_, rtol=1e-8, atol=1e-12
    )
    np.testing.assert_allclose(strategy.lower_bound_, reference.lower_bound_, rtol=1e-8)


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_fedem_partition_equals_one_client(covariance_type):
    X, y = _blobs(seed=2)
    parts, _ = _split(X, y, 7, seed=4)
    pooled = [np.vstack(parts)]
    runs = [
        run_federated(
            FedEM(4, covariance_type=covariance_type, random_state=5),
            clients,
        )
        for clients in (parts, pooled)
    ]

    assert runs[0].rounds == runs[1].rounds
    for key, value in runs[0].model.to_arrays().items():
        np.testing.assert_allclose(
            value, runs[1].model.to_arrays()[key], rtol=1e-9, atol=1e-12
        )


def test_fedem_kfed_init_converges_to_the_blobs():
    X, y = _blobs(seed=3)
    parts, labels = _split(X, y, 6)
    strategy = FedEM(4, init="kfed", n_local_clusters=4, random_state=0)
    run = run_federated(strategy, parts, labels=labels, test_fraction=0.2)

    assert [r["step"] for r in strategy.history[:3]] == [
        "train.kfed",
        "train.flat_em",
        "train.flat_em",
    ]
    assert run.evaluation["ari"] == pytest.approx(1.0)
    assert np.isfinite(run.evaluation["heldout_mean_loglik"])


def test_fedem_stops_at_num_rounds_with_a_warning(caplog):
    X, y = _blobs(std=2.0, seed=4)
    parts, _ = _split(X, y, 3)
    strategy = FedEM(4, tol=0.0, random_state=0)
    caplog.set_level(logging.WARNING, logger="flwr")
    run = run_federated(strategy, parts, num_rounds=3)

    assert strategy.n_iter_ == 2 and not strategy.converged_
    assert run.model.means_.shape == (4, 3)
    assert "num_rounds=3 reached" in caplog.text
    with pytest.raises(FederationError, match="needs more rounds than num_rounds=1"):
        run_federated(FedEM(4, init="kfed"), parts, num_rounds=1)


def test_fedem_rejects_bad_settings():
    with pytest.raises(ValueError, match="init must be one of"):
        FedEM(3, init="random")
    with pytest.raises(ValueError, match="go together"):
        FedEM(3, means_init=np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"means_init must be a finite array"):
        FedEM(
            3,
            weights_init=np.full(3, 1 / 3),
            means_init=np.zeros((2, 2)),
            covariances_init=np.ones((3, 2, 2)),
        )
    with pytest.raises(ValueError, match="n_clusters must be an int >= 1"):
        FedEM(0)


# ------------------------------------------------------- all three baselines

STRATEGIES = {
    "fedem-gaussian": lambda: FedEM(4, random_state=1),
    "fedem-kfed": lambda: FedEM(4, init="kfed", covariance_type="diag"),
    "kfed": lambda: KFed(4, n_local_clusters=3, random_state=1),
    "kfed-local": lambda: KFed(4, assignment="local", random_state=1),
    "fedgengmm": lambda: FedGenGMM(4, max_local_components=3, random_state=1),
}


@pytest.mark.parametrize("name", STRATEGIES)
def test_strategies_are_independent_of_reply_order(name):
    X, y = _blobs(std=1.8, seed=5)
    parts, labels = _split(X, y, 5)
    runs = [
        run_federated(
            STRATEGIES[name](),
            parts,
            labels=labels,
            test_fraction=0.25,
            reply_seed=seed,
        )
        for seed in (None, 11, 12)
    ]

    for run in runs[1:]:
        assert _arrays_equal(run.model, runs[0].model)
        assert run.evaluation == pytest.approx(runs[0].evaluation, nan_ok=True)
        assert (run.bytes_down, run.bytes_up) == (runs[0].bytes_down, runs[0].bytes_up)


@pytest.mark.parametrize("assignment", ["nearest", "local"])
def test_kfed_recovers_blobs_under_pathological_partition(assignment):
    X, y = _blobs(n_samples=600, n_features=2, centers=6, std=0.3, seed=6)
    rows = partition(y, "pathological", 6, seed=0, classes_per_client=2)
    strategy = KFed(6, n_local_clusters=2, assignment=assignment, random_state=0)
    run = run_federated(strategy, [X[r] for r in rows], labels=[y[r] for r in rows])

    assert run.rounds == 1
    assert run.evaluation["ari"] == 1.0
    assert np.isnan(run.evaluation["heldout_mean_loglik"])
    assert sum(len(c) for c in strategy.local_centres_.values()) == 12


def test_kfed_fails_clearly_with_too_few_local_centres():
    X, y = _blobs(n_samples=90, seed=7)
    parts, _ = _split(X, y, 2)
    with pytest.raises(FederationError, match="fewer than n_clusters=4"):
        run_federated(KFed(4, n_local_clusters=1), parts)
    with pytest.raises(ValueError, match="assignment must be one of"):
        KFed(4, assignment="soft")


def test_fedgengmm_reaches_high_ari_on_separated_blobs():
    X, y = _blobs(n_samples=600, centers=5, std=0.5, seed=8)
    rows = partition(y, "dirichlet", 6, seed=0, alpha=0.5)
    strategy = FedGenGMM(5, random_state=0)
    run = run_federated(
        strategy,
        [X[r] for r in rows],
        labels=[y[r] for r in rows],
        test_fraction=0.2,
    )

    assert run.rounds == 1
    assert run.evaluation["ari"] > 0.95
    assert np.isfinite(run.evaluation["heldout_mean_loglik"])
    assert all(1 <= k <= 5 for k in strategy.local_components_.values())
    with pytest.raises(ValueError, match="n_synthetic must be an int >= 1"):
        FedGenGMM(5, n_synthetic=0)


def test_bytes_are_counted_each_way():
    X, y = _blobs(seed=9)
    parts, _ = _split(X, y, 4)
    strategy = FedEM(4, random_state=0)
    run = run_federated(strategy, parts)

    rounds = run.result.train_metrics_clientapp
    assert run.bytes_down == sum(int(m["bytes_down"]) for m in rounds.values())
    assert run.bytes_up == sum(int(m["bytes_up"]) for m in rounds.values())
    # an E-step reply holds at least nk, first and full second moments (float64)
    em_up = [int(m["bytes_up"]) for m in list(rounds.values())[1:]]
    assert min(em_up) > 4 * 8 * (4 + 4 * 3 + 4 * 3 * 3)
    kfed = KFed(4, random_state=0)
    run_federated(kfed, parts)
    assert 0 < kfed.bytes_down < kfed.bytes_up


@pytest.mark.parametrize("name", ["fedem-gaussian", "kfed", "fedgengmm"])
def test_a_failing_client_is_logged_and_left_out(name, caplog):
    X, y = _blobs(seed=10)
    parts, labels = _split(X, y, 5)

    def failing_app(loader):
        def load(context):
            if int(context.node_config["partition-id"]) == 2:
                raise RuntimeError("disk unreadable")
            return loader(context)

        return make_client_app(load)

    caplog.set_level(logging.WARNING, logger="flwr")
    strategy = STRATEGIES[name]()
    run = run_federated(strategy, parts, labels=labels, client_app_factory=failing_app)
    kept = [p for i, p in enumerate(parts) if i != 2]
    kept_labels = [p for i, p in enumerate(labels) if i != 2]
    without = run_federated(STRATEGIES[name](), kept, labels=kept_labels)

    assert "left out: RuntimeError: disk unreadable" in caplog.text
    assert {f["reason"] for f in strategy.failures} == {"RuntimeError: disk unreadable"}
    assert run.evaluation["clients"] == 4
    if isinstance(strategy, FedEM):
        # same sums in the same order: the federation without that client
        assert _arrays_equal(run.model, without.model)
        assert run.evaluation["ari"] == without.evaluation["ari"]
    else:
        # local seeds follow the client key, so compare who contributed
        local = getattr(strategy, "local_centres_", None)
        local = local if local is not None else strategy.local_components_
        assert sorted(local) == [0, 1, 3, 4]
    assert run.evaluation["ari"] > 0.9


def test_all_clients_failing_stops_with_a_clear_error():
    X, y = _blobs(seed=11)
    parts, _ = _split(X, y, 2)

    def broken_app(loader):
        def load(context):
            raise OSError("no data")

        return make_client_app(load)

    with pytest.raises(FederationError, match=r"Round 1 \(train.kfed\): no client"):
        run_federated(KFed(3), parts, client_app_factory=broken_app)


# ------------------------------------------------- client replies and models


def test_reply_checks_name_what_is_wrong():
    good = {"kfed.centres": np.zeros((2, 3)), "kfed.counts": np.ones(2)}
    assert check_centres(good, 3) is None
    assert "features" in check_centres(good, 4)
    nan = {**good, "kfed.centres": np.full((2, 3), np.nan)}
    assert check_centres(nan, 3) == "non-finite centres or counts"
    mixture = {
        "local.weights": np.array([1.0]),
        "local.means": np.zeros((1, 2)),
        "local.covariances": np.array([[[1.0, 2.0], [2.0, 1.0]]]),
        "local.n": np.array([5.0]),
    }
    assert check_local_mixture(mixture, "full") == (
        "a covariance is not positive definite"
    )


def test_local_fits_respect_the_client_size():
    X = np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 1.0]])
    config = {"n-local-clusters": 5, "n-init": 1, "random-state": 0}
    reply = kfed_reply(X, config, client=3)
    assert reply["kfed.centres"].shape == (2, 2)
    assert reply["kfed.counts"].tolist() in ([2.0, 1.0], [1.0, 2.0])
    config = {
        "max-components": 4,
        "covariance-type": "diag",
        "reg-covar": 1e-6,
        "n-init": 1,
        "random-state": 0,
    }
    assert fedgengmm_reply(X, config, client=3)["local.weights"].shape[0] <= 2
    assert fedgengmm_reply(X[:0], config, client=3)["local.n"][0] == 0.0


def test_flat_mixture_scores_like_sklearn():
    X, _ = _blobs(seed=12)
    reference = GaussianMixture(3, random_state=0).fit(X)
    model = FlatMixture.from_arrays(
        FlatMixture(
            reference.weights_, reference.means_, reference.covariances_
        ).to_arrays()
    )

    np.testing.assert_array_equal(model.predict(X), reference.predict(X))
    np.testing.assert_allclose(model.score_samples(X), reference.score_samples(X))
    np.testing.assert_allclose(model.predict_proba(X), reference.predict_proba(X))
    assert model.bic(X) == pytest.approx(reference.bic(X))


def test_centroids_label_by_nearest_centre():
    model = Centroids(np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]]), [1, 0, 1])
    X = np.array([[1.0, 1.0], [9.0, 0.0], [0.0, 8.0]])

    np.testing.assert_array_equal(model.predict(X), [1, 0, 1])
    np.testing.assert_allclose(model.score_samples(X), [-2.0, -1.0, -4.0])
    with pytest.raises(ValueError, match=r"Expected X of shape \(n_samples, 2\)"):
        model.predict(np.zeros((2, 3)))


# ------------------------------------------------------ centralised references


@pytest.mark.parametrize("name", REFERENCES)
def test_fit_reference_gives_labels_loglik_and_time(name):
    X, y = _blobs(n_samples=400, centers=4, std=0.5, seed=13)
    options = {"n_init": 1} if name == "gmmtree" else {}
    fit = fit_reference(name, X[:300], 4, X_test=X[300:], random_state=0, **options)

    assert fit.labels.shape == (300,) and fit.test_labels.shape == (100,)
    assert fit.wall_time_s > 0
    assert np.isnan(fit.heldout_mean_loglik) == (name == "bisecting_kmeans")
    assert adjusted_rand_score(y[:300], fit.labels) > 0.95


def test_fit_reference_and_driver_reject_unknown_names():
    X, _ = _blobs(n_samples=40, seed=14)
    with pytest.raises(ValueError, match="reference must be one of"):
        fit_reference("kmeans", X, 2)
    with pytest.raises(ValueError, match="engine must be one of"):
        run_federated(KFed(2), [X], engine="grpc")
