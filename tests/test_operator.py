"""The options of the operator T: sampled steps, random subspaces, several inits,
soft routing, the normality rule and federated standardisation."""

import warnings

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from fedgmmtree import GMMTree
from fedgmmtree._tree import CRITERION, INTERNAL, SPLIT
from simulations.engine import simulate
from strategies import FedGMMTree


def _blobs(seed=0, n=200, d=3, spread=8.0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(0.0, spread, (4, d))
    X = np.vstack([rng.normal(c, 1.0, (n, d)) for c in centers])
    return X, np.repeat(np.arange(4), n)


def _parts(X, k=4, seed=0):
    order = np.random.default_rng(seed).permutation(X.shape[0])
    return [X[np.sort(p)] for p in np.array_split(order, k)]


def _same_tree(a, b, rtol=1e-9):
    a, b = a.tree_, b.tree_
    assert np.array_equal(a.parent, b.parent)
    assert np.array_equal(a.reason, b.reason)
    assert np.array_equal(a.dims, b.dims)
    for name in ("weight", "means", "covariances", "n_samples"):
        x, y = getattr(a, name), getattr(b, name)
        np.testing.assert_allclose(x, y, rtol=rtol, atol=rtol * np.abs(y).max())


OPTIONS = [
    {"subspace_dim": 2},
    {"subspace_dim": 0.5},
    {"routing": "soft"},
    {"split_criterion": "normality"},
    {"n_init": 4},
    {"n_init": 3, "init_steps": 2},
    {"refine_leaves": 5},
    {"standardize": True},
]


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: str(o))
def test_option_gives_the_same_tree_federated_and_centralised(options):
    X, _ = _blobs()
    settings = {"random_state": 11, **options}
    central = GMMTree(**settings).fit(X)
    model, _ = simulate(_parts(X), FedGMMTree(**settings), reply_seed=4)
    _same_tree(model, central)


def test_sample_size_one_client_federation_equals_centralised():
    X, _ = _blobs(seed=1)
    settings = {"random_state": 2, "sample_size": 150}
    central = GMMTree(**settings).fit(X)
    model, _ = simulate([X], FedGMMTree(**settings))
    _same_tree(model, central)


def test_sample_size_tree_does_not_depend_on_reply_order():
    X, y = _blobs(seed=2)
    settings = {"random_state": 5, "sample_size": 150}
    first = simulate(_parts(X), FedGMMTree(**settings), reply_seed=1).model
    second = simulate(_parts(X), FedGMMTree(**settings), reply_seed=2).model
    a, b = first.tree_.to_arrays(), second.tree_.to_arrays()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert adjusted_rand_score(y, first.predict(X)) > 0.9


def test_sample_size_uses_about_m_rows_per_step():
    X, _ = _blobs(seed=3, n=1000)
    model = GMMTree(sample_size=200, random_state=0, n_init=1)
    from fedgmmtree import TreeGrower, client_step

    grower = TreeGrower(model.growth_params())
    grower.update({0: client_step(X, grower.instructions(0))})
    reply = client_step(X, grower.instructions(0))
    nk = reply["node.0.0.nk"].sum()
    assert 150 < nk < 250
    assert reply["node.0.count"][0] == X.shape[0]


def test_defaults_equal_the_plain_tree_bit_for_bit():
    X, _ = _blobs(seed=4)
    plain = GMMTree(n_init=1, random_state=0).fit(X).tree_.to_arrays()
    explicit = (
        GMMTree(
            n_init=1,
            random_state=0,
            sample_size=None,
            subspace_dim=None,
            routing="hard",
        )
        .fit(X)
        .tree_.to_arrays()
    )
    assert all(np.array_equal(plain[k], explicit[k]) for k in plain)


def test_subspace_children_are_estimated_on_every_feature():
    X, y = _blobs(seed=5, d=6)
    model = GMMTree(subspace_dim=2, random_state=3).fit(X)
    tree = model.tree_
    split = np.flatnonzero(tree.reason == SPLIT)
    assert split.size >= 1
    assert np.all(tree.dims[split].sum(axis=1) == 2)
    # every child's covariance has variance in every feature, not only the subspace
    children = np.flatnonzero(np.isin(tree.parent, split))
    variances = np.einsum("kii->ki", tree.covariances[children])
    assert np.all(variances > 0.1)
    assert adjusted_rand_score(y, model.predict(X)) > 0.9


def test_normality_keeps_one_gaussian_blob_as_one_leaf():
    rng = np.random.default_rng(0)
    X = rng.normal(0.0, 1.0, (5000, 5)) @ rng.normal(size=(5, 5))
    model = GMMTree(split_criterion="normality", random_state=0).fit(X)
    assert model.n_leaves_ == 1
    assert model.tree_.reason[0] == CRITERION


