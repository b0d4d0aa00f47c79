"""The loop shared by the federated baselines, on Flower's message API.

A baseline is a short sequence of steps (one message type each, the same
instructions to every node), then one evaluation round. This module sends the
steps, counts the bytes each way, drops replies that failed or do not pass the
baseline's checks (logging node, client and reason), and hands the rest to the
baseline sorted by client key, so floating-point sums do not depend on the
order in which replies arrive.
"""

import time
from abc import abstractmethod
from collections.abc import Iterable
from logging import INFO, WARNING

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Result, Strategy
from flwr.supercore import log

from fedgmmtree import FederationError
from fedgmmtree.metrics import clustering_scores

from ._baseline_client import (
    CLIENT_KEY,
    CONFIG_KEY,
    EVALUATION_KEY,
    INSTRUCTIONS_KEY,
    STATS_KEY,
    from_record,
    to_record,
)

Step = tuple[str, dict[str, np.ndarray], dict]
COUNT_FIELDS = ("cluster", "label", "count")


def payload_bytes(msg: Message) -> int:
    """Bytes of the records a message carries, arrays and configs (0 for an error).

    Configs count too: a one-shot baseline sends its settings and nothing else.
    """
    if msg.has_error():
        return 0
    return sum(record.count_bytes() for record in msg.content.values())


