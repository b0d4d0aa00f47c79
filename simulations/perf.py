"""Performance of FedGMMTree against its targets and floors, in one table.

Simulation layer, a command-line benchmark::

    python -m simulations.perf            # items 1-5, Ray with 100 clients
    python -m simulations.perf --quick    # small sizes, in-process, < 1 minute
    python -m simulations.perf --clients 100,1000 --full

Every figure is printed beside its target and its floor. The machine is shared,
so each comparison is timed side by side in the same run (alternating
repetitions, medians) and judged as a ratio, never from absolute times.

1. Client step: one refinement step (routing, E-step, statistics) on rows of a
   tree with one level of 8 active nodes, K = 2, full covariances, against
   scikit-learn's ``GaussianMixture`` with 16 components doing one EM iteration
   from fixed parameters: its ``_e_step`` and ``_m_step`` are timed once each,
   so its k-means initialisation is not counted. Floor: the same EM iteration
   with the 2 Gaussians of one level (the step without routing). Peak memory
   from ``tracemalloc`` (numpy allocations are traced), against the data.
2. Rounds: FedGMMTree on digits (PCA 20, raw features) against a flat FedEM
   with k-FED initialisation and as many components as the tree has leaves, on
   the same features (the tree's own projection), counted to the round where
   FedEM's held-out log-likelihood first reaches the tree's. Floor: the
   critical path, the root round plus the EM steps along the longest chain of
   nodes (a node's children start when its EM ends, and nodes share rounds).
3. Bytes: the same digits runs, each message split by what it carries. Floor:
   the statistics a client must send (counts, moments, log-likelihood sums,
   histograms; not the echo of the node's centre) and the candidate mixtures
   the server must send for them.
4. Simulation overhead: FedGMMTree with ``--rounds`` rounds and its evaluation
   round against a no-op Flower app that sends the same messages (same rounds,
   nodes, array counts and bytes each way) and computes nothing; in-process
   and on Ray. On Ray a third run, the no-op app carrying FedGMMTree's data
   loader, shows what the app's own size costs.
5. Scale: full fits on synthetic data with d = 32 and 100 clients, in-process,
   each in a fresh process; peak memory is the peak resident set size above
   what the process held before the fit (allocator retention included).

``--items`` runs some items only (e.g. ``--items 4 --clients 1000``).
"""

import argparse
import datetime
import gc
import logging
import os
import pickle
import platform
import sys
import time
import tracemalloc
import warnings
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from sklearn.datasets import load_digits
from sklearn.mixture import GaussianMixture
from threadpoolctl import threadpool_limits

from fedgmmtree import DataWarning, GrowthParams, TreeGrower, client_step
from fedgmmtree._protocol import apply_transform
from fedgmmtree._tree import EMPTY
from fedgmmtree.client_app import make_client_app
from strategies import FedEM, FedGMMTree, FlatMixture

from .clients import split_client_data
from .engine import (
    ArrayClients,
    FederatedRun,
    InProcessGrid,
    engine_loader,
    run_federated,
    run_on_ray,
)
from .partitions import partition

MIB = 2**20
TEST_FRACTION = 0.2


@dataclass
class Row:
    """One line of the table: a figure beside its target and its floor."""

    item: str
    figure: str
    measured: str
    target: str
    floor: str
    ratio: str
    met: str


@dataclass(frozen=True)
class Settings:
    """Sizes of every item; ``--quick`` shrinks them all."""

    step_rows: int = 100_000
    step_features: int = 64
    repeats: int = 5
    digits_pca: int = 20
    tree_max_depth: int | None = None
    fedem_max_iter: int = 100
    engines: tuple = ("inprocess", "ray")
    clients: tuple = (100,)
    rows_per_client: int = 100
    engine_features: int = 16
    rounds: int = 5
    scale_sizes: tuple = (10_000, 100_000)
    scale_clients: int = 100
    scale_features: int = 32
    scale_max_depth: int | None = None


QUICK = Settings(
    step_rows=20_000,
    step_features=16,
    repeats=2,
    digits_pca=10,
    tree_max_depth=1,
    fedem_max_iter=10,
    engines=("inprocess",),
    clients=(10,),
    rows_per_client=50,
    engine_features=8,
    rounds=3,
    scale_sizes=(2_000, 10_000),
    scale_clients=20,
    scale_features=8,
    scale_max_depth=1,
)


# --------------------------------------------------------------------- helpers


