"""Unreliable clients, garbage replies, retries, fail-fast and checkpoints.

Every federated run here uses the in-process engine and small data, so the file
runs in seconds. A run "without a client" is the reference for a client whose
replies are left out: leaving out must be exactly the same as not having it.
"""

import logging
import re
import warnings

import numpy as np
import pytest
from flwr.app import Message
from flwr.clientapp import ClientApp
from threadpoolctl import threadpool_limits

from fedgmmtree import (
    DataWarning,
    FederationError,
    GMMTree,
    GrowthParams,
    TreeGrower,
    client_step,
)
from fedgmmtree.checkpoint import load_checkpoint
from fedgmmtree.client_app import make_client_app
from fedgmmtree.validation import check_client_data, check_reply
from simulations.engine import ArrayClients, InProcessGrid
from strategies import FedGMMTree
from strategies.fedgmmtree import (
    CHECKPOINT_FILE,
    from_array_record,
    to_array_record,
)

SETTINGS = {"n_init": 1, "tol": 1e-2, "max_iter": 30, "random_state": 0}


@pytest.fixture(autouse=True, scope="module")
def _one_blas_thread():
    # tiny matrices: BLAS threads only add contention on a loaded 2-core machine
    with threadpool_limits(1):
        yield


def _blobs(seed, n_per=20):
    rng = np.random.default_rng(seed)
    centers = np.array([[0.0, 0.0], [6.0, 0.0], [0.0, 6.0]])
    return np.vstack([rng.normal(c, 0.7, (n_per, 2)) for c in centers])


@pytest.fixture(scope="module")
def parts():
    """Three clients; the last is the one that misbehaves."""
    return [_blobs(seed) for seed in range(3)]


def _grid(parts, client_app=None, drop=None, grid_class=InProcessGrid):
    app = client_app or make_client_app(ArrayClients(list(parts)))
    configs = [
        {"partition-id": i, "num-partitions": len(parts)} for i in range(len(parts))
    ]
    return grid_class(app, configs, drop=drop)


def _run(parts, client_app=None, drop=None, grid_class=InProcessGrid, **settings):
    strategy = FedGMMTree(**{**SETTINGS, **settings})
    grid = _grid(parts, client_app, drop, grid_class)
    strategy.start(grid, timeout=5.0)
    return strategy


def _same_tree(a, b):
    x, y = a.grower.tree.to_arrays(), b.grower.tree.to_arrays()
    return x.keys() == y.keys() and all(np.array_equal(x[k], y[k]) for k in x)


@pytest.fixture(scope="module")
def without_last(parts):
    """The run of the first two clients only."""
    return _run(parts[:2])


# ---------------------------------------------------------------- garbage replies


def _corrupting_app(parts, partition, corrupt, from_round=1):
    """A ClientApp whose ``partition`` answers with ``corrupt(arrays)``."""
    inner = make_client_app(ArrayClients(list(parts)))
    app = ClientApp()

    @app.train()
    def train(msg: Message, context) -> Message:
        reply = inner(msg, context)
        server_round = int(msg.content["config"]["server-round"])
        if (
            int(context.node_config["partition-id"]) != partition
            or server_round < from_round
        ):
            return reply
        arrays = corrupt(from_array_record(reply.content["stats"]))
        reply.content["stats"] = to_array_record(arrays)
        return reply

    @app.evaluate()
    def evaluate(msg: Message, context) -> Message:
        return inner(msg, context)

    return app


def _each(suffix, change):
    def corrupt(arrays):
        return {
            key: change(np.array(value, dtype=np.float64))
            if key.endswith(suffix)
            else value
            for key, value in arrays.items()
        }

    return corrupt


def _negate_psd(second):
    return -second - np.eye(second.shape[-1]) if second.ndim == 3 else -second - 1.0


def _inconsistent(arrays):
    # a first moment no data can give: beyond Cauchy-Schwarz for every feature
    arrays = dict(arrays)
    for key in [k for k in arrays if k.endswith(".first")]:
        prefix = key[: -len(".first")]
        nk, second = arrays[f"{prefix}.nk"], arrays[f"{prefix}.second"]
        diag = np.diagonal(second, axis1=1, axis2=2) if second.ndim == 3 else second
        arrays[key] = 2.0 * np.sqrt(nk[:, np.newaxis] * diag) + 1.0
    return arrays