def check_positive_int(name: str, value) -> int:
    """Return ``value`` or raise a ValueError naming the setting."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, but got {value!r}.")
    return int(value)


def check_evaluation(arrays: dict[str, np.ndarray]) -> str | None:
    """Why an evaluation reply is unusable, or None."""
    if "test.n" not in arrays:
        return "test.n missing"
    lengths = {arrays.get(f"pairs.{n}", np.zeros(0)).shape for n in COUNT_FIELDS}
    if len(lengths) != 1:
        return f"pairs.* arrays of different shapes {sorted(lengths)}"
    return None


class FederatedBaseline(Strategy):
    """Base of the federated baselines: steps until done, then one evaluation.

    A subclass says what the next step is (:meth:`next_step`), what makes a
    reply usable (:meth:`check_reply`), how the replies of a step change its
    state (:meth:`fold`), and what each client evaluates
    (:meth:`evaluation_step`).

    Parameters
    ----------
    min_nodes : int, default=1
        Nodes that must be connected before the first round.
    node_wait_timeout : float, default=120.0
        Seconds to wait for ``min_nodes``; then a FederationError.

    Attributes
    ----------
    bytes_down, bytes_up : int
        Bytes of the records (arrays and configs) sent to and received from the
        clients in the training rounds; the evaluation round is not counted.
    history : list of dict
        One record per round: round, step, clients that answered, bytes and the
        step's own values.
    failures : list of dict
        Replies left out: round, node, client (-1 when unknown) and reason.
    client_of_node : dict of int to int
        Client key each node reported.
    """

    def __init__(self, *, min_nodes: int = 1, node_wait_timeout: float = 120.0):
        self.min_nodes = min_nodes
        self.node_wait_timeout = node_wait_timeout
        self.client_of_node: dict[int, int] = {}
        self.bytes_down = 0
        self.bytes_up = 0
        self.history: list[dict] = []
        self.failures: list[dict] = []
        self._step_name = ""

    # ------------------------------------------------------------ for subclasses

    @property
    @abstractmethod
    def done(self) -> bool:
        """Whether the model is complete."""

    @abstractmethod
    def next_step(self) -> Step:
        """``(message type, arrays, config)`` of the next training round."""

    @abstractmethod
    def check_reply(self, arrays: dict[str, np.ndarray]) -> str | None:
        """Why a reply of the current step is unusable, or None."""

    @abstractmethod
    def fold(self, stats: dict[int, dict[str, np.ndarray]]) -> dict[str, float]:
        """Take the valid replies of a step (keys in increasing order)."""

    @abstractmethod
    def evaluation_step(self, client: int | None) -> tuple[str, dict[str, np.ndarray]]:
        """``(message type, model arrays)`` that client evaluates."""

    def stop_early(self, num_rounds: int) -> None:
        """Called when ``num_rounds`` ends the run before :attr:`done`."""
        raise FederationError(
            f"{type(self).__name__} needs more rounds than num_rounds={num_rounds}."
        )

    @abstractmethod
    def model(self):
        """The fitted model."""

    def settings(self) -> dict:
        """Settings shown by :meth:`summary`."""
        return {}

    # ------------------------------------------------------------- Strategy API

    def summary(self) -> None:
        """Log the settings as a small tree."""
        items = list(self.settings().items()) + [("min_nodes", self.min_nodes)]
        log(INFO, "\t└── %s:", type(self).__name__)
        for i, (name, value) in enumerate(items):
            branch = "└──" if i == len(items) - 1 else "├──"
            log(INFO, "\t\t%s %s: %s", branch, name, value)

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """The next step, one message per connected node."""
        message_type, step_arrays, step_config = self.next_step()
        self._step_name = message_type
        return [
            self._message(server_round, node_id, message_type, step_arrays, step_config)
            for node_id in sorted(grid.get_node_ids())
        ]

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Fold the valid replies of one step into the baseline's state."""
        stats = self._collect(server_round, replies, STATS_KEY, self.check_reply)
        if not stats:
            raise FederationError(
                f"Round {server_round} ({self._step_name}): no client sent a usable "
                "reply; see the warnings above."
            )
        values = self.fold(stats)
        metrics = {"clients": float(len(stats)), **values}
        arrays = to_record(self.model().to_arrays()) if self.done else None
        return arrays, MetricRecord({k: float(v) for k, v in metrics.items()})

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """The fitted model to every node (a client's own view where it has one)."""
        messages = []
        for node_id in sorted(grid.get_node_ids()):
            client = self.client_of_node.get(node_id)
            message_type, model_arrays = self.evaluation_step(client)
            messages.append(
                self._message(server_round, node_id, message_type, model_arrays, {})
            )
        return messages

    def aggregate_evaluate(
        self, server_round: int, replies: Iterable[Message]
    ) -> MetricRecord | None:
        """ARI and NMI of the pooled (cluster, label) counts, held-out likelihood."""
        evaluations = self._collect(
            server_round, replies, EVALUATION_KEY, check_evaluation
        )
        pairs: dict[tuple[int, int], int] = {}
        loglik, n_test, has_loglik = 0.0, 0, True
        for arrays in evaluations.values():
            empty = np.zeros(0, dtype=np.int64)
            for cluster, label, count in zip(
                arrays.get("pairs.cluster", empty),
                arrays.get("pairs.label", empty),
                arrays.get("pairs.count", empty),
                strict=True,
            ):
                pair = (int(cluster), int(label))
                pairs[pair] = pairs.get(pair, 0) + int(count)
            n_test += int(arrays["test.n"][0])
            if "test.loglik" in arrays:
                loglik += float(arrays["test.loglik"][0])
            else:
                has_loglik = False
        scores = clustering_scores(pairs) if pairs else {}
        mean_loglik = loglik / n_test if n_test and has_loglik else float("nan")
        scores["heldout_mean_loglik"] = mean_loglik
        scores["n_test"] = float(n_test)
        scores["clients"] = float(len(evaluations))
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
        """Run the steps until the model is complete, then evaluate it once.

        Returns Flower's ``Result``: the model's arrays, one MetricRecord per
        round (clients, bytes each way, the step's values) and the evaluation
        (ARI, NMI, held-out mean log-likelihood). The model is :meth:`model`.
        """
        log(INFO, "Starting %s strategy:", type(self).__name__)
        self.summary()
        self._wait_for_nodes(grid)
        result = Result()
        started = time.time()
        server_round = 0
        while not self.done and server_round < num_rounds:
            server_round += 1
            metrics = self._train_round(grid, server_round, timeout)
            result.train_metrics_clientapp[server_round] = metrics
        if not self.done:
            self.stop_early(num_rounds)
        result.arrays = to_record(self.model().to_arrays())
        messages = list(
            self.configure_evaluate(server_round, result.arrays, ConfigRecord(), grid)
        )
        replies = list(grid.send_and_receive(messages, timeout=timeout))
        self._log_missing(messages, replies)
        evaluation = self.aggregate_evaluate(server_round, replies)
        if evaluation is not None:
            result.evaluate_metrics_clientapp[server_round] = evaluation
        log(
            INFO,
            "%s finished in %.2fs: %d rounds, %d bytes down, %d bytes up",
            type(self).__name__,
            time.time() - started,
            server_round,
            self.bytes_down,
            self.bytes_up,
        )
        return result

    def _train_round(self, grid: Grid, server_round: int, timeout: float):
        messages = list(
            self.configure_train(server_round, ArrayRecord(), ConfigRecord(), grid)
        )
        replies = list(grid.send_and_receive(messages, timeout=timeout))
        self._log_missing(messages, replies)
        down = sum(payload_bytes(m) for m in messages)
        up = sum(payload_bytes(r) for r in replies)
        self.bytes_down += down
        self.bytes_up += up
        _, metrics = self.aggregate_train(server_round, replies)
        metrics["bytes_down"] = float(down)
        metrics["bytes_up"] = float(up)
        record = {"round": server_round, "step": self._step_name, **dict(metrics)}
        self.history.append(record)
        log(
            INFO,
            "[ROUND %d] %s: %d clients, %d bytes down, %d bytes up",
            server_round,
            self._step_name,
            int(metrics["clients"]),
            down,
            up,
        )
        return metrics

    def _message(self, server_round, node_id, message_type, arrays, config):
        # a fresh record per node: Flower shares records between messages
        content = RecordDict(
            {
                INSTRUCTIONS_KEY: to_record(arrays),
                CONFIG_KEY: ConfigRecord({"server-round": int(server_round), **config}),
            }
        )
        return Message(content=content, message_type=message_type, dst_node_id=node_id)

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

    def _log_missing(self, messages, replies) -> None:
        sent = {m.metadata.dst_node_id for m in messages}
        missing = sorted(sent - {r.metadata.src_node_id for r in replies})
        if missing:
            log(WARNING, "No reply (timeout) from nodes %s; left out", missing)

    def _leave_out(self, server_round, node_id, client, reason) -> None:
        self.failures.append(
            {"round": server_round, "node": node_id, "client": client, "reason": reason}
        )
        log(
            WARNING,
            "Round %d: node %d (client %s) left out: %s",
            server_round,
            node_id,
            "?" if client < 0 else client,
            reason,
        )

    def _collect(self, server_round, replies, record_key, check):
        """Usable replies keyed by client key, in increasing key order."""
        collected: dict[int, dict[str, np.ndarray]] = {}
        for msg in replies:
            node_id = msg.metadata.src_node_id
            client = self.client_of_node.get(node_id, -1)
            if msg.has_error():
                self._leave_out(server_round, node_id, client, msg.error.reason)
                continue
            try:
                client = int(msg.content[CLIENT_KEY]["client-key"])
                arrays = from_record(msg.content[record_key])
            except (KeyError, TypeError, ValueError) as exc:
                reason = f"malformed reply ({type(exc).__name__}: {exc})"
                self._leave_out(server_round, node_id, client, reason)
                continue
            known = self.client_of_node.setdefault(node_id, client)
            if known != client or client in collected:
                reason = f"claims client key {client}, already used"
                self._leave_out(server_round, node_id, client, reason)
                continue
            reason = check(arrays)
            if reason is not None:
                self._leave_out(server_round, node_id, client, reason)
                continue
            collected[client] = arrays
        return dict(sorted(collected.items()))