def hierarchy_data(n_rows: int, n_features: int, depth: int = 3, seed: int = 0):
    """Clusters of clusters: ``2**depth`` unit Gaussians at the corners of a box.

    The box's sides halve at each level (64, 32, 16, ... standard deviations),
    so a binary tree of depth ``depth`` is the right model.

    Returns
    -------
    X : ndarray of shape (n_rows, n_features)
    y : ndarray of shape (n_rows,)
    """
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2**depth, n_rows)
    bits = (y[:, np.newaxis] >> np.arange(depth)[::-1]) & 1
    X = rng.standard_normal((n_rows, n_features))
    X[:, :depth] += bits * (64.0 / 2.0 ** np.arange(depth))
    return X, y


def interleaved(functions: dict[str, Callable], repeats: int) -> dict[str, list]:
    """Seconds of each function, called in turn ``repeats`` times."""
    seconds = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            gc.collect()
            started = time.perf_counter()
            function()
            seconds[name].append(time.perf_counter() - started)
    return seconds


def traced_peak(function: Callable) -> int:
    """Bytes allocated at the peak of ``function`` above what was held before."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    try:
        function()
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


def _nbytes(array: Array) -> int:
    return int(np.prod(array.shape, dtype=np.int64)) * np.dtype(array.dtype).itemsize


def _is_statistic(key: str) -> bool:
    """Whether a reply key is a statistic the client must send (not an echo)."""
    return key.startswith(("node.", "root.")) and not key.endswith(".center")


def _is_parameter(key: str) -> bool:
    """Whether an instruction key is a candidate mixture the E-step needs."""
    return key.startswith("task.") and key.endswith(
        (".weights", ".means", ".covariances")
    )


def _split_bytes(content: RecordDict, floor_key: Callable) -> dict[str, int]:
    """Bytes of a message as Flower counts them, and of its floor and its tree."""
    split = {"total": 0, "floor": 0, "tree": 0, "arrays": 0, "raw": 0}
    for record in content.values():
        split["total"] += record.count_bytes()
        if not isinstance(record, ArrayRecord):
            continue
        for key, array in record.items():
            raw = _nbytes(array)
            split["arrays"] += 1
            split["raw"] += raw
            if floor_key(key):
                split["floor"] += raw
            if key.startswith(("tree.", "transform.")) and key != "tree.revision":
                split["tree"] += len(array.data) + len(key)
    return split


@dataclass
class Exchange:
    """One message and its reply, in bytes."""

    server_round: int
    kind: str
    partition: int
    down: dict
    up: dict


class RecordingApp:
    """A ClientApp wrapper that records the bytes of every message and reply."""

    def __init__(self, app) -> None:
        self.app = app
        self.exchanges: list[Exchange] = []

    def __call__(self, msg: Message, context: Context) -> Message:
        """Answer ``msg`` with the wrapped app and record both sides."""
        reply = self.app(msg, context)
        up = {"total": 0, "floor": 0, "tree": 0, "arrays": 0, "raw": 0}
        if not reply.has_error():
            up = _split_bytes(reply.content, _is_statistic)
        self.exchanges.append(
            Exchange(
                int(msg.content["config"]["server-round"]),
                msg.metadata.message_type,
                int(context.node_config["partition-id"]),
                _split_bytes(msg.content, _is_parameter),
                up,
            )
        )
        return reply

    def train(self) -> list[Exchange]:
        """The exchanges of the training rounds."""
        return [e for e in self.exchanges if e.kind == "train"]


def run_recorded(strategy, parts, labels=None, num_rounds=1000):
    """Run ``strategy`` in-process; return its run and the recorder of messages."""
    holder = {}

    def factory(loader):
        holder["app"] = RecordingApp(make_client_app(loader))
        return holder["app"]

    run = run_federated(
        strategy,
        parts,
        labels=labels,
        test_fraction=TEST_FRACTION if labels is not None else 0.0,
        num_rounds=num_rounds,
        client_app_factory=factory,
    )
    return run, holder["app"]


def _x(ratio: float) -> str:
    return f"{ratio:.2f}x"


def _mib(n_bytes: float) -> str:
    return f"{n_bytes / MIB:,.1f} MiB"


def _verdict(ok: bool) -> str:
    return "yes" if ok else "**no**"


# ----------------------------------------------------------- 1. the client step


def grow_to_level(X, level: int, seed: int = 0) -> tuple[TreeGrower, dict]:
    """Grow a tree on ``X`` until the ``2**level`` nodes of ``level`` are active.

    Returns the grower and the client's cache (it holds the current tree).
    """
    grower = TreeGrower(GrowthParams(n_init=1, max_depth=level + 1, random_state=seed))
    cache: dict = {}
    while len(grower.active_nodes()) < 2**level:
        if grower.done:
            raise RuntimeError(
                f"The tree finished with {grower.tree.n_nodes} nodes before level "
                f"{level} had {2**level} active nodes; use more rows."
            )
        grower.update({0: client_step(X, grower.instructions(0), 0, cache)})
    return grower, cache


def without_tree(instructions: dict) -> dict:
    """The instructions a client that keeps the current tree receives."""
    return {
        key: value
        for key, value in instructions.items()
        if not key.startswith(("tree.", "transform.")) or key == "tree.revision"
    }


def sklearn_em_iteration(X, weights, means, covariances) -> Callable:
    """One E-step and one M-step of scikit-learn's ``GaussianMixture``.

    The mixture starts from the given parameters through its own
    ``_initialize`` (no k-means); the returned function runs ``_e_step`` and
    ``_m_step`` once each.
    """
    mixture = GaussianMixture(
        len(weights),
        covariance_type="full",
        max_iter=1,
        weights_init=weights / weights.sum(),
        means_init=means,
        precisions_init=np.linalg.inv(covariances),
    )
    mixture._initialize(X, None)

    def iteration() -> None:
        _, log_resp = mixture._e_step(X)
        mixture._m_step(X, log_resp)

    return iteration


def bench_client_step(settings: Settings) -> list[Row]:
    """Item 1: time and peak memory of a client step against scikit-learn."""
    n, d = settings.step_rows, settings.step_features
    X, _ = hierarchy_data(n, d)
    grower, cache = grow_to_level(X[: min(n, 50_000)], level=3)
    instructions = grower.instructions(0)
    client_step(X, instructions, 0, cache)
    lean = without_tree(instructions)

    tree, active = grower.tree, grower.active_nodes()
    path = tree.path_weights()
    level = [
        (
            path[v] * lean[f"task.{v}.0.weights"],
            lean[f"task.{v}.0.means"],
            lean[f"task.{v}.0.covariances"],
        )
        for v in active
    ]
    weights, means, covariances = (np.concatenate(p) for p in zip(*level, strict=True))
    sklearn_16 = sklearn_em_iteration(X, weights, means, covariances)
    children = tree.children(0)
    sklearn_2 = sklearn_em_iteration(
        X, tree.weight[children], tree.means[children], tree.covariances[children]
    )
    seconds = interleaved(
        {
            "ours": lambda: client_step(X, lean, 0, cache),
            "sklearn_16": sklearn_16,
            "sklearn_2": sklearn_2,
        },
        settings.repeats,
    )
    ours, sk16, sk2 = (
        np.median(seconds[k]) for k in ("ours", "sklearn_16", "sklearn_2")
    )
    pairs = np.median(np.divide(seconds["ours"], seconds["sklearn_16"]))
    peak = traced_peak(lambda: client_step(X, lean, 0, cache))
    sk_peak = traced_peak(sklearn_16)

    shape = f"n={n:,}, d={d}, {len(active)} active nodes, K=2, full"
    return [
        Row(
            "1",
            f"client step time ({shape}; tree kept by the client); median of "
            f"{settings.repeats}",
            f"{ours:.3f} s = {_x(pairs)} sklearn",
            f"<= 0.50x sklearn-16 (_e_step + _m_step: {sk16:.3f} s)",
            f"{sk2:.3f} s (sklearn EM iteration, K=2)",
            _x(ours / sk2),
            _verdict(pairs <= 0.5),
        ),
        Row(
            "1",
            "client step peak memory (tracemalloc, above the data)",
            f"{_mib(peak)} = {_x(peak / X.nbytes)} data",
            f"<= 2x data ({_mib(2 * X.nbytes)})",
            f"{_mib(X.nbytes)} (the data; sklearn-16: {_x(sk_peak / X.nbytes)})",
            _x(peak / X.nbytes),
            _verdict(peak <= 2 * X.nbytes),
        ),
    ]


# ------------------------------------------------------------------ 2. rounds


class TracedFedEM(FedEM):
    """FedEM that keeps its mixture after every round, for held-out curves."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.snapshots: list[tuple[int, FlatMixture]] = []

    def fold(self, stats: dict[int, dict[str, np.ndarray]]) -> dict[str, float]:
        """Fold as FedEM does, then keep the mixture it gives (once it has one)."""
        values = super().fold(stats)
        if getattr(self, "weights_", None) is not None:
            mixture = FlatMixture(
                self.weights_.copy(), self.means_.copy(), self.covariances_.copy()
            )
            self.snapshots.append((len(self.history) + 1, mixture))
        return values


