"""The cases of ``../shared/cases/README.md``: inputs that broke GMM or FL systems.

One or more tests per case, each with its own data, named ``test_cNN_...``. A
case names a kind of fault, so most tests cover more than the one example:
other values, the federated run as well as the centralised one, diag as well as
full covariances.
"""

import logging
import re

import numpy as np
import pytest
from flwr.app import Message
from flwr.clientapp import ClientApp
from sklearn.metrics import adjusted_rand_score
from threadpoolctl import threadpool_limits

from fedgmmtree import (
    DataWarning,
    FederationError,
    GMMTree,
    GrowthParams,
    TreeGrower,
    client_step,
)
from fedgmmtree._gaussian import gaussian_from_moments
from fedgmmtree._tree import (
    CHILD_TOO_SMALL,
    COLLAPSED,
    CRITERION,
    EMPTY,
    EMPTY_CHILD,
    INTERNAL,
    LEAF,
    SPLIT,
    TOO_FEW_POINTS,
)
from fedgmmtree.client_app import make_client_app
from simulations.engine import ArrayClients, InProcessGrid, simulate
from strategies import FedGMMTree
from strategies.fedgmmtree import from_array_record

FAST = {"n_init": 1, "tol": 1e-2, "random_state": 0}


@pytest.fixture(autouse=True, scope="module")
def _one_blas_thread():
    with threadpool_limits(1):
        yield


def _fed(parts, **settings):
    """A federated fit over in-memory partitions, in-process."""
    return simulate(parts, FedGMMTree(**{**FAST, **settings}), timeout=5.0).model


def _named_value(message: str) -> np.ndarray:
    found = re.search(r"duplicated points at \[([^\]]*)\]", message)
    return np.array(found.group(1).split(), dtype=float)


# ---------------------------------------------------------------------------- C01


@pytest.mark.parametrize(("value", "covariance_type"), [(0.0, "full"), (3.25, "diag")])
def test_c01_split_onto_duplicated_points_is_refused_and_named(value, covariance_type):
    rng = np.random.default_rng(1)
    X = np.concatenate([np.full(150, value), rng.normal(value + 5.0, 1.0, 50)])[:, None]

    with pytest.warns(DataWarning, match="collapsed onto duplicated points") as seen:
        model = GMMTree(covariance_type=covariance_type).fit(X)

    assert model.n_leaves_ == 1
    assert model.tree_.reason[0] == COLLAPSED
    messages = [str(w.message) for w in seen if "duplicated" in str(w.message)]
    np.testing.assert_allclose(_named_value(messages[0]), [value], atol=1e-9)
    assert np.all(np.isfinite(model.score_samples(X)))


def test_c01_duplicated_points_spread_over_clients_are_refused_federated_too():
    rng = np.random.default_rng(2)
    X = np.concatenate([np.zeros(150), rng.normal(5.0, 1.0, 50)])[:, None]
    parts = [X[0::3], X[1::3], X[2::3]]

    with pytest.warns(DataWarning, match="collapsed onto duplicated points"):
        model = _fed(parts)

    assert model.n_leaves_ == 1
    assert model.tree_.reason[0] == COLLAPSED


def test_c01_constant_column_is_named_and_regularised_not_a_reason_to_stop():
    rng = np.random.default_rng(3)
    blobs = np.vstack([rng.normal(0, 1, (100, 2)), rng.normal(10, 1, (100, 2))])
    X = np.column_stack([blobs, np.full(200, 7.0)])
    y = np.repeat([0, 1], 100)

    with pytest.warns(DataWarning, match=r"Feature 2 is constant \(value 7\)"):
        model = GMMTree().fit(X)

    assert COLLAPSED not in model.tree_.reason
    assert adjusted_rand_score(y, model.labels_) == 1.0
    one_gaussian = np.column_stack([rng.normal(0, 1, (200, 2)), np.full(200, 7.0)])
    with pytest.warns(DataWarning, match=r"Feature 2 is constant"):
        single = GMMTree().fit(one_gaussian)
    assert single.n_leaves_ == 1
    assert single.tree_.reason[0] == CRITERION