def test_normality_splits_two_blobs_four_spreads_apart_once():
    rng = np.random.default_rng(1)
    X = np.vstack([rng.normal(0.0, 1.0, (2500, 5)), rng.normal(0.0, 1.0, (2500, 5))])
    X[2500:, 0] += 4.0
    y = np.repeat([0, 1], 2500)
    model = GMMTree(split_criterion="normality", random_state=0).fit(X)
    assert model.n_leaves_ == 2
    assert model.depth_ == 1
    assert adjusted_rand_score(y, model.predict(X)) > 0.9


def test_standardize_finds_clusters_on_a_feature_a_million_times_smaller():
    rng = np.random.default_rng(2)
    n = 400
    y = np.repeat([0, 1], n // 2)
    X = np.column_stack([y + rng.normal(0.0, 0.01, n), rng.normal(1e6, 1e3, n) * 1.0])
    X[:, 0] *= 1e-3  # the separating feature: spread 1e-5 against the noise's 1e3
    model = GMMTree(standardize=True, random_state=0).fit(X)
    assert adjusted_rand_score(y, model.predict(X)) == 1.0


def test_soft_routing_weights_sum_to_one_and_predict_follows_them():
    from fedgmmtree._client import route_soft

    X, y = _blobs(seed=6)
    model = GMMTree(routing="soft", random_state=0).fit(X)
    weights = route_soft(X, model.tree_)
    total = np.sum([w for w in weights.values()], axis=0)
    np.testing.assert_allclose(total, 1.0, atol=1e-9)
    assert adjusted_rand_score(y, model.predict(X)) > 0.95


@pytest.mark.parametrize(
    "options",
    [{}, {"routing": "soft"}, {"split_criterion": "normality", "subspace_dim": 2}],
    ids=lambda o: str(o),
)
def test_reading_rows_in_small_blocks_gives_the_same_tree(options, monkeypatch):
    import fedgmmtree._gaussian as gaussian

    X, _ = _blobs(n=400)
    whole = GMMTree(random_state=0, **options).fit(X)
    monkeypatch.setattr(gaussian, "BLOCK_BYTES", 1)  # 256-row blocks
    blocked = GMMTree(random_state=0, **options).fit(X)
    _same_tree(blocked, whole)


def test_init_steps_runs_only_the_leading_candidate_past_its_short_run():
    from fedgmmtree import GrowthParams, TreeGrower, client_step

    X, _ = _blobs(seed=2)
    grower = TreeGrower(GrowthParams(n_init=3, init_steps=2, tol=0.0, max_iter=20))
    while not grower.done:
        grower.update({0: client_step(X, grower.instructions(0))})
    assert grower.em_logliks
    longest = 0
    for logliks in grower.em_logliks.values():
        leader = max(range(3), key=lambda c: (logliks[c][1], -c))
        others = [len(c) for i, c in enumerate(logliks) if i != leader]
        assert others == [2, 2]
        longest = max(longest, len(logliks[leader]))
    assert longest > 2


def test_init_steps_must_be_positive():
    with pytest.raises(ValueError, match="init_steps"):
        GMMTree(init_steps=0).fit(_blobs()[0])


def test_refine_leaves_raises_the_leaves_likelihood_and_keeps_a_hierarchy():
    from fedgmmtree import GrowthParams, TreeGrower, client_step

    X, _ = _blobs(seed=4, spread=3.0)
    grown = GMMTree(random_state=0).fit(X)
    refined = GMMTree(random_state=0, refine_leaves=30, tol=0.0).fit(X)
    assert refined.n_rounds_ > grown.n_rounds_
    assert refined.score(X) > grown.score(X)

    grower = TreeGrower(GrowthParams(random_state=0, refine_leaves=30, tol=0.0))
    while not grower.done:
        grower.update({0: client_step(X, grower.instructions(0))})
    assert len(grower.leaf_logliks) >= 2
    assert np.all(np.diff(grower.leaf_logliks) >= -1e-10)
    tree = refined.tree_
    np.testing.assert_allclose(tree.means[0], X.mean(axis=0), atol=1e-9)
    assert tree.n_samples[0] == pytest.approx(X.shape[0])
    internal = np.flatnonzero(tree.state == INTERNAL)
    assert internal.size > 0
    for node in internal:
        children = tree.children(node)
        assert tree.weight[children].sum() == pytest.approx(1.0)
        assert tree.n_samples[children].sum() == pytest.approx(tree.n_samples[node])


def test_refine_leaves_must_not_be_negative():
    with pytest.raises(ValueError, match="refine_leaves"):
        GMMTree(refine_leaves=-1).fit(_blobs()[0])


def test_refine_round_leaves_out_a_malformed_reply_and_names_it():
    from fedgmmtree import GrowthParams, TreeGrower, client_step

    X, _ = _blobs(seed=5)
    params = GrowthParams(random_state=0, refine_leaves=3)
    alone, spoiled = TreeGrower(params), TreeGrower(params)
    while not alone.done:
        alone.update({0: client_step(X, alone.instructions(0))})
        replies = {0: client_step(X, spoiled.instructions(0))}
        if spoiled.refining:
            bad = client_step(X[:50], spoiled.instructions(1))
            bad["leaves.nk"] = bad["leaves.nk"][:-1]
            replies[1] = bad
        spoiled.update(replies)
    assert spoiled.done
    assert any(r.client == 1 for r in spoiled.rejections)
    np.testing.assert_array_equal(spoiled.tree.means, alone.tree.means)


def test_a_grower_saved_during_leaf_refinement_resumes_bit_for_bit():
    from fedgmmtree import GrowthParams, TreeGrower, client_step

    X, _ = _blobs(seed=6)
    params = GrowthParams(random_state=0, refine_leaves=4, tol=0.0)
    straight = TreeGrower(params)
    while not straight.done:
        straight.update({0: client_step(X, straight.instructions(0))})
    grower = TreeGrower(params)
    while not grower.refining:
        grower.update({0: client_step(X, grower.instructions(0))})
    grower.update({0: client_step(X, grower.instructions(0))})
    resumed = TreeGrower.from_state_arrays(grower.state_arrays())
    while not resumed.done:
        resumed.update({0: client_step(X, resumed.instructions(0))})
    assert resumed.leaf_logliks == straight.leaf_logliks
    a, b = resumed.tree.to_arrays(), straight.tree.to_arrays()
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_refine_leaves_leaves_a_leaf_without_mass_as_it_is():
    from fedgmmtree import GrowthParams, TreeGrower, client_step

    X, _ = _blobs(seed=7)
    grower = TreeGrower(GrowthParams(random_state=0, refine_leaves=5, tol=0.0))
    while not grower.refining:
        grower.update({0: client_step(X, grower.instructions(0))})
    tree = grower.tree
    # as if no client had data in one leaf: its weight goes to its sibling
    empty = int(tree.leaves()[0])
    sibling = [int(c) for c in tree.children(tree.parent[empty]) if c != empty][0]
    tree.weight[empty], tree.weight[sibling] = 0.0, 1.0
    tree.n_samples[empty] = 0.0
    kept_mean = tree.means[empty].copy()
    while not grower.done:
        grower.update({0: client_step(X, grower.instructions(0))})
    assert len(grower.leaf_logliks) == 5
    np.testing.assert_array_equal(grower.tree.means[empty], kept_mean)
    assert grower.tree.n_samples[empty] == 0.0
    assert np.all(np.isfinite(grower.tree.means))
    assert np.all(np.isfinite(grower.tree.covariances))


def test_refine_round_withholds_leaves_where_a_client_has_too_few_samples():
    from fedgmmtree import GrowthParams, TreeGrower, client_step

    X, _ = _blobs(seed=8)
    grower = TreeGrower(GrowthParams(random_state=0, refine_leaves=2, min_count=5))
    while not grower.refining:
        grower.update({0: client_step(X, grower.instructions(0))})
    full = client_step(X, grower.instructions(0))
    nk = full["leaves.nk"]
    small = nk.argmin()
    # a client with only 3 rows of one leaf and all rows of the others
    own = np.flatnonzero(grower.tree.route(X) == grower.tree.leaves()[small])[:3]
    rest = np.flatnonzero(grower.tree.route(X) != grower.tree.leaves()[small])
    reply = client_step(X[np.concatenate([own, rest])], grower.instructions(0))
    assert reply["leaves.nk"][small] == 0.0
    assert np.all(reply["leaves.first"][small] == 0.0)
    assert np.all(reply["leaves.nk"][np.arange(nk.size) != small] > 0)


def test_full_covariances_that_make_large_messages_advise_diag():
    X = np.random.default_rng(0).normal(size=(30, 1200))
    with pytest.warns(UserWarning, match="covariance_type='diag'"):
        GMMTree(max_depth=0).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        GMMTree(max_depth=0, covariance_type="diag").fit(X)
        GMMTree(max_depth=0).fit(X[:, :100])
