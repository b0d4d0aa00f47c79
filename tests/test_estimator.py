import numpy as np
import pytest
from scipy.cluster.hierarchy import is_valid_linkage
from sklearn.metrics import adjusted_rand_score
from sklearn.utils.estimator_checks import check_estimator

from fedgmmtree import GMMTree
from fedgmmtree._tree import CRITERION


def _hierarchical(seed=0):
    """27 clusters: 3 groups of 3 groups of 3 blobs, well separated at each level."""
    rng = np.random.default_rng(seed)
    top = np.array([[0, 0, 0], [100, 0, 0], [0, 100, 0]])
    mid = np.array([[0, 0, 0], [20, 0, 0], [0, 20, 0]])
    low = np.array([[0, 0, 0], [6, 0, 0], [0, 6, 0]])
    X, y = [], []
    for a in top:
        for b in mid:
            for c in low:
                X.append(rng.normal(a + b + c, 0.5, (60, 3)))
                y += [len(y) // 60] * 60
    return np.vstack(X), np.array(y)


def _blobs(seed=0, n=150):
    rng = np.random.default_rng(seed)
    centers = np.array([[0, 0], [10, 0], [0, 10]])
    X = np.vstack([rng.normal(c, 1.0, (n, 2)) for c in centers])
    return X, np.repeat(np.arange(3), n)


def test_gmmtree_passes_sklearn_estimator_checks():
    # every check runs; none is skipped but the array-API one, which needs
    # SCIPY_ARRAY_API set before scipy is imported
    results = check_estimator(GMMTree(), on_fail=None)
    failed = [r["check_name"] for r in results if r["status"] == "failed"]
    skipped = [r["check_name"] for r in results if r["status"] == "skipped"]
    assert failed == []
    assert skipped in ([], ["check_array_api_input"])


def test_gmmtree_finds_every_leaf_of_a_three_level_hierarchy_and_stops():
    X, y = _hierarchical()
    model = GMMTree().fit(X)
    assert adjusted_rand_score(y, model.labels_) == 1.0
    assert model.n_leaves_ == 27
    assert np.all(model.tree_.reason[model.leaves_] == CRITERION)


def test_gmmtree_fit_predict_equals_fit_then_predict():
    X, _ = _blobs()
    a = GMMTree(random_state=1).fit_predict(X)
    b = GMMTree(random_state=1).fit(X).predict(X)
    assert np.array_equal(a, b)


def test_gmmtree_same_seed_same_tree_bit_for_bit():
    X, _ = _blobs(seed=3)
    a = GMMTree(random_state=5).fit(X).tree_.to_arrays()
    b = GMMTree(random_state=5).fit(X).tree_.to_arrays()
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_gmmtree_em_never_lowers_a_nodes_log_likelihood():
    X, _ = _hierarchical(seed=1)
    model = GMMTree(n_init=3, tol=1e-6)
    model.fit(X)
    from fedgmmtree import TreeGrower, client_step

    grower = TreeGrower(model.growth_params())
    while not grower.done:
        grower.update({0: client_step(X, grower.instructions(0))})
    checked = 0
    for candidates in grower.em_logliks.values():
        for logliks in candidates:
            steps = np.diff(logliks)
            assert np.all(steps >= -1e-9 * np.abs(logliks[1:])), logliks
            checked += len(steps)
    assert checked > 50


def test_gmmtree_leaves_form_a_normalised_mixture():
    X, _ = _blobs()
    model = GMMTree().fit(X)
    assert model.weights_.sum() == pytest.approx(1.0)
    proba = model.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert np.all(np.isfinite(model.score_samples(X)))
    n = X.shape[0]
    assert model.bic(X) == pytest.approx(
        -2 * model.score(X) * n + model._n_parameters() * np.log(n)
    )
    assert model.aic(X) < model.bic(X)


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_gmmtree_n_clusters_merges_leaves_back_into_the_top_groups(seed):
    from simulations.datasets import make_hierarchical

    data = make_hierarchical(900, random_state=seed)  # 3 groups of 3 blobs, 2-D
    model = GMMTree(n_clusters=3).fit(data.X)
    assert model.n_leaves_ == 9
    assert is_valid_linkage(model.linkage_)
    assert model.linkage_.shape == (model.n_leaves_ - 1, 4)
    assert adjusted_rand_score(data.y_coarse, model.labels_) == 1.0
    assert model.predict_proba(data.X).shape == (data.X.shape[0], 3)


def test_merge_linkage_takes_the_pair_that_loses_least_log_likelihood():
    from fedgmmtree._merge import merge_linkage

    rng = np.random.default_rng(0)
    samples = [
        rng.normal(c, s, (n, 2))
        for c, s, n in [(0, 1, 50), (3, 1, 80), (20, 2, 60), (60, 1, 40)]
    ]
    counts = np.array([len(x) for x in samples], dtype=float)
    means = np.stack([x.mean(0) for x in samples])
    covs = np.stack([np.cov(x.T, bias=True) for x in samples])
    linkage = merge_linkage(counts, means, covs, "full")

    def loss(group):
        # independent check: log-likelihood of the samples under their own ML
        # Gaussians, minus that under one ML Gaussian of the union
        from scipy.stats import multivariate_normal

        def ll(x):
            return (
                multivariate_normal(x.mean(0), np.cov(x.T, bias=True)).logpdf(x).sum()
            )

        return sum(ll(samples[i]) for i in group) - ll(
            np.vstack([samples[i] for i in group])
        )

    pairs = [(a, b) for a in range(4) for b in range(a + 1, 4)]
    best = min(pairs, key=loss)
    assert tuple(linkage[0, :2].astype(int)) == best
    assert linkage[0, 2] == pytest.approx(loss(best), rel=1e-9)


def test_gmmtree_save_and_load_give_the_same_predictions(tmp_path):
    X, _ = _blobs()
    model = GMMTree(n_clusters=2).fit(X)
    model.save(tmp_path / "model.npz")
    loaded = GMMTree.load(tmp_path / "model.npz")
    assert np.array_equal(loaded.predict(X), model.predict(X))
    np.testing.assert_array_equal(loaded.score_samples(X), model.score_samples(X))


def test_gmmtree_standardize_reports_parameters_in_input_units():
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.normal(0, 1, 500) * 1e-3, rng.normal(5e3, 10, 500)])
    model = GMMTree(standardize=True).fit(X)
    assert model.n_leaves_ == 1
    np.testing.assert_allclose(model.means_[0], X.mean(axis=0), rtol=1e-9)
    np.testing.assert_allclose(model.covariances_[0], np.cov(X.T, bias=True), rtol=1e-3)
    # the density is that of the original units
    from scipy.stats import multivariate_normal

    exact = multivariate_normal(X.mean(axis=0), np.cov(X.T, bias=True)).logpdf(X)
    np.testing.assert_allclose(model.score(X), exact.mean(), rtol=1e-5)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"n_children": 1}, "n_children must be an int >= 2"),
        ({"covariance_type": "tied"}, "covariance_type must be one of"),
        ({"split_criterion": "gap"}, "split_criterion must be one of"),
        ({"max_iter": 0}, "max_iter must be an int >= 1"),
        ({"n_clusters": 0}, "n_clusters must be None or an int >= 1"),
    ],
)
def test_gmmtree_rejects_bad_parameters_with_the_allowed_values(params, match):
    X, _ = _blobs(n=20)
    with pytest.raises(ValueError, match=match):
        GMMTree(**params).fit(X)