def _nan_first(first):
    first = first.copy()
    first.flat[0] = np.nan
    return first


GARBAGE = {
    "non-finite first moment": (_each(".first", _nan_first), "non-finite"),
    "infinite log-likelihood": (_each(".loglik", lambda v: v + np.inf), "non-finite"),
    "negative counts": (_each(".nk", lambda v: -v - 1.0), "negative"),
    "second moment not PSD": (_each(".second", _negate_psd), "semi-definite|negative"),
    "wrong shape": (
        _each(".first", lambda v: np.hstack([v, v[:, :1]])),
        "shape",
    ),
    "missing keys": (
        lambda arrays: {k: v for k, v in arrays.items() if not k.endswith(".second")},
        "missing or unreadable",
    ),
    "inconsistent moments": (_inconsistent, "inconsistent"),
    "text instead of numbers": (
        _each(".nk", lambda v: np.array([str(x).encode() for x in v])),
        "not real numbers",
    ),
}


@pytest.mark.parametrize("kind", sorted(GARBAGE))
def test_fedgmmtree_garbage_reply_is_left_out_like_a_missing_client(
    parts, without_last, kind, caplog
):
    corrupt, reason = GARBAGE[kind]
    caplog.set_level(logging.WARNING, logger="flwr")
    app = _corrupting_app(parts, 2, corrupt)

    strategy = _run(parts, client_app=app, min_replies=0.6)

    assert _same_tree(strategy, without_last)
    left_out = [r for r in strategy.grower.rejections if "(client" in r.reason]
    assert left_out and all(r.round >= 1 for r in left_out)
    assert any(re.search(reason, r.reason) for r in left_out), left_out
    assert "left out" in caplog.text


def test_fedgmmtree_client_that_raises_is_left_out_like_a_missing_client(
    parts, without_last, caplog
):
    def boom(arrays):
        raise RuntimeError("disk read failed")

    caplog.set_level(logging.WARNING, logger="flwr")
    app = _corrupting_app(parts, 2, boom)

    strategy = _run(parts, client_app=app, min_replies=0.6)

    assert _same_tree(strategy, without_last)
    assert "disk read failed" in caplog.text
    assert "left out" in caplog.text


@pytest.mark.parametrize(
    ("corrupt", "reason"),
    [
        (
            lambda a: {**a, "reply.nodes": np.repeat(a["reply.nodes"], 2)},
            "listed twice",
        ),
        (
            lambda a: {**a, "reply.nodes": np.append(a["reply.nodes"], 999)},
            "not asked",
        ),
        (lambda a: {k: v for k, v in a.items() if k != "reply.nodes"}, "node list"),
    ],
)
def test_fedgmmtree_bad_node_list_counts_as_no_reply(parts, corrupt, reason):
    # from round 2 on, a reply that lists nodes twice or that it was not asked
    # about is as good as no reply at all
    def fail(arrays):
        raise RuntimeError("gone")

    garbage = _run(
        parts,
        client_app=_corrupting_app(parts, 2, corrupt, from_round=2),
        min_replies=0.6,
    )
    absent = _run(
        parts,
        client_app=_corrupting_app(parts, 2, fail, from_round=2),
        min_replies=0.6,
    )

    assert _same_tree(garbage, absent)
    assert any(reason in r.reason for r in garbage.grower.rejections)


def test_fedgmmtree_names_the_client_with_another_feature_count(parts, caplog):
    caplog.set_level(logging.WARNING, logger="flwr")
    wide = [*parts[:2], np.hstack([parts[2], parts[2][:, :1]])]

    strategy = _run(wide, min_replies=0.6)

    assert strategy.grower.n_features_in == 2
    assert "client 2 has 3 features, expected 2" in caplog.text
    with pytest.raises(FederationError, match="client 2 has 3 features, expected 2"):
        _run(wide, max_retries=0)