# ---------------------------------------------------------------------------- C02


def test_c02_node_with_fewer_points_than_children_becomes_a_leaf_with_reason():
    X = np.array([[0.0], [1.0], [5.0]])

    model = GMMTree(n_children=4).fit(X)

    assert model.n_leaves_ == 1
    assert model.tree_.reason[0] == TOO_FEW_POINTS
    fed = _fed([X[:2], X[2:]], n_children=4)
    assert fed.tree_.reason[0] == TOO_FEW_POINTS


def test_c02_one_point_is_a_leaf_and_no_exception_escapes():
    with pytest.warns(DataWarning, match="constant"):
        model = GMMTree().fit([[1.0, 2.0]])

    assert model.n_leaves_ == 1
    assert model.tree_.reason[0] == TOO_FEW_POINTS
    np.testing.assert_allclose(model.means_, [[1.0, 2.0]])
    assert np.all(np.isfinite(model.covariances_))


def test_c02_node_that_no_point_reaches_is_marked_empty_not_nan():
    rng = np.random.default_rng(4)
    X = rng.normal(0, 1, (40, 2))
    grower = TreeGrower(GrowthParams(**FAST))
    grower.update({0: client_step(X, grower.instructions(0))})

    # the client's rows are gone by the next round: nothing reaches node 0
    grower.update({0: client_step(X[:0], grower.instructions(0))})

    assert grower.done
    assert grower.tree.state[0] == LEAF
    assert grower.tree.reason[0] == EMPTY
    assert grower.tree.n_samples[0] == 0.0
    assert np.all(np.isfinite(grower.tree.means))


# ---------------------------------------------------------------------------- C03


@pytest.mark.parametrize(("n", "d"), [(20, 10), (7, 3), (31, 15)])
def test_c03_too_few_points_for_the_dimension_stay_one_leaf(n, d):
    rng = np.random.default_rng(n)
    X = rng.normal(0, 1, (n, d))

    model = GMMTree().fit(X)

    assert model.n_leaves_ == 1
    assert model.tree_.reason[0] == TOO_FEW_POINTS


def test_c03_child_with_no_more_points_than_dimensions_is_refused_though_likelier():
    rng = np.random.default_rng(5)
    d = 10
    # two far clusters of 10 and 12 points in 10-D: the split is far likelier,
    # but one child would hold no more points than there are dimensions
    X = np.vstack([rng.normal(0, 1, (10, d)), rng.normal(50, 1, (12, d))])

    model = GMMTree(n_init=1).fit(X)

    assert model.n_leaves_ == 1
    assert model.tree_.reason[0] == CHILD_TOO_SMALL


def test_c03_every_accepted_child_holds_more_points_than_dimensions():
    rng = np.random.default_rng(6)
    n_split = 0
    for d in (2, 4, 6):
        X = np.vstack([rng.normal(c, 1, (4 * d, d)) for c in (0, 30, 60)])
        tree = GMMTree().fit(X).tree_
        children = np.flatnonzero(tree.parent >= 0)
        assert np.all(tree.n_samples[children] >= d + 1)
        n_split += children.size
    assert n_split > 0


# ---------------------------------------------------------------------------- C04