@pytest.mark.parametrize(
    "name, value",
    [
        ("refine_leaves", 2.5),
        ("refine_leaves", True),
        ("refine_leaves", "5"),
        ("init_steps", 2.5),
        ("max_depth", 1.5),
        ("n_init", np.inf),
        ("n_clusters", 2.5),
        ("reg_covar", "small"),
        ("tol", np.nan),
    ],
)
def test_a_setting_of_the_wrong_type_is_refused_by_name(name, value):
    X, _ = _blobs()
    with pytest.raises(ValueError, match=f"{name} must be"):
        GMMTree(**{name: value}).fit(X)


def test_refine_leaves_on_a_single_leaf_costs_no_round():
    X, _ = _blobs()
    plain = GMMTree(max_depth=0).fit(X)
    refined = GMMTree(max_depth=0, refine_leaves=5).fit(X)
    assert refined.n_rounds_ == plain.n_rounds_
    np.testing.assert_array_equal(refined.tree_.means, plain.tree_.means)


def test_min_count_above_every_clients_rows_says_so():
    from fedgmmtree import FederationError, GrowthParams, TreeGrower, client_step

    X, _ = _blobs()
    grower = TreeGrower(GrowthParams(min_count=10_000))
    with pytest.raises(FederationError, match="min_count=10000"):
        grower.update({0: client_step(X, grower.instructions(0))})