def test_fedgmmtree_same_client_key_from_two_nodes_counts_once(parts):
    inner = make_client_app(ArrayClients(list(parts)))
    app = ClientApp()

    @app.train()
    def train(msg, context):
        reply = inner(msg, context)
        if int(context.node_config["partition-id"]) == 2:
            reply.content["client"]["client-key"] = 1
        return reply

    @app.evaluate()
    def evaluate(msg, context):
        return inner(msg, context)

    strategy = _run(parts, client_app=app, min_replies=0.6)

    assert any("already answered" in r.reason for r in strategy.grower.rejections)
    assert strategy.grower.tree.n_samples[0] == 2 * len(parts[0])


def test_check_reply_accepts_what_client_step_sends(parts):
    grower = TreeGrower(GrowthParams(**SETTINGS))
    grower.update({0: client_step(parts[0], grower.instructions(0))})
    reply = client_step(parts[0], grower.instructions(0))

    assert check_reply(reply, grower.active_nodes()) == []
    assert check_reply(reply, []) == [
        (0, "statistics for a node it was not asked about")
    ]


# ------------------------------------------------------------------------ retries


class _FlakyGrid(InProcessGrid):
    """Drops the nodes that ``plan`` names, per (round, attempt)."""

    def __init__(self, *args, plan, **kwargs):
        super().__init__(*args, **kwargs)
        self.plan = plan
        self.calls = {}

    def send_and_receive(self, messages, *, timeout=None):
        messages = list(messages)
        if not messages:
            return []
        server_round = int(messages[0].content["config"]["server-round"])
        attempt = self.calls.get(server_round, 0)
        self.calls[server_round] = attempt + 1
        self._drop = lambda r, partition: partition in self.plan(r, attempt)
        return super().send_and_receive(messages, timeout=timeout)


def _flaky_run(parts, plan, **settings):
    strategy = FedGMMTree(**{**SETTINGS, **settings})
    grid = _FlakyGrid(
        make_client_app(ArrayClients(list(parts))),
        [{"partition-id": i, "num-partitions": len(parts)} for i in range(len(parts))],
        plan=plan,
    )
    strategy.start(grid, timeout=5.0)
    return strategy, grid


@pytest.fixture(scope="module")
def uninterrupted(parts):
    return _run(parts)


def test_fedgmmtree_retry_recovers_a_dropped_reply_and_loses_nothing(
    parts, uninterrupted
):
    # round 1 and round 3: two clients miss the first attempt, answer the retry
    def plan(server_round, attempt):
        return {1, 2} if server_round in (1, 3) and attempt == 0 else set()

    strategy, grid = _flaky_run(parts, plan)

    assert _same_tree(strategy, uninterrupted)
    assert grid.calls[3] == 2
    assert strategy.round_records[2]["attempts"] == 2.0
    assert any("no reply within" in r.reason for r in strategy.grower.rejections)


def test_fedgmmtree_retry_sends_again_only_to_the_missing_nodes(parts):
    sent = []

    def plan(server_round, attempt):
        return {1} if server_round == 2 and attempt == 0 else set()

    class Recording(_FlakyGrid):
        def send_and_receive(self, messages, *, timeout=None):
            messages = list(messages)
            sent.append([m.metadata.dst_node_id for m in messages])
            return super().send_and_receive(messages, timeout=timeout)

    strategy = FedGMMTree(**SETTINGS)
    grid = Recording(
        make_client_app(ArrayClients(list(parts))),
        [{"partition-id": i, "num-partitions": 3} for i in range(3)],
        plan=plan,
    )
    strategy.start(grid, timeout=5.0)

    node_of_1 = [n for n, c in strategy.client_of_node.items() if c == 1]
    assert sent[2] == node_of_1


def test_fedgmmtree_stops_with_clear_error_and_keeps_last_complete_round(
    parts, tmp_path
):
    def plan(server_round, attempt):
        return {2} if server_round >= 3 else set()

    strategy = FedGMMTree(**SETTINGS, max_retries=2, checkpoint_dir=tmp_path)
    grid = _FlakyGrid(
        make_client_app(ArrayClients(list(parts))),
        [{"partition-id": i, "num-partitions": 3} for i in range(3)],
        plan=plan,
    )

    with pytest.raises(
        FederationError,
        match=r"Round 3: too few clients answered: 2 of 3 .* after 2 retries.*"
        r"node \d+ \(client 2\): no reply.*tree of round 2 is saved",
    ):
        strategy.start(grid, timeout=5.0)

    assert grid.calls[3] == 3
    assert strategy.grower.round == 2
    saved = TreeGrower.from_state_arrays(load_checkpoint(tmp_path / CHECKPOINT_FILE))
    assert saved.round == 2
    assert saved.tree.n_samples[0] == sum(len(p) for p in parts)


