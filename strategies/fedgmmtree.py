"""``FedGMMTree``: grow a tree of Gaussians over a Flower federation.

The strategy owns no maths: it ships the core's instructions to the nodes, reads
their statistics back and hands them, sorted by client, to
:class:`fedgmmtree.TreeGrower`.
"""

import time
from collections.abc import Iterable
from logging import INFO, WARNING

import numpy as np
from flwr.app import (
    Array,
    ArrayRecord,
    ConfigRecord,
    Message,
    MessageType,
    MetricRecord,
    RecordDict,
)
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Result, Strategy
from flwr.supercore import log

from fedgmmtree import FederationError, GMMTree, GrowthParams, TreeGrower
from fedgmmtree.metrics import clustering_scores

INSTRUCTIONS_KEY = "instructions"
STATS_KEY = "stats"
CLIENT_KEY = "client"
MODEL_KEY = "model"


def to_array_record(arrays: dict[str, np.ndarray]) -> ArrayRecord:
    """Named numpy arrays as an ArrayRecord, one key each."""
    return ArrayRecord({key: Array(np.asarray(value)) for key, value in arrays.items()})


def from_array_record(record: ArrayRecord) -> dict[str, np.ndarray]:
    """An ArrayRecord as named numpy arrays."""
    return {key: value.numpy() for key, value in record.items()}


def _payload_bytes(msg: Message) -> int:
    """Bytes of the arrays a message carries (the statistics or the tree)."""
    if msg.has_error():
        return 0
    return sum(
        record.count_bytes()
        for record in msg.content.values()
        if isinstance(record, ArrayRecord)
    )