def critical_path(grower: TreeGrower) -> tuple[int, float]:
    """Rounds of the longest chain of nodes, and mean EM steps per node.

    Each node takes as many rounds as its longest-running candidate took EM
    steps (one more with a final full step; one for a node that got no data);
    its children start in the round after.
    """
    tree = grower.tree
    steps = np.zeros(tree.n_nodes, dtype=np.int64)
    for node, logliks in grower.em_logliks.items():
        steps[node] = max(len(c) for c in logliks) + int(grower.needs_final_step)
    steps[tree.reason == EMPTY] = 1
    chain = np.zeros(tree.n_nodes, dtype=np.int64)
    for node in range(tree.n_nodes):
        above = chain[tree.parent[node]] if tree.parent[node] >= 0 else 0
        chain[node] = above + steps[node]
    fitted = steps[steps > 0]
    return 1 + int(chain.max()), float(fitted.mean()) if fitted.size else 0.0


def pooled_test_rows(parts) -> np.ndarray:
    """Every client's held-out rows, as :func:`run_federated` splits them."""
    return np.vstack(
        [
            split_client_data(p, None, TEST_FRACTION, 0, client).X_test
            for client, p in enumerate(parts)
        ]
    )


def bench_rounds(settings: Settings) -> tuple[list[Row], list[tuple]]:
    """Item 2: rounds of FedGMMTree on digits against FedEM and the critical path.

    Returns the rows and, for item 3, ``(name, run, recorder, strategy)`` of
    each FedGMMTree run.
    """
    X, y = load_digits(return_X_y=True)
    rows_of = partition(y, "dirichlet", 10, seed=0, alpha=0.5)
    parts, labels = [X[r] for r in rows_of], [y[r] for r in rows_of]
    rows, runs = [], []
    variants = [
        (f"digits, PCA {settings.digits_pca}", settings.digits_pca, {}),
        ("digits, raw 64", None, {}),
        (
            f"digits, PCA {settings.digits_pca}, init_steps=5",
            settings.digits_pca,
            {"init_steps": 5},
        ),
    ]
    for name, pca, options in variants:
        strategy = FedGMMTree(
            n_components_pca=pca,
            n_clusters=10,
            max_depth=settings.tree_max_depth,
            random_state=0,
            **options,
        )
        run, recorder = run_recorded(strategy, parts, labels)
        runs.append((name, run, recorder, strategy))
        model = strategy.model()
        features = [apply_transform(p, model.transform_) for p in parts]
        rows.append(_rounds_row(settings, name, run, strategy, features, labels))
    return rows, runs