@pytest.mark.parametrize(("min_replies", "completes"), [(0.6, True), (0.7, False)])
def test_fedgmmtree_min_replies_is_a_share_of_the_clients_with_work(
    parts, min_replies, completes
):
    def plan(server_round, attempt):
        return {0}

    if completes:
        strategy, _ = _flaky_run(parts, plan, min_replies=min_replies)
        assert strategy.grower.done
        assert strategy.grower.tree.n_samples[0] == 2 * len(parts[0])
    else:
        with pytest.raises(FederationError, match="min_replies=0.7 needs 3"):
            _flaky_run(parts, plan, min_replies=min_replies, max_retries=1)


def test_fedgmmtree_counts_a_node_that_goes_offline_as_missing(parts):
    class OfflineAfterRoundOne(InProcessGrid):
        server_round = 0

        def get_node_ids(self):
            return [
                node_id
                for node_id, context in self._contexts.items()
                if self.server_round < 2 or context.node_config["partition-id"] != 2
            ]

        def send_and_receive(self, messages, *, timeout=None):
            messages = list(messages)
            if messages:
                self.server_round = int(messages[0].content["config"]["server-round"])
            return super().send_and_receive(messages, timeout=timeout)

    with pytest.raises(FederationError, match="client 2: holds data .* no longer"):
        _run(parts, grid_class=OfflineAfterRoundOne, max_retries=1)

    strategy = _run(parts, grid_class=OfflineAfterRoundOne, min_replies=0.6)
    assert strategy.grower.done
    assert any("no longer connected" in r.reason for r in strategy.grower.rejections)


def test_fedgmmtree_min_nodes_above_the_federation_fails_fast(parts):
    strategy = FedGMMTree(**SETTINGS, min_nodes=4, node_wait_timeout=0.3)
    grid = _grid(parts)

    with pytest.raises(
        FederationError, match=r"Only 3 of min_nodes=4 nodes connected within"
    ):
        strategy.start(grid, timeout=5.0)
    assert grid.messages_sent == 0


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"min_nodes": 0}, r"min_nodes must be an int >= 1, but got 0"),
        ({"min_replies": 0.0}, r"min_replies must be a share in \(0, 1\]"),
        ({"min_replies": 1.5}, r"min_replies must be a share in \(0, 1\]"),
        ({"max_retries": -1}, r"max_retries must be an int >= 0, but got -1"),
        ({"node_wait_timeout": -1}, r"node_wait_timeout must be a number"),
        ({"n_clusters": 0}, r"n_clusters must be None or an int >= 1"),
    ],
)
def test_fedgmmtree_rejects_bad_federation_settings(settings, match):
    with pytest.raises(ValueError, match=match):
        FedGMMTree(**settings)


# --------------------------------------------------------------------- checkpoints


class _Crash(Exception):
    pass


class _CrashingGrid(InProcessGrid):
    """Raises in the middle of round ``crash_round``, as a killed server would."""

    crash_round = None

    def send_and_receive(self, messages, *, timeout=None):
        messages = list(messages)
        if messages and self.crash_round is not None:
            server_round = int(messages[0].content["config"]["server-round"])
            if server_round == self.crash_round:
                raise _Crash(f"server killed in round {server_round}")
        return super().send_and_receive(messages, timeout=timeout)


def _state(grower):
    arrays = grower.state_arrays()
    return {k: v for k, v in arrays.items()}


def _assert_same_state(a, b):
    x, y = _state(a), _state(b)
    assert x.keys() == y.keys()
    for key in x:
        assert x[key].dtype == y[key].dtype, key
        assert np.array_equal(x[key], y[key], equal_nan=x[key].dtype.kind == "f"), key