def test_c04_float32_far_apart_points_get_the_exact_variance():
    X = np.array([[9999.0], [0.0]], dtype=np.float32)

    model = GMMTree().fit(X)

    exact = 9999.0**2 / 4.0
    np.testing.assert_allclose(model.covariances_[0, 0, 0] - 1e-6, exact, rtol=1e-12)
    np.testing.assert_allclose(model.means_[0], [4999.5], rtol=1e-15)


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_c04_large_offset_keeps_variances_right_to_1e9(covariance_type):
    rng = np.random.default_rng(7)
    X = 1e6 + rng.normal(0, 1, (1000, 3))
    centred = X - 1e6  # exact: the offset is a power-of-ten float near the data
    exact = np.var(centred - centred.mean(axis=0), axis=0)
    reg = 1e-6

    central = GMMTree(covariance_type=covariance_type).fit(X)
    fed = _fed([X[:100], X[100:600], X[600:]], covariance_type=covariance_type)

    for model in (central, fed):
        assert model.n_leaves_ == 1
        cov = model.covariances_[0]
        variances = np.diag(cov) if cov.ndim == 2 else cov
        np.testing.assert_allclose(variances - reg, exact, rtol=1e-9)
        assert np.all(variances > 0)


def test_c04_tiny_spread_on_a_huge_offset_never_gives_negative_variance():
    rng = np.random.default_rng(8)
    X = 1e8 + rng.normal(0, 1e-3, (500, 2))
    parts = [X[:250] + 0.0, X[250:]]

    model = _fed(parts)

    variances = np.diag(model.covariances_[0]) - 1e-6
    exact = np.var(X - X.mean(axis=0), axis=0)
    assert np.all(model.covariances_[0].diagonal() > 0)
    # 1e8 carries only ~1e-8 of absolute precision: the error is that of the data
    np.testing.assert_allclose(variances, exact, rtol=1e-4)


# ---------------------------------------------------------------------------- C05

BAD_VALUES = [
    (np.nan, r"Input X contains NaN on client 1 in column 1"),
    (np.inf, r"Input X contains infinity on client 1 in column 1"),
    (1e200, r"Input X holds 1e\+200 on client 1 in column 1"),
]


@pytest.mark.parametrize(("value", "match"), BAD_VALUES)
def test_c05_bad_value_on_a_client_stops_the_run_before_any_round(value, match):
    rng = np.random.default_rng(9)
    parts = [rng.normal(0, 1, (100, 2)) for _ in range(3)]
    parts[1][17, 1] = value

    strategy = FedGMMTree(**FAST, max_retries=1)
    with pytest.raises(FederationError, match=match):
        simulate(parts, strategy, timeout=5.0)

    assert strategy.grower.round == 0
    assert strategy.grower.tree is None


@pytest.mark.parametrize(("value", "match"), BAD_VALUES)
def test_c05_bad_value_is_named_by_gmmtree_fit(value, match):
    rng = np.random.default_rng(10)
    X = rng.normal(0, 1, (100, 2))
    X[17, 1] = value

    with pytest.raises(ValueError, match=match.replace(" on client 1", "")):
        GMMTree().fit(X)


def test_c05_client_with_bad_data_left_out_never_gives_a_nan_model():
    rng = np.random.default_rng(11)
    parts = [rng.normal(0, 1, (100, 2)) for _ in range(3)]
    parts[2][0, 0] = np.nan

    model = _fed(parts, min_replies=0.6)

    assert model.tree_.n_samples[0] == 200
    assert np.all(np.isfinite(model.means_))
    assert np.all(np.isfinite(model.covariances_))


# ---------------------------------------------------------------------------- C06


def test_c06_standardize_finds_clusters_hidden_by_a_huge_noisy_feature():
    rng = np.random.default_rng(12)
    y = np.repeat([0, 1], 200)
    X = np.column_stack([rng.normal(0, 0.01, 400) + y, rng.normal(1e6, 1e3, 400)])
    # four clients of unequal size, each a band of feature 1 with its own spread
    # and its own mix of the two clusters
    order = np.argsort(X[:, 1] + 3e3 * y)
    parts = np.split(order, [40, 160, 230])

    central = GMMTree(standardize=True, n_init=1, random_state=0).fit(X)
    fed = _fed([X[p] for p in parts], standardize=True)

    assert adjusted_rand_score(y, central.labels_) == 1.0
    assert adjusted_rand_score(y, fed.predict(X)) == 1.0
    np.testing.assert_allclose(fed.means_, central.means_, rtol=1e-9)