def _rounds_row(settings, name, run: FederatedRun, strategy, features, labels):
    tree_loglik = run.evaluation["heldout_mean_loglik"]
    n_leaves = strategy.model().n_leaves_
    fedem = TracedFedEM(
        n_leaves, init="kfed", max_iter=settings.fedem_max_iter, random_state=0
    )
    fedem_run = run_federated(
        fedem,
        features,
        labels=labels,
        test_fraction=TEST_FRACTION,
        client_app_factory=make_client_app,
    )
    X_test = pooled_test_rows(features)
    curve = [(r, m.score(X_test)) for r, m in fedem.snapshots]
    reached = [r for r, loglik in curve if loglik >= tree_loglik]
    path, mean_steps = critical_path(strategy.grower)
    depth = strategy.model().depth_
    if reached:
        target = (
            f"<= FedEM (K={n_leaves}, k-FED init) rounds to the same held-out "
            f"loglik: {reached[0]} (it converged after {fedem_run.rounds})"
        )
        ok = run.rounds <= reached[0]
    else:
        best_round, best = max(curve, key=lambda c: c[1])
        target = (
            f"FedEM (K={n_leaves}) never reaches it: best {best:.2f} at round "
            f"{best_round} of {fedem_run.rounds}"
        )
        ok = True
    return Row(
        "2",
        f"rounds, {name} (held-out loglik {tree_loglik:.2f})",
        f"{run.rounds}",
        target,
        f"{path} (critical path; depth {depth} x {mean_steps:.1f} EM steps/node)",
        _x(run.rounds / path),
        _verdict(ok),
    )


# ------------------------------------------------------------------- 3. bytes