@pytest.mark.parametrize("crash_round", [2, 5])
def test_fedgmmtree_resumed_run_ends_bit_identical(
    parts, uninterrupted, tmp_path, crash_round
):
    first = FedGMMTree(**SETTINGS, checkpoint_dir=tmp_path)
    grid = _grid(parts, grid_class=_CrashingGrid)
    grid.crash_round = crash_round
    with pytest.raises(_Crash):
        first.start(grid, timeout=5.0)
    assert first.grower.round == crash_round - 1

    second = FedGMMTree(**SETTINGS, checkpoint_dir=tmp_path)
    result = second.start(_grid(parts), timeout=5.0)

    _assert_same_state(second.grower, uninterrupted.grower)

    # the first resumed round sends the whole tree again: only bytes_down differs
    def records(strategy):
        return [{**r, "bytes_down": 0} for r in strategy.round_records]

    assert records(second) == records(uninterrupted)
    assert sorted(result.train_metrics_clientapp) == list(
        range(1, uninterrupted.grower.round + 1)
    )


def test_fedgmmtree_resumes_after_a_federation_error(parts, uninterrupted, tmp_path):
    def plan(server_round, attempt):
        return {1} if server_round == 4 else set()

    with pytest.raises(FederationError, match="Round 4"):
        _flaky_run(parts, plan, max_retries=0, checkpoint_dir=tmp_path)

    resumed = _run(parts, checkpoint_dir=tmp_path)

    assert _same_tree(resumed, uninterrupted)
    assert resumed.grower.history == uninterrupted.grower.history


def test_fedgmmtree_resume_of_a_complete_run_sends_no_training(parts, tmp_path):
    done = _run(parts, checkpoint_dir=tmp_path)
    grid = _grid(parts)

    again = FedGMMTree(**SETTINGS, checkpoint_dir=tmp_path)
    again.start(grid, timeout=5.0)

    assert grid.messages_sent == len(parts)  # the final evaluation only
    assert _same_tree(again, done)


def test_fedgmmtree_resume_refuses_other_settings(parts, tmp_path):
    _run(parts, checkpoint_dir=tmp_path)

    other = FedGMMTree(**{**SETTINGS, "n_init": 2}, checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match=r"other settings: n_init=2 \(checkpoint: 1\)"):
        other.start(_grid(parts), timeout=5.0)


def test_fedgmmtree_checkpoint_write_is_atomic(parts, tmp_path, monkeypatch):
    strategy = FedGMMTree(**SETTINGS, checkpoint_dir=tmp_path)
    grid = _grid(parts, grid_class=_CrashingGrid)
    grid.crash_round = 4
    with pytest.raises(_Crash):
        strategy.start(grid, timeout=5.0)
    before = (tmp_path / CHECKPOINT_FILE).read_bytes()

    def broken_savez(handle, **arrays):
        handle.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        strategy._save_checkpoint()

    assert (tmp_path / CHECKPOINT_FILE).read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [CHECKPOINT_FILE]


PARAMS = [
    {"n_init": 3},
    {"covariance_type": "diag", "standardize": True},
    {"n_components_pca": 1, "n_init": 1},
    {"routing": "soft", "max_iter": 5},
    {"sample_size": 30, "subspace_dim": 1, "split_criterion": "normality"},
]


@pytest.mark.parametrize("params", PARAMS)
def test_tree_grower_state_arrays_round_trip_at_every_round(parts, params):
    settings = GrowthParams(**{**SETTINGS, **params})
    grower = TreeGrower(settings)
    while not grower.done:
        state = grower.state_arrays()
        copy = TreeGrower.from_state_arrays(state)
        _assert_same_state(copy, grower)
        assert set(vars(copy)) == set(vars(grower))
        replies = {}
        for k, p in enumerate(parts):
            asked = grower.instructions(k)
            again = copy.instructions(k)
            assert asked.keys() == again.keys()
            assert all(np.array_equal(asked[key], again[key]) for key in asked)
            replies[k] = client_step(p, asked, k)
        grower.update(replies)
        # the copy, fed the same replies, stays identical
        copy.update({k: dict(v) for k, v in replies.items()})
        _assert_same_state(copy, grower)
    assert grower.round > 2