# ---------------------------------------------------------------------------- C07


class _RecordingGrid(InProcessGrid):
    """Keeps every message it sends."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.sent = []

    def send_and_receive(self, messages, *, timeout=None):
        messages = list(messages)
        self.sent.append(messages)
        return super().send_and_receive(messages, timeout=timeout)


@pytest.fixture(scope="module")
def c07_run():
    rng = np.random.default_rng(0)

    def blob(center, n=40):
        return rng.normal(center, 0.5, (n, 2))

    # client 0 alone holds the left group, which splits twice: node 7 is its own
    parts = [
        np.vstack([blob((-40, -3), 30), blob((-40, 3), 30), blob((-40, 20))]),
        np.vstack([blob((40, 0)), blob((0, 40))]),
        np.vstack([blob((40, 0)), blob((0, 40))]),
    ]
    grid = _RecordingGrid(
        make_client_app(ArrayClients(parts)),
        [{"partition-id": i, "num-partitions": 3} for i in range(3)],
    )
    strategy = FedGMMTree(**FAST)
    strategy.start(grid, timeout=5.0)
    rounds = [m for m in grid.sent if m and "instructions" in m[0].content]
    return strategy, rounds


def test_c07_messages_never_share_a_mutable_record(c07_run):
    strategy, rounds = c07_run

    for messages in rounds:
        contents = [m.content for m in messages]
        for name in ("instructions", "config"):
            records = [c[name] for c in contents]
            assert len({id(r) for r in records}) == len(records)
        contents[0]["config"]["server-round"] = -1
        assert all(c["config"]["server-round"] != -1 for c in contents[1:])


def test_c07_only_the_client_holding_a_node_is_sent_it(c07_run):
    strategy, rounds = c07_run
    tree = strategy.grower.tree
    assert tree.n_nodes > 7 and tree.parent[7] > 0

    carriers = set()
    for messages in rounds:
        for msg in messages:
            nodes = from_array_record(msg.content["instructions"]).get("task.nodes")
            if nodes is not None and 7 in nodes.tolist():
                carriers.add(strategy.client_of_node[msg.metadata.dst_node_id])

    assert carriers == {0}


# ---------------------------------------------------------------------------- C08


def test_c08_large_statistics_sum_bit_for_bit_in_any_reply_order():
    rng = np.random.default_rng(13)
    centers = 1e4 + np.array([[0.0, 0.0], [7.0, 0.0], [0.0, 7.0]])
    X = np.vstack([rng.normal(c, 1.0, (80, 2)) for c in centers])
    parts = np.array_split(rng.permutation(X.shape[0]), 8)
    data = [X[p] for p in parts]

    def run(reply_seed, reverse):
        configs = [{"partition-id": i, "num-partitions": 8} for i in range(8)]
        # reversed configs: each client sits behind another random node id
        grid = InProcessGrid(
            make_client_app(ArrayClients(data)),
            configs[::-1] if reverse else configs,
            reply_seed=reply_seed,
        )
        strategy = FedGMMTree(**FAST)
        strategy.start(grid, timeout=5.0)
        return strategy.grower

    first, second = run(1, False), run(2, True)

    a, b = first.state_arrays(), second.state_arrays()
    assert a.keys() == b.keys()
    for key in a:
        assert np.array_equal(a[key], b[key], equal_nan=a[key].dtype.kind == "f"), key
    assert first.tree.n_nodes > 1


def test_c08_grower_update_ignores_the_order_of_the_reply_dict():
    rng = np.random.default_rng(14)
    parts = [1e4 + rng.normal(0, 1, (30, 2)) for _ in range(8)]

    def root(order):
        grower = TreeGrower(GrowthParams(**FAST))
        grower.update(
            {k: client_step(parts[k], grower.instructions(k), k) for k in order}
        )
        return grower.tree

    a, b = root(range(8)), root([5, 2, 7, 0, 3, 1, 6, 4])
    assert np.array_equal(a.means, b.means)
    assert np.array_equal(a.covariances, b.covariances)


# ---------------------------------------------------------------------------- C09


def test_c09_failed_client_is_logged_and_pooled_moments_are_sums(caplog):
    rng = np.random.default_rng(15)
    parts = [
        rng.normal(0.0, 1.0, (50, 2)),
        rng.normal(9.0, 1.0, (30, 2)),
        np.zeros((0, 2)),
    ]
    inner = make_client_app(ArrayClients(parts))
    app = ClientApp()

    @app.train()
    def train(msg: Message, context) -> Message:
        if int(context.node_config["partition-id"]) == 2:
            raise OSError("client 2: storage unavailable")
        return inner(msg, context)

    @app.evaluate()
    def evaluate(msg: Message, context) -> Message:
        return inner(msg, context)

    grid = InProcessGrid(
        app, [{"partition-id": i, "num-partitions": 3} for i in range(3)]
    )
    strategy = FedGMMTree(**FAST, min_replies=0.6)
    caplog.set_level(logging.WARNING, logger="flwr")

    strategy.start(grid, timeout=5.0)

    failed = [
        n for n, c in grid._contexts.items() if c.node_config["partition-id"] == 2
    ]
    assert re.search(
        rf"reply of node {failed[0]} \(client unknown\) left out: failed: .*"
        r"client 2: storage unavailable",
        caplog.text,
    )
    tree = strategy.grower.tree
    assert tree.n_samples[0] == 80
    pooled_mean = (parts[0].sum(axis=0) + parts[1].sum(axis=0)) / 80
    np.testing.assert_allclose(tree.means[0], pooled_mean, rtol=1e-12)
    average_of_means = (parts[0].mean(axis=0) + parts[1].mean(axis=0)) / 2
    assert not np.allclose(tree.means[0], average_of_means, rtol=1e-3)


def test_c09_client_with_no_rows_takes_part_without_error():
    rng = np.random.default_rng(16)
    X = np.vstack([rng.normal(0, 1, (50, 2)), rng.normal(9, 1, (30, 2))])

    fed = _fed([X[:50], X[50:], np.zeros((0, 2))])
    central = GMMTree(**FAST).fit(X)

    np.testing.assert_allclose(fed.means_, central.means_, rtol=1e-9)
    np.testing.assert_allclose(fed.weights_, central.weights_, rtol=1e-9)


# ---------------------------------------------------------------------------- C10


def test_c10_no_client_holds_data_is_one_clear_error():
    parts = [np.zeros((0, 3)) for _ in range(3)]

    with pytest.raises(FederationError, match="No data: every client"):
        _fed(parts)
    with pytest.raises(ValueError, match=r"0 sample\(s\)"):
        GMMTree().fit(np.zeros((0, 3)))


def test_c10_empty_node_has_a_reason_and_no_nan():
    rng = np.random.default_rng(17)
    X = rng.normal(0, 1, (60, 2))
    grower = TreeGrower(GrowthParams(**FAST))
    grower.update({0: client_step(X, grower.instructions(0), 0)})
    reply = client_step(X, grower.instructions(0), 0)
    # the client reports no rows in node 0 (its data moved away)
    reply["node.0.count"] = np.array([0.0])
    for key in [k for k in reply if k.startswith("node.0.0.")]:
        reply[key] = np.zeros_like(reply[key]) if "center" not in key else reply[key]

    with np.errstate(all="raise"):
        grower.update({0: reply})

    assert grower.tree.reason[0] == EMPTY
    assert np.all(np.isfinite(grower.tree.covariances))


# ---------------------------------------------------------------------------- C11


def test_c11_clients_with_disjoint_clusters_give_both_means():
    rng = np.random.default_rng(18)
    a = rng.normal(20, 1, (100, 2))
    b = rng.normal(80, 1, (100, 2))

    model = _fed([a, b])

    assert model.tree_.state[0] == INTERNAL and model.tree_.reason[0] == SPLIT
    children = model.tree_.means[model.tree_.children(0)]
    found = sorted(children.tolist())
    np.testing.assert_allclose(found[0], a.mean(axis=0), rtol=1e-9)
    np.testing.assert_allclose(found[1], b.mean(axis=0), rtol=1e-9)


def test_c11_child_with_pooled_count_zero_is_flagged_not_moved_to_the_origin():
    rng = np.random.default_rng(19)
    X = rng.normal(20, 1, (100, 2))
    grower = TreeGrower(GrowthParams(**FAST))
    grower.update({0: client_step(X, grower.instructions(0), 0)})
    reply = client_step(X, grower.instructions(0), 0)
    # no point chose child 1: its sums are 0 and child 0 holds everything
    prefix = "node.0.0"
    for name in ("nk", "first", "second"):
        value = reply[f"{prefix}.{name}"]
        value[0] = value.sum(axis=0)
        value[1] = 0.0

    with np.errstate(divide="raise", invalid="raise"):
        grower.update({0: reply})

    assert grower.tree.reason[0] == EMPTY_CHILD
    assert grower.tree.n_nodes == 1
    weights, means, covariances = gaussian_from_moments(
        reply[f"{prefix}.nk"],
        reply[f"{prefix}.first"],
        reply[f"{prefix}.second"],
        reply[f"{prefix}.center"],
        1e-6,
        "full",
    )
    np.testing.assert_array_equal(means[1], reply[f"{prefix}.center"])
    assert weights[1] == 0.0 and np.all(np.isfinite(covariances))


# ---------------------------------------------------------------------------- C12


def _c12_data():
    rng = np.random.default_rng(20)
    left = rng.normal((0, 0), 0.5, (60, 2))
    right = rng.normal((30, 0), 0.5, (60, 2))
    lonely = right[:1] + [0.3, 0.2]
    # client 0: 40 points on the left and a single point on the right
    return [np.vstack([left[:40], lonely]), np.vstack([left[40:], right])], lonely


def test_c12_without_min_count_one_point_is_revealed_by_its_statistics():
    parts, lonely = _c12_data()
    grower = TreeGrower(GrowthParams(**FAST))
    while grower.tree is None or grower.tree.n_nodes < 3:
        grower.update(
            {k: client_step(p, grower.instructions(k), k) for k, p in enumerate(parts)}
        )
    right = int(np.argmax(grower.tree.means[:, 0]))

    reply = client_step(parts[0], grower.instructions(0), 0)

    assert reply[f"node.{right}.count"][0] == 1.0
    nk = reply[f"node.{right}.0.nk"].sum()
    first = reply[f"node.{right}.0.first"].sum(axis=0)
    revealed = reply[f"node.{right}.0.center"] + first / nk
    np.testing.assert_allclose(revealed, lonely[0], rtol=1e-12)


def test_c12_min_count_sends_nothing_for_a_node_with_fewer_points():
    parts, _ = _c12_data()
    grower = TreeGrower(GrowthParams(**FAST, min_count=10))
    while grower.tree is None or grower.tree.n_nodes < 3:
        grower.update(
            {k: client_step(p, grower.instructions(k), k) for k, p in enumerate(parts)}
        )
    right = int(np.argmax(grower.tree.means[:, 0]))

    reply = client_step(parts[0], grower.instructions(0), 0)

    assert right not in reply["reply.nodes"].tolist()
    assert not [k for k in reply if k.startswith(f"node.{right}.")]


def test_c12_min_count_run_leaves_the_lonely_point_out_of_its_node():
    parts, _ = _c12_data()

    model = _fed(parts, min_count=10)

    tree = model.tree_
    right = int(np.argmax(tree.means[:, 0]))
    assert tree.n_samples[right] == 60
    assert np.all(np.isfinite(model.means_))