def bytes_rows(name: str, run: FederatedRun, recorder: RecordingApp) -> list[Row]:
    """Item 3: bytes each way per round and in total, against their floor."""
    train = recorder.train()
    rounds = sorted({e.server_round for e in train})
    down = np.array(
        [sum(e.down["total"] for e in train if e.server_round == r) for r in rounds]
    )
    up = np.array(
        [sum(e.up["total"] for e in train if e.server_round == r) for r in rounds]
    )
    down_floor = sum(e.down["floor"] for e in train)
    up_floor = sum(e.up["floor"] for e in train)
    tree_bytes = sum(e.down["tree"] for e in train)
    with_tree = sum(1 for e in train if e.down["tree"] > 0)
    n_clients = len({e.partition for e in train})
    with_work = sum(1 for e in train if e.up["floor"] > 0)
    consistent = down.sum() == run.bytes_down and up.sum() == run.bytes_up
    check = "" if consistent else " (differs from the strategy's count!)"
    total, floor = down.sum() + up.sum(), down_floor + up_floor
    return [
        Row(
            "3",
            f"bytes down per round, mean / max ({name}){check}",
            f"{down.mean() / 1024:,.1f} / {down.max() / 1024:,.1f} KiB",
            "the tree only when it changed",
            f"{down_floor / len(rounds) / 1024:,.1f} KiB/round (candidate "
            f"mixtures); tree in {with_tree} of {len(train)} messages, "
            f"{tree_bytes / 1024:,.0f} KiB",
            _x(down.sum() / max(down_floor, 1)),
            "-",
        ),
        Row(
            "3",
            f"bytes up per round, mean / max ({name})",
            f"{up.mean() / 1024:,.1f} / {up.max() / 1024:,.1f} KiB",
            "<= 1.5x the statistics",
            f"{up_floor / len(rounds) / 1024:,.1f} KiB/round (the statistics)",
            _x(up.sum() / max(up_floor, 1)),
            _verdict(up.sum() <= 1.5 * up_floor),
        ),
        Row(
            "3",
            f"bytes in total, both ways ({name}, {len(rounds)} rounds)",
            f"{_mib(total)} ({_mib(down.sum())} down, {_mib(up.sum())} up)",
            "<= 1.5x floor",
            f"{_mib(floor)} (statistics up + candidate mixtures down)",
            _x(total / max(floor, 1)),
            _verdict(total <= 1.5 * floor),
        ),
        Row(
            "3",
            f"messages sent ({name}; {n_clients} clients x {len(rounds)} rounds "
            f"= {n_clients * len(rounds)})",
            f"{len(train)}",
            "none to a client without data in an active node",
            f"{with_work} (replies that carry statistics)",
            _x(len(train) / max(with_work, 1)),
            "-",
        ),
    ]


# --------------------------------------------------------- 4. engine overhead


def message_pattern(recorder: RecordingApp) -> list[list[tuple]]:
    """Per round, ``(kind, partition, arrays/bytes down, arrays/bytes up)``."""
    rounds = defaultdict(list)
    for e in recorder.exchanges:
        key = (e.server_round, e.kind != "train")
        rounds[key].append(
            (
                e.kind,
                e.partition,
                e.down["arrays"],
                e.down["raw"],
                e.up["arrays"],
                e.up["raw"],
            )
        )
    return [rounds[key] for key in sorted(rounds)]


def _payload(n_arrays: int, n_bytes: int) -> ArrayRecord:
    """``n_arrays`` zero arrays of ``n_bytes`` bytes in all."""
    n_arrays = max(n_arrays, 1)
    size = n_bytes // n_arrays
    return ArrayRecord(
        {f"payload.{i}": Array(np.zeros(size, dtype=np.uint8)) for i in range(n_arrays)}
    )


noop_app = ClientApp()


def _noop_reply(msg: Message) -> Message:
    config = msg.content["config"]
    payload = _payload(int(config["reply-arrays"]), int(config["reply-bytes"]))
    return Message(content=RecordDict({"payload": payload}), reply_to=msg)


@noop_app.train()
def _noop_train(msg: Message, context: Context) -> Message:
    """Reply with zeros of the recorded size; compute nothing."""
    return _noop_reply(msg)


@noop_app.evaluate()
def _noop_evaluate(msg: Message, context: Context) -> Message:
    """Reply with zeros of the recorded size; compute nothing."""
    return _noop_reply(msg)