def test_tree_grower_state_arrays_refuses_what_it_cannot_restore():
    grower = TreeGrower(GrowthParams())
    grower.extra = object()

    with pytest.raises(TypeError, match=r"Cannot checkpoint grower.extra"):
        grower.state_arrays()


# ------------------------------------------------------------------------ inputs


@pytest.mark.parametrize(
    ("X", "match"),
    [
        (np.zeros(5), r"must be a 2-D array .* but got 1-D data of shape \(5,\)"),
        (np.zeros((2, 2, 2)), r"but got 3-D data"),
        (np.zeros((4, 0)), r"at least one feature .* shape \(4, 0\)"),
        (np.array([["1", "2"]]), r"must be numeric, but got an array of <U1"),
        (np.array([[1 + 2j, 0]]), r"must be real, but got complex"),
        (np.array([[1.0, "a"]], dtype=object), r"column 1 \(row 0\) holds 'a'"),
        (np.array([[0.0, np.nan], [np.nan, 1]]), r"NaN on client 7 in columns 0, 1"),
        (np.array([[0.0, -np.inf]]), r"infinity on client 7 in column 1"),
        (np.array([[0.0, 1e200]]), r"1e\+200 on client 7 in column 1"),
    ],
)
def test_check_client_data_says_what_where_and_what_came(X, match):
    with pytest.raises(ValueError, match=match):
        check_client_data(X, client=7)


def test_check_client_data_rows_and_features():
    with pytest.raises(
        ValueError, match=r"at least 1 row\(s\), but got shape \(0, 2\)"
    ):
        check_client_data(np.zeros((0, 2)), min_samples=1)
    with pytest.raises(ValueError, match="has 3 features, but the model expects 2"):
        check_client_data(np.zeros((1, 3)), n_features=2)
    from scipy import sparse

    with pytest.raises(ValueError, match=r"dense array, but got a sparse"):
        check_client_data(sparse.eye(3, format="csr"))
    X = check_client_data(np.array([[1, 2]], dtype=np.float32))
    assert X.dtype == np.float64
    assert check_client_data(np.zeros((0, 2))).shape == (0, 2)


@pytest.mark.parametrize(
    ("X", "match"),
    [
        (np.zeros(5), "Expected 2D array, got 1D array"),
        (np.zeros((0, 2)), r"0 sample\(s\)"),
        ([["a", "b"]], "dtype='numeric' is not compatible|could not convert"),
        (np.array([[0.0, np.nan], [1.0, 2.0]]), "NaN in column 1"),
        (np.array([[1e200, 0.0], [1.0, 2.0]]), "1e\\+200 in column 0"),
    ],
)
def test_gmmtree_fit_rejects_bad_input_at_the_boundary(X, match):
    from fedgmmtree import GMMTree

    with pytest.raises(ValueError, match=match):
        GMMTree().fit(X)


def test_client_app_rejects_bad_data_and_the_server_names_client_and_column(parts):
    bad = [p.copy() for p in parts]
    bad[1][5, 1] = np.nan

    strategy = FedGMMTree(**SETTINGS, max_retries=1)
    with pytest.raises(
        FederationError, match=r"Input X contains NaN on client 1 in column 1"
    ) as raised:
        strategy.start(_grid(bad), timeout=5.0)
    assert ".." not in str(raised.value)
    assert strategy.grower.round == 0
    with pytest.raises(RuntimeError, match="not complete"):
        strategy.model()


# ----------------------------------------------------------------------- privacy


@pytest.fixture
def seeded_noise(monkeypatch):
    """Clients draw their noise from an unseeded generator; seed it for tests."""
    real = np.random.default_rng
    counter = iter(range(10**6))

    def seeded(seed=None):
        return real([2024, next(counter)] if seed is None else seed)

    monkeypatch.setattr(np.random, "default_rng", seeded)


def test_fedgmmtree_privacy_knobs_are_off_by_default():
    params = FedGMMTree().params

    assert (params.min_count, params.noise_multiplier, params.clip_norm) == (
        0,
        0.0,
        None,
    )
    with pytest.raises(ValueError, match=r"clip_norm must be a float > 0 \(and it is"):
        FedGMMTree(noise_multiplier=1.0)