class FedGMMTree(Strategy):
    """Federated growth of a tree of Gaussian mixtures.

    Each round refines every active node by one EM step on the statistics of the
    clients that hold data in it; the tree is complete when no node is active.
    Tree parameters mean what they mean in :class:`fedgmmtree.GMMTree`.

    Parameters
    ----------
    n_clusters : int or None, default=None
        Leaves merged bottom-up to this many clusters in :meth:`model`.
    min_nodes : int, default=1
        Nodes that must be connected before the first round.
    node_wait_timeout : float, default=120.0
        Seconds to wait for ``min_nodes``; then a FederationError.
    min_replies : float, default=1.0
        Share of the clients sent work whose valid replies a round needs;
        otherwise the same step is sent again.
    max_retries : int, default=2
        Times a step is sent again before the run stops.
    **growth
        The settings of :class:`fedgmmtree.GrowthParams`.
    """

    def __init__(
        self,
        *,
        n_clusters: int | None = None,
        min_nodes: int = 1,
        node_wait_timeout: float = 120.0,
        min_replies: float = 1.0,
        max_retries: int = 2,
        **growth,
    ) -> None:
        self.params = GrowthParams(**growth).validate()
        if not 0.0 < min_replies <= 1.0:
            raise ValueError(f"min_replies must be in (0, 1], but got {min_replies!r}.")
        self.n_clusters = n_clusters
        self.min_nodes = min_nodes
        self.node_wait_timeout = node_wait_timeout
        self.min_replies = min_replies
        self.max_retries = max_retries
        self.grower = TreeGrower(self.params)
        self.client_of_node: dict[int, int] = {}
        self.bytes_down = 0
        self.bytes_up = 0
        self.round_records: list[dict] = []

    # ------------------------------------------------------------- Strategy API

    def summary(self) -> None:
        """Log the settings as a small tree."""
        log(INFO, "\t├── Tree growth:")
        for name, value in vars(self.params).items():
            log(INFO, "\t│\t├── %s: %s", name, value)
        log(INFO, "\t└── Federation:")
        log(INFO, "\t\t├── min_nodes: %s", self.min_nodes)
        log(INFO, "\t\t├── min_replies: %s", self.min_replies)
        log(INFO, "\t\t├── max_retries: %s", self.max_retries)
        log(INFO, "\t\t└── n_clusters: %s", self.n_clusters)

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """One message per node that holds data in an active node."""
        messages = []
        for node_id in sorted(grid.get_node_ids()):
            client = self.client_of_node.get(node_id)
            if client is not None and not self.grower.wants(client):
                continue
            record = to_array_record(self.grower.instructions(client))
            content = RecordDict(
                {
                    INSTRUCTIONS_KEY: record,
                    "config": ConfigRecord({"server-round": int(server_round)}),
                }
            )
            messages.append(
                Message(
                    content=content, message_type=MessageType.TRAIN, dst_node_id=node_id
                )
            )
        return messages

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Fold the replies of one round into the tree (call once per round)."""
        collected = self._collect(replies)
        record = self.grower.update(collected)
        record["clients"] = len(collected)
        return to_array_record(self.grower.tree.to_arrays()), MetricRecord(
            {k: float(v) for k, v in record.items()}
        )

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """Send the final model to every node once the tree is complete."""
        if not self.grower.done:
            return []
        model = self.model()
        messages = []
        for node_id in sorted(grid.get_node_ids()):
            record = to_array_record(model.to_arrays())
            messages.append(
                Message(
                    content=RecordDict(
                        {
                            MODEL_KEY: record,
                            "config": ConfigRecord({"server-round": int(server_round)}),
                        }
                    ),
                    message_type=MessageType.EVALUATE,
                    dst_node_id=node_id,
                )
            )
        return messages

    def aggregate_evaluate(
        self, server_round: int, replies: Iterable[Message]
    ) -> MetricRecord | None:
        """Pool the clients' contingency tables and held-out log-likelihoods."""
        pairs: dict[tuple[int, int], int] = {}
        loglik, n_test = 0.0, 0
        for msg in sorted(replies, key=lambda m: m.metadata.src_node_id):
            if msg.has_error():
                log(
                    WARNING,
                    "aggregate_evaluate: node %d failed: %s",
                    msg.metadata.src_node_id,
                    msg.error.reason,
                )
                continue
            arrays = from_array_record(msg.content["evaluation"])
            empty = np.zeros(0, dtype=np.int64)
            for c, y, count in zip(
                arrays.get("pairs.cluster", empty),
                arrays.get("pairs.label", empty),
                arrays.get("pairs.count", empty),
                strict=True,
            ):
                pairs[(int(c), int(y))] = pairs.get((int(c), int(y)), 0) + int(count)
            loglik += float(arrays["test.loglik"][0])
            n_test += int(arrays["test.n"][0])
        scores = clustering_scores(pairs) if pairs else {}
        scores["heldout_mean_loglik"] = loglik / n_test if n_test else float("nan")
        scores["n_test"] = float(n_test)
        return MetricRecord({k: float(v) for k, v in scores.items()})

    # ----------------------------------------------------------------- the loop

    def start(
        self,
        grid: Grid,
        initial_arrays: ArrayRecord | None = None,
        num_rounds: int = 1000,
        timeout: float = 600.0,
        train_config: ConfigRecord | None = None,
        evaluate_config: ConfigRecord | None = None,
        evaluate_fn=None,
    ) -> Result:
        """Grow the tree until it is complete (at most ``num_rounds`` rounds).

        Returns Flower's ``Result``: the final model's arrays, one MetricRecord per
        round (active nodes, leaves, mean log-likelihood, bytes) and the final
        evaluation. The fitted estimator is :meth:`model`.
        """
        log(INFO, "Starting %s strategy:", self.__class__.__name__)
        self.summary()
        self._wait_for_nodes(grid)
        result = Result()
        started = time.time()
        server_round = 0
        while not self.grower.done and server_round < num_rounds:
            server_round += 1
            arrays, metrics = self._train_round(grid, server_round, timeout)
            result.arrays = arrays
            result.train_metrics_clientapp[server_round] = metrics
        if not self.grower.done:
            log(
                WARNING,
                "num_rounds=%d reached with %d active nodes; they become leaves. "
                "Raise num_rounds for a complete tree.",
                num_rounds,
                len(self.grower.active_nodes()),
            )
            self.grower.stop()
        result.arrays = to_array_record(self.model().to_arrays())
        replies = grid.send_and_receive(
            self.configure_evaluate(server_round, result.arrays, ConfigRecord(), grid),
            timeout=timeout,
        )
        evaluation = self.aggregate_evaluate(server_round, replies)
        if evaluation is not None:
            result.evaluate_metrics_clientapp[server_round] = evaluation
        log(
            INFO,
            "FedGMMTree finished in %.2fs: %d rounds, %d leaves",
            time.time() - started,
            server_round,
            self.model().n_leaves_,
        )
        return result

    def _wait_for_nodes(self, grid: Grid) -> None:
        deadline = time.time() + self.node_wait_timeout
        while len(list(grid.get_node_ids())) < self.min_nodes:
            if time.time() > deadline:
                raise FederationError(
                    f"Only {len(list(grid.get_node_ids()))} nodes connected within "
                    f"{self.node_wait_timeout:.0f}s, but min_nodes={self.min_nodes}. "
                    "Start more SuperNodes or lower min_nodes."
                )
            time.sleep(0.2)

    def _train_round(self, grid: Grid, server_round: int, timeout: float):
        for attempt in range(self.max_retries + 1):
            messages = list(
                self.configure_train(server_round, ArrayRecord(), ConfigRecord(), grid)
            )
            replies = list(grid.send_and_receive(messages, timeout=timeout))
            down = sum(_payload_bytes(m) for m in messages)
            up = sum(_payload_bytes(r) for r in replies)
            self.bytes_down += down
            self.bytes_up += up
            valid = self._count_valid(messages, replies)
            if valid >= self.min_replies * len(messages):
                arrays, metrics = self.aggregate_train(server_round, replies)
                metrics["bytes_down"] = float(down)
                metrics["bytes_up"] = float(up)
                self._log_round(server_round, metrics)
                return arrays, metrics
            log(
                WARNING,
                "Round %d: %d of %d clients answered (min_replies=%.2f); "
                "sending the same step again (attempt %d of %d).",
                server_round,
                valid,
                len(messages),
                self.min_replies,
                attempt + 1,
                self.max_retries,
            )
        raise FederationError(
            f"Round {server_round}: too few clients answered after "
            f"{self.max_retries} retries; the tree so far has "
            f"{self.grower.tree.n_nodes if self.grower.tree else 0} nodes."
        )

    def _count_valid(self, messages, replies) -> int:
        sent = {m.metadata.dst_node_id for m in messages}
        answered = {
            r.metadata.src_node_id
            for r in replies
            if not r.has_error() and r.metadata.src_node_id in sent
        }
        missing = sorted(sent - {r.metadata.src_node_id for r in replies})
        if missing:
            log(WARNING, "No reply (timeout) from nodes %s", missing)
        return len(answered)

    def _collect(self, replies: Iterable[Message]) -> dict[int, dict]:
        """Replies keyed by client, errors logged and left out."""
        collected: dict[int, dict] = {}
        for msg in replies:
            node_id = msg.metadata.src_node_id
            if msg.has_error():
                log(
                    WARNING,
                    "Node %d (client %s) failed and is left out: %s",
                    node_id,
                    self.client_of_node.get(node_id, "?"),
                    msg.error.reason,
                )
                continue
            try:
                record = msg.content[STATS_KEY]
                client = int(msg.content[CLIENT_KEY]["client-key"])
            except (KeyError, TypeError, ValueError) as exc:
                log(
                    WARNING,
                    "Node %d sent a malformed reply (%s); left out",
                    node_id,
                    exc,
                )
                continue
            known = self.client_of_node.setdefault(node_id, client)
            if known != client or client in collected:
                log(
                    WARNING,
                    "Node %d claims client key %d, already used; left out",
                    node_id,
                    client,
                )
                continue
            collected[client] = from_array_record(record)
        return collected

    def _log_round(self, server_round: int, metrics: MetricRecord) -> None:
        new = [r for r in self.grower.rejections if r.round == self.grower.round]
        for rejection in new:
            log(
                WARNING,
                "Round %d: statistics of client %d for node %d left out: %s",
                rejection.round,
                rejection.client,
                rejection.node,
                rejection.reason,
            )
        log(
            INFO,
            "[ROUND %d] active nodes %d, leaves %d, mean log-likelihood %.4f",
            server_round,
            int(metrics["active"]),
            int(metrics["leaves"]),
            float(metrics["mean_loglik"]),
        )

    # ------------------------------------------------------------------ results

    def model(self) -> GMMTree:
        """The fitted tree as a :class:`fedgmmtree.GMMTree`."""
        if not self.grower.done:
            raise RuntimeError("The tree is not complete yet; call start() first.")
        return GMMTree.from_grower(self.grower, n_clusters=self.n_clusters)