class NoOpServer:
    """Sends a recorded message pattern round by round and ignores the replies.

    Parameters
    ----------
    pattern : list of list of tuple
        From :func:`message_pattern`; partition ``p`` is played by the
        ``p``-th node in id order.
    """

    def __init__(self, pattern: list[list[tuple]]) -> None:
        self.pattern = pattern
        self.messages_sent = 0

    def start(self, grid: Grid, num_rounds: int = 0, timeout: float = 600.0) -> None:
        """Play every round of the pattern (``num_rounds`` is not used)."""
        nodes = sorted(grid.get_node_ids())
        for server_round, exchanges in enumerate(self.pattern, start=1):
            messages = [
                Message(
                    content=RecordDict(
                        {
                            "payload": _payload(down_arrays, down_bytes),
                            "config": ConfigRecord(
                                {
                                    "server-round": server_round,
                                    "reply-arrays": int(up_arrays),
                                    "reply-bytes": int(up_bytes),
                                }
                            ),
                        }
                    ),
                    message_type=kind,
                    dst_node_id=nodes[partition],
                )
                for kind, partition, down_arrays, down_bytes, up_arrays, up_bytes in (
                    exchanges
                )
            ]
            replies = list(grid.send_and_receive(messages, timeout=timeout))
            self.messages_sent += len(messages)
            failed = [r for r in replies if r.has_error()]
            if len(replies) != len(messages) or failed:
                raise RuntimeError(
                    f"No-op round {server_round}: {len(replies)} replies to "
                    f"{len(messages)} messages, {len(failed)} with errors."
                )


def timed_start(strategy, client_app, n_clients, engine, num_rounds) -> float:
    """Seconds of ``strategy.start`` once every node is connected."""
    holder: dict = {}

    def main(grid: Grid) -> None:
        deadline = time.monotonic() + 300.0
        while len(list(grid.get_node_ids())) < n_clients:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{n_clients} nodes did not connect in 300 s.")
            time.sleep(0.1)
        started = time.perf_counter()
        strategy.start(grid, num_rounds=num_rounds, timeout=600.0)
        holder["seconds"] = time.perf_counter() - started

    if engine == "inprocess":
        configs = [
            {"partition-id": i, "num-partitions": n_clients} for i in range(n_clients)
        ]
        main(InProcessGrid(client_app, configs))
    else:
        server_app = ServerApp()

        @server_app.main()
        def _main(grid: Grid, context: Context) -> None:
            main(grid)

        run_on_ray(server_app, client_app, n_clients)
    if "seconds" not in holder:
        raise RuntimeError(f"The {engine} run ended without a result; see the log.")
    return holder["seconds"]


def carrying_noop_app(ballast) -> ClientApp:
    """The no-op app, carrying ``ballast`` as FedGMMTree's app carries its loader.

    Flower's Ray backend pickles the ClientApp with every message, so whatever
    the app holds travels each time.
    """
    app = ClientApp()
    app.train()(_noop_train)
    app.evaluate()(_noop_evaluate)
    app.ballast = ballast
    return app


def bench_engine(settings: Settings, n_clients: int, engine: str) -> list[Row]:
    """Item 4: a capped FedGMMTree run against the no-op app with its messages.

    On Ray, one more run finds what the app's own luggage costs: the no-op app
    carrying the data loader of the FedGMMTree app (on a local Ray, the paths of
    the clients' files, as :func:`simulations.engine.simulate` runs it).
    """
    n_rows = n_clients * settings.rows_per_client
    X, _ = hierarchy_data(n_rows, settings.engine_features, seed=1)
    parts = np.array_split(X, n_clients)
    rounds = settings.rounds
    _, recorder = run_recorded(FedGMMTree(random_state=0), parts, num_rounds=rounds)
    pattern = message_pattern(recorder)
    strategy = FedGMMTree(random_state=0, min_nodes=n_clients)
    with engine_loader(ArrayClients(parts), engine) as loader:
        app = make_client_app(loader)
        tree_s = timed_start(strategy, app, n_clients, engine, rounds)
        noop_s = timed_start(NoOpServer(pattern), noop_app, n_clients, engine, rounds)
        if engine == "ray":
            carried = len(pickle.dumps(loader))
            carrying = carrying_noop_app(loader)
            carrying_s = timed_start(
                NoOpServer(pattern), carrying, n_clients, engine, rounds
            )

    train = recorder.train()
    recorded = sum(e.down["total"] + e.up["total"] for e in train)
    same = strategy.bytes_down + strategy.bytes_up == recorded
    n_messages = sum(len(r) for r in pattern)
    arrays_down = np.mean([e.down["arrays"] for e in recorder.exchanges])
    arrays_up = np.mean([e.up["arrays"] for e in recorder.exchanges])
    rows = [
        Row(
            "4",
            f"FedGMMTree run, {n_clients:,} clients, {engine}, {rounds} rounds (cap) "
            f"+ evaluation: {n_messages:,} messages of {arrays_down:.0f} arrays "
            f"down, {arrays_up:.0f} up (mean)"
            + ("" if same else "; the run's bytes differ from the recorded pattern"),
            f"{tree_s:.1f} s ({tree_s / len(pattern):.2f} s/round)",
            "<= 1.3x floor",
            f"{noop_s:.1f} s (no-op app, same messages)",
            _x(tree_s / noop_s),
            _verdict(tree_s <= 1.3 * noop_s),
        )
    ]
    if engine == "ray":
        rows.append(
            Row(
                "4",
                f"why: the no-op app carrying FedGMMTree's data loader "
                f"({carried / 1024:,.0f} KiB pickled, sent with every message), "
                f"{n_clients:,} clients, ray",
                f"{carrying_s:.1f} s",
                "-",
                f"{noop_s:.1f} s (no-op app, same messages)",
                _x(carrying_s / noop_s),
                "-",
            )
        )
    return rows