def test_fedgmmtree_min_count_breaks_equality_with_the_centralised_fit(parts):
    from fedgmmtree import GMMTree

    # a client with few rows in a node keeps them to itself
    small = [*parts[:2], parts[2][:8]]
    fed = _run(small, min_count=10).model()
    central = GMMTree(**SETTINGS).fit(np.vstack(small))

    assert fed.tree_.n_samples[0] == len(parts[0]) * 2
    assert central.tree_.n_samples[0] == len(parts[0]) * 2 + 8
    assert not np.allclose(fed.tree_.means[0], central.tree_.means[0])


def test_fedgmmtree_small_noise_gives_a_finite_model_unlike_the_exact_one(
    parts, seeded_noise
):
    noisy = _run(parts, noise_multiplier=1e-6, clip_norm=100.0)
    exact = _run(parts)

    model = noisy.model()
    assert np.all(np.isfinite(model.means_)) and np.all(np.isfinite(model.covariances_))
    assert model.weights_.sum() == pytest.approx(1.0)
    assert not np.array_equal(noisy.grower.tree.means[0], exact.grower.tree.means[0])


def test_check_reply_accepts_noisy_statistics_when_told_they_are_noisy(
    parts, seeded_noise
):
    grower = TreeGrower(GrowthParams(**SETTINGS, noise_multiplier=5.0, clip_norm=1.0))
    grower.update({0: client_step(parts[0], grower.instructions(0))})
    noisy = client_step(parts[0], grower.instructions(0))

    assert check_reply(noisy, grower.active_nodes(), exact=False) == []
    # noise can push a small total below zero: only exact totals must be >= 0
    noisy["routed.n"] = np.array([-0.5])
    assert check_reply(noisy, grower.active_nodes(), exact=False) == []
    assert (-1, "negative routed.n") in check_reply(noisy, grower.active_nodes())


@pytest.mark.parametrize("noise_multiplier", [0.5, 5.0])
def test_fedgmmtree_noise_gives_a_finite_model(noise_multiplier, seeded_noise):
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(c, 1, (300, 2)) for c in [(-4, 0), (4, 0)]])
    noisy_parts = np.array_split(X[rng.permutation(600)], 3)

    strategy = _run(noisy_parts, noise_multiplier=noise_multiplier, clip_norm=10.0)

    model = strategy.model()
    assert np.all(np.isfinite(model.means_)) and np.all(np.isfinite(model.covariances_))
    assert model.weights_.sum() == pytest.approx(1.0)


def test_client_step_noise_covers_every_number_about_the_data(parts, seeded_noise):
    settings = {**SETTINGS, "clip_norm": 10.0}
    exact = TreeGrower(GrowthParams(**settings))
    exact.update({0: client_step(parts[0], exact.instructions(0))})
    instructions = exact.instructions(0)
    plain = client_step(parts[0], instructions)
    noisy_instructions = {**instructions, "privacy.noise_multiplier": np.array([1.0])}

    noisy = client_step(parts[0], noisy_instructions)

    same = [
        key
        for key in plain
        if not key.endswith((".center", "reply.nodes", "tree.cached_revision"))
        and np.array_equal(plain[key], noisy[key])
    ]
    assert same == []


def test_fedgmmtree_aggregate_train_checks_replies_like_start(parts):
    app = _corrupting_app(parts, 2, _each(".nk", lambda v: -v - 1.0))
    grid = _grid(parts, client_app=app)
    strategy = FedGMMTree(**SETTINGS)

    messages = strategy.configure_train(1, None, None, grid)
    replies = grid.send_and_receive(messages, timeout=5.0)
    _, metrics = strategy.aggregate_train(1, replies)

    assert metrics["clients"] == 2.0
    assert strategy.grower.tree.n_samples[0] == 2 * len(parts[0])
    assert [r.client for r in strategy.grower.rejections] == [2]


@pytest.mark.parametrize("covariance_type", ["diag", "full"])
def test_tree_grower_noisy_root_on_a_far_constant_column_stays_finite(
    covariance_type,
):
    # what a client sent for 60 rows near -1e4 in one column, with noise 1.0 and
    # clip_norm 1000 (found by fuzzing): noise made its variance negative
    second = np.array([[60695519.770038165]])
    reply = {
        "root.nk": np.array([59.020525831641265]),
        "root.first": np.array([[-61573.49033294771]]),
        "root.second": second if covariance_type == "diag" else second[:, :, None],
        "root.loglik": np.array([-292.4970571840865]),
        "root.center": np.array([0.0]),
    }
    grower = TreeGrower(
        GrowthParams(
            covariance_type=covariance_type,
            standardize=True,
            noise_multiplier=1.0,
            clip_norm=1000.0,
        )
    )

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        grower.update({0: reply})

    assert np.all(np.isfinite(grower.scale))
    assert np.all(np.isfinite(grower.tree.covariances))


def test_evaluation_sums_in_client_key_order_whatever_the_node_ids(monkeypatch):
    from flwr.app import ConfigRecord, Message, RecordDict
    from flwr.supercore.task_identity import TaskIdentity

    from strategies import FedGMMTree
    from strategies.fedgmmtree import to_array_record

    for name, value in (("_run_id", 1), ("_node_id", 0), ("_task_id", 1)):
        monkeypatch.setattr(TaskIdentity, name, value)
    values = {0: 1e16, 1: 1.0, 2: -1e16}  # a sum whose value depends on its order

    def replies(node_of):
        out = []
        for key, node_id in node_of.items():
            asked = Message(
                content=RecordDict({"config": ConfigRecord({"server-round": 1})}),
                dst_node_id=node_id,
                message_type="evaluate",
            )
            arrays = {"test.loglik": np.array([values[key]]), "test.n": np.array([1])}
            content = RecordDict(
                {
                    "evaluation": to_array_record(arrays),
                    "client": ConfigRecord({"client-key": key}),
                }
            )
            out.append(Message(content=content, reply_to=asked))
        return out

    strategy = FedGMMTree()
    first = strategy.aggregate_evaluate(1, replies({0: 7, 1: 3, 2: 5}))
    second = strategy.aggregate_evaluate(1, replies({0: 4, 1: 9, 2: 2}))
    assert first["heldout_mean_loglik"] == second["heldout_mean_loglik"]


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_noise_does_not_let_a_child_shrink_below_it(covariance_type, seeded_noise):
    # noisy second moments once gave children a near-zero variance in some
    # direction, a likelihood spike, and leaves with a held-out score of -40
    rng = np.random.default_rng(1)
    centres = np.array([[0, 0, 0], [6, 0, 0], [0, 6, 0], [6, 6, 6]])
    X = np.vstack([rng.normal(c, 0.5, (5000, 3)) for c in centres])
    X = X[rng.permutation(len(X))]
    exact = GMMTree(random_state=0, covariance_type=covariance_type).fit(X)
    for seed in range(3):
        strategy = FedGMMTree(
            random_state=seed,
            covariance_type=covariance_type,
            noise_multiplier=1.0,
            clip_norm=15.0,
        )
        strategy.start(_grid(np.array_split(X, 8), None, None, InProcessGrid), 5.0)
        model = strategy.model()
        smallest = [
            np.min(np.linalg.eigvalsh(c) if c.ndim == 2 else c)
            for c in model.covariances_
        ]
        assert min(smallest) > 1e-3, seed
        assert model.score(X) > exact.score(X) - 0.75, seed


def test_repair_raises_every_scatter_eigenvalue_to_the_noise_floor():
    from fedgmmtree._protocol import _repair
    from fedgmmtree._stats import Moments

    second = np.array([np.diag([4.0, 1e-9, -2.0])]) * 10.0
    moments = Moments(np.array([10.0]), np.zeros((1, 3)), second, 0.0, np.zeros(3))
    repaired = _repair(moments, noise=5.0)
    floor = 5.0 * 2.0 * np.sqrt(3) / 10.0
    eigvals = np.linalg.eigvalsh(repaired.second[0] / 10.0)
    np.testing.assert_allclose(np.sort(eigvals), [floor, floor, 4.0])


def test_clip_norm_without_noise_warns_that_it_only_clips():
    with pytest.warns(UserWarning, match="clip_norm=5.0 without noise_multiplier"):
        TreeGrower(GrowthParams(clip_norm=5.0))