# ------------------------------------------------------------------- 5. scale


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"{field} not in /proc/self/status")


def scale_fit(n_rows: int, settings: Settings, threads: int) -> dict:
    """One full in-process fit on synthetic data: seconds, rounds, memory.

    Meant for a fresh process (:func:`bench_scale` starts one per size), so the
    peak resident set size is this fit's own. The peak counts from after the
    data are drawn; it includes the copy of each client's rows that the
    simulated clients keep.
    """
    logging.getLogger("flwr").setLevel(logging.ERROR)
    with threadpool_limits(threads), warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        X, _ = hierarchy_data(n_rows, settings.scale_features, seed=2)
        parts = np.array_split(X, settings.scale_clients)
        # a one-round fit first, so imports and caches do not count as the peak
        warm_up = FedGMMTree(max_depth=0)
        run_federated(
            warm_up, [X[:100], X[100:200]], client_app_factory=make_client_app
        )
        gc.collect()
        before = _status_kib("VmRSS")
        try:
            # resets the peak resident set size to the current one (Linux)
            with open("/proc/self/clear_refs", "w") as clear_refs:
                clear_refs.write("5")
        except OSError:
            pass
        started = time.perf_counter()
        strategy = FedGMMTree(max_depth=settings.scale_max_depth, random_state=0)
        fit = run_federated(strategy, parts, client_app_factory=make_client_app)
        seconds = time.perf_counter() - started
        peak = _status_kib("VmHWM")
    return {
        "seconds": seconds,
        "rounds": fit.rounds,
        "leaves": strategy.model().n_leaves_,
        "peak": (peak - before) * 1024,
        "data": X.nbytes,
    }


def bench_scale(settings: Settings, threads: int) -> list[Row]:
    """Item 5: wall time and peak memory of full fits as the data grows."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    rows, previous = [], None
    context = multiprocessing.get_context("spawn")
    for n in settings.scale_sizes:
        with ProcessPoolExecutor(1, mp_context=context) as pool:
            fit = pool.submit(scale_fit, n, settings, threads).result()
        per_round = fit["seconds"] / fit["rounds"]
        if previous is None:
            growth, ok = "-", "-"
        else:
            # time: the exponent of s/round in n; memory: peak added per data byte
            slope = np.log(per_round / previous[1]) / np.log(n / previous[0])
            marginal = (fit["peak"] - previous[2]) / (fit["data"] - previous[3])
            growth = f"time exponent {slope:.2f}; memory +{marginal:.1f} B per data B"
            ok = _verdict(slope <= 1.1)
        rows.append(
            Row(
                "5",
                f"full fit, n={n:,}, d={settings.scale_features}, "
                f"{settings.scale_clients} clients, in-process",
                f"{fit['seconds']:.1f} s, {fit['rounds']} rounds, {fit['leaves']} "
                f"leaves, {per_round * 1e3:.0f} ms/round; peak RSS "
                f"+{_mib(fit['peak'])}",
                "s/round at most linear in n (exponent <= 1.1)",
                f"{_mib(fit['data'])} data (peak = {_x(fit['peak'] / fit['data'])})",
                growth,
                ok,
            )
        )
        previous = (n, per_round, fit["peak"], fit["data"])
    return rows


# -------------------------------------------------------------------- the table


def machine() -> str:
    """CPU, cores, memory and library versions of this machine."""
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as info:
            names = [ln.split(":", 1)[1].strip() for ln in info if "model name" in ln]
        cpu = names[0] if names else cpu
        with open("/proc/meminfo") as info:
            total_kib = int(info.readline().split()[1])
        memory = f"{total_kib / 2**20:.0f} GiB"
    except OSError:
        memory = "unknown memory"
    import flwr
    import sklearn

    return (
        f"{cpu}, {os.cpu_count()} cores (shared), {memory}; Python "
        f"{platform.python_version()}, numpy {np.__version__}, scikit-learn "
        f"{sklearn.__version__}, flwr {flwr.__version__}"
    )


def markdown(rows: list[Row]) -> str:
    """The rows as one Markdown table."""
    lines = [
        "| # | figure | measured | target | floor | measured / floor | met |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r.item} | {r.figure} | {r.measured} | {r.target} | {r.floor} "
            f"| {r.ratio} | {r.met} |"
        )
    return "\n".join(lines)


_STARTED = time.perf_counter()


def _progress(text: str) -> None:
    elapsed = time.perf_counter() - _STARTED
    print(f"perf [{elapsed:5.0f} s]: {text}", file=sys.stderr, flush=True)


def run(settings: Settings, threads: int = 1, items=(1, 2, 3, 4, 5)) -> list[Row]:
    """Measure the items asked for (1 to 5); one row per figure."""
    rows = []
    if 1 in items:
        _progress("1. client step")
        rows += bench_client_step(settings)
    if 2 in items or 3 in items:
        _progress("2. rounds on digits (FedGMMTree and FedEM); 3. their bytes")
        round_rows, runs = bench_rounds(settings)
        rows += round_rows if 2 in items else []
        for name, fed_run, recorder, _ in runs if 3 in items else []:
            rows += bytes_rows(name, fed_run, recorder)
    for engine in settings.engines if 4 in items else ():
        for n_clients in settings.clients:
            _progress(f"4. engine overhead, {n_clients} clients, {engine}")
            rows += bench_engine(settings, n_clients, engine)
        if engine == "ray" and 1000 not in settings.clients:
            rows.append(
                Row(
                    "4",
                    "FedGMMTree run, 1,000 clients, ray",
                    "not run (add --clients 100,1000)",
                    "<= 1.3x floor",
                    "-",
                    "-",
                    "-",
                )
            )
    if 5 in items:
        _progress("5. scale (a fresh process per size)")
        rows += bench_scale(settings, threads)
    _progress("done")
    return rows


def main(argv: list[str] | None = None) -> None:
    """Print the performance table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (< 1 min)")
    parser.add_argument("--clients", default=None, help="e.g. 100,1000 (item 4)")
    parser.add_argument("--rounds", type=int, default=None, help="round cap, item 4")
    parser.add_argument(
        "--engines", default=None, help="item 4: inprocess,ray (default both)"
    )
    parser.add_argument("--full", action="store_true", help="item 5 up to 10^6 rows")
    parser.add_argument("--repeats", type=int, default=None, help="item 1 repeats")
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads")
    parser.add_argument("--items", default="1,2,3,4,5", help="e.g. 4 or 1,5")
    args = parser.parse_args(argv)
    items = tuple(int(i) for i in args.items.split(","))

    settings = QUICK if args.quick else Settings()
    changes = {}
    if args.clients:
        changes["clients"] = tuple(int(c) for c in args.clients.split(","))
    if args.rounds:
        changes["rounds"] = args.rounds
    if args.engines:
        changes["engines"] = tuple(args.engines.split(","))
    if args.full:
        changes["scale_sizes"] = (*settings.scale_sizes, 10 * settings.scale_sizes[-1])
    if args.repeats:
        changes["repeats"] = args.repeats
    settings = Settings(**{**vars(settings), **changes})

    # Ray's workers read these when they start; this process is set below
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(args.threads)
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
    logging.getLogger("flwr").setLevel(logging.ERROR)
    started = time.perf_counter()
    with threadpool_limits(args.threads), warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        rows = run(settings, args.threads, items)
    wall = time.perf_counter() - started

    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    command = "python -m simulations.perf " + " ".join(argv or sys.argv[1:])
    print(f"FedGMMTree performance, {now}")
    print(f"machine: {machine()}; BLAS threads: {args.threads}")
    print(f"command: {command.strip()}\n")
    print(markdown(rows))
    print(f"\nwall time: {wall:.0f} s")


if __name__ == "__main__":
    main()
