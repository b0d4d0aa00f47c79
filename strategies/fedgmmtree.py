"""``FedGMMTree``: grow a tree of Gaussians over a Flower federation.

The strategy owns no maths: it ships the core's instructions to the nodes, reads
their statistics back and hands them, sorted by client, to
:class:`fedgmmtree.TreeGrower`.

Reliability, in the order a round meets it:

- a reply with an error, a node that does not answer within the round's
  timeout, a node that was holding data and is no longer connected, and a reply
  whose statistics fail validation (:func:`fedgmmtree.validation.check_reply`,
  then the growth protocol's own checks: shapes, counts, positive
  semi-definiteness, feature count) are logged with the node, the client, the
  tree node and the reason, and the whole reply is left out;
- when fewer than ``min_replies`` of the clients that had work gave a valid
  reply, the same step (it is idempotent) is sent again to the others, up to
  ``max_retries`` times; then the run stops with a :class:`FederationError`
  that lists what went wrong, and the tree stays as the last complete round
  left it;
- with ``checkpoint_dir`` set, the state after every complete round is written
  atomically, and a new run given the same folder continues from there and ends
  with the same tree as a run that was never interrupted.
"""

import copy
import json
import time
import warnings
from collections.abc import Iterable
from logging import INFO, WARNING
from pathlib import Path

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
from fedgmmtree._protocol import Rejection, _is_int
from fedgmmtree.checkpoint import load_checkpoint, save_checkpoint
from fedgmmtree.metrics import clustering_scores
from fedgmmtree.validation import check_reply

INSTRUCTIONS_KEY = "instructions"
STATS_KEY = "stats"
CLIENT_KEY = "client"
MODEL_KEY = "model"
CHECKPOINT_FILE = "fedgmmtree-state.npz"
STRATEGY_STATE_KEY = "strategy.state"


def to_array_record(arrays: dict[str, np.ndarray]) -> ArrayRecord:
    """Named numpy arrays as an ArrayRecord, one key each."""
    return ArrayRecord({key: Array(np.asarray(value)) for key, value in arrays.items()})


def from_array_record(record: ArrayRecord) -> dict[str, np.ndarray]:
    """An ArrayRecord as named numpy arrays."""
    return {key: value.numpy() for key, value in record.items()}


def _payload_bytes(msg: Message) -> int:
    """Bytes of the records a message carries (arrays and configs)."""
    if msg.has_error():
        return 0
    return sum(record.count_bytes() for record in msg.content.values())


class _Round:
    """What one round has gathered over its attempts."""

    def __init__(self, server_round: int, grower_round: int) -> None:
        self.server_round = server_round
        self.grower_round = grower_round
        self.accepted: dict[int, dict[str, np.ndarray]] = {}
        self.node_of: dict[int, int] = {}
        self.left_out: list[Rejection] = []
        self.last_problems: dict[str, str] = {}
        self.needed = 0.0
        self.n_work = 0
        self.down = 0
        self.up = 0
        self.attempts = 0

    def leave_out(self, who: str, client: int | None, node: int, reason: str) -> None:
        """Record a reply (or its absence) that does not count."""
        self.last_problems[who] = reason
        client_id = -1 if client is None else int(client)
        self.left_out.append(
            Rejection(self.grower_round, client_id, int(node), f"{who}: {reason}")
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
        Seconds to wait for ``min_nodes``; then a FederationError, so a
        ``min_nodes`` larger than the federation fails instead of waiting forever.
    min_replies : float, default=1.0
        Share of the clients with work in a round whose valid replies the round
        needs; otherwise the same step is sent again to the others. The default
        loses no client's data: a round goes on only when every client answered.
    max_retries : int, default=2
        Times a step is sent again before the run stops with a FederationError.
    checkpoint_dir : str or Path or None, default=None
        Folder for the state after every complete round (written atomically). A
        run given a folder that holds a checkpoint resumes from it; the settings
        must be the same.
    **growth
        The settings of :class:`fedgmmtree.GrowthParams`, including the privacy
        knobs ``min_count``, ``noise_multiplier`` and ``clip_norm``.

    Notes
    -----
    Privacy knobs are off by default. Either one breaks the exact equality of a
    federated fit with ``GMMTree.fit`` on the pooled data.

    ``min_count``: a client sends nothing about a node where it holds fewer rows
    (at the root it reports no rows at all). Without it, a client that holds a
    single row in a node reveals that row: it is ``center + first / nk`` of
    what the client sends. It hides small groups of rows, not the rows of a
    client in the nodes where it holds many.

    ``noise_multiplier`` (needs ``clip_norm``): each row's offset from the
    node's mean (the row itself at the root, so standardise the data or pick
    ``clip_norm`` above the rows' norms) is clipped to ``clip_norm`` and each
    row's log-likelihood to +-100 nats; then Gaussian noise is added to every
    sum a client sends about its rows (counts, moments, log-likelihood sums,
    routed totals), with a standard deviation of ``noise_multiplier`` times
    what one row can change that sum by (1 for counts, ``clip_norm`` for first
    moments, ``clip_norm ** 2`` for second moments, 100 for log-likelihoods).
    It blurs any one row's part in those sums. It does not hide which nodes a
    client answers for, nor that it takes part; the privacy loss adds up over
    rounds, candidates and nodes, and no accounting of it is done; and it
    says nothing against clients that send false statistics. The noise is
    drawn unseeded on the client, so noisy runs do not repeat.
    """

    def __init__(
        self,
        *,
        n_clusters: int | None = None,
        min_nodes: int = 1,
        node_wait_timeout: float = 120.0,
        min_replies: float = 1.0,
        max_retries: int = 2,
        checkpoint_dir: str | Path | None = None,
        **growth,
    ) -> None:
        self.params = GrowthParams(**growth).validate()
        _check_setting("min_nodes", min_nodes, _is_int(min_nodes, 1), "an int >= 1")
        _check_setting(
            "node_wait_timeout",
            node_wait_timeout,
            isinstance(node_wait_timeout, int | float) and node_wait_timeout >= 0,
            "a number of seconds >= 0",
        )
        _check_setting(
            "min_replies",
            min_replies,
            isinstance(min_replies, int | float) and 0.0 < min_replies <= 1.0,
            "a share in (0, 1]",
        )
        _check_setting(
            "max_retries", max_retries, _is_int(max_retries, 0), "an int >= 0"
        )
        _check_setting(
            "n_clusters",
            n_clusters,
            n_clusters is None or _is_int(n_clusters, 1),
            "None or an int >= 1",
        )
        self.n_clusters = n_clusters
        self.min_nodes = min_nodes
        self.node_wait_timeout = float(node_wait_timeout)
        self.min_replies = float(min_replies)
        self.max_retries = max_retries
        self.checkpoint_dir = None if checkpoint_dir is None else Path(checkpoint_dir)
        self.grower = TreeGrower(self.params)
        self.client_of_node: dict[int, int] = {}
        self.bytes_down = 0
        self.bytes_up = 0
        self.round_records: list[dict] = []
        self._asked: dict[int, list[int] | None] = {}
        self._resumed = False
        self._contributed: set[int] = set()

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
        log(INFO, "\t\t├── checkpoint_dir: %s", self.checkpoint_dir)
        log(INFO, "\t\t└── n_clusters: %s", self.n_clusters)

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """One message per node that holds data in an active node."""
        return self._train_messages(server_round, grid, attempt=0)

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Fold one round of replies into the tree (call once per round).

        Replies are checked as in :meth:`start`, but the step is not sent again.
        """
        state = _Round(server_round, self.grower.round + 1)
        for reply in replies:
            self._screen(state, reply)
        record = self._fold(state)
        self._contributed.update(state.accepted)
        record["clients"] = len(state.accepted)
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
        # summed in client-key order: node ids differ from run to run
        for msg in sorted(replies, key=_reply_order):
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

        Raises
        ------
        FederationError
            When ``min_nodes`` do not connect in time, when a round stays short
            of ``min_replies`` after ``max_retries``, or when no client holds
            data. The tree of the last complete round is kept (and, with
            ``checkpoint_dir``, saved).
        """
        log(INFO, "Starting %s strategy:", self.__class__.__name__)
        self.summary()
        self._resume()
        self._wait_for_nodes(grid)
        result = Result()
        for record in self.round_records:
            result.train_metrics_clientapp[int(record["round"])] = MetricRecord(
                {k: float(v) for k, v in record.items()}
            )
        started = time.time()
        server_round = self.grower.round
        while not self.grower.done and server_round < num_rounds:
            server_round += 1
            arrays, metrics = self._train_round(grid, server_round, timeout)
            result.arrays = arrays
            result.train_metrics_clientapp[server_round] = metrics
            self._save_checkpoint()
        if not self.grower.done:
            log(
                WARNING,
                "num_rounds=%d reached with %d active nodes; they become leaves. "
                "Raise num_rounds for a complete tree.",
                num_rounds,
                len(self.grower.active_nodes()),
            )
            self.grower.stop()
            self._save_checkpoint()
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
        """Wait until ``min_nodes`` are connected, at most ``node_wait_timeout``."""
        deadline = time.monotonic() + self.node_wait_timeout
        seen = -1
        while True:
            connected = len(list(grid.get_node_ids()))
            if connected >= self.min_nodes:
                return
            if connected != seen:
                log(
                    INFO,
                    "Waiting for nodes: %d of min_nodes=%d connected",
                    connected,
                    self.min_nodes,
                )
                seen = connected
            left = deadline - time.monotonic()
            if left <= 0:
                raise FederationError(
                    f"Only {connected} of min_nodes={self.min_nodes} nodes connected "
                    f"within node_wait_timeout={self.node_wait_timeout:g}s. A "
                    "federation that cannot have that many nodes (a simulation has "
                    "exactly num-supernodes) never will: lower min_nodes (run config "
                    "min-nodes), start more "
                    "SuperNodes, or raise node_wait_timeout."
                )
            time.sleep(min(0.2, left))

    def _train_round(self, grid: Grid, server_round: int, timeout: float):
        """Send one step, check the replies, send it again to the missing ones."""
        state = _Round(server_round, self.grower.round + 1)
        for attempt in range(self.max_retries + 1):
            self._attempt(grid, state, attempt, timeout)
            if len(state.accepted) >= state.needed:
                record = self._fold(state)
                if record is not None:
                    return self._finish_round(state, record)
            if attempt < self.max_retries:
                log(
                    WARNING,
                    "Round %d: %d of %d clients answered (min_replies=%.2f); "
                    "sending the same step again (attempt %d of %d).",
                    server_round,
                    len(state.accepted),
                    state.n_work,
                    self.min_replies,
                    attempt + 1,
                    self.max_retries,
                )
        raise FederationError(self._failure_message(state))

    def _attempt(self, grid: Grid, state: _Round, attempt: int, timeout: float):
        """Send the step to every node without a valid reply yet; screen replies."""
        state.attempts = attempt + 1

        # a node that failed may have lost the tree it keeps between rounds (a
        # restarted process, a resumed run), so a retry carries the tree again
        full_tree = attempt > 0 or self._resumed
        messages = [
            msg
            for msg in self._train_messages(
                state.server_round, grid, attempt, full_tree
            )
            if self.client_of_node.get(msg.metadata.dst_node_id) not in state.accepted
        ]
        offline = self._offline_clients(set(grid.get_node_ids()), state)

        # who counts toward min_replies: every node in the root round; later,
        # the clients whose data is in the tree (a node that never gave valid
        # statistics is still asked, but not waited for)
        if attempt == 0:
            counted = [
                m
                for m in messages
                if self.grower.tree is None
                or self.client_of_node.get(m.metadata.dst_node_id) in self._contributed
            ]
            state.n_work = len(counted) + len(offline)
            state.needed = self.min_replies * state.n_work - 1e-9

        if offline:
            log(
                WARNING,
                "Round %d: clients %s hold data but their nodes are no longer "
                "connected; counted as missing",
                state.server_round,
                offline,
            )
        for client in offline:
            state.leave_out(
                f"client {client}",
                client,
                -1,
                "holds data in an active node but its node is no longer connected",
            )

        replies = list(grid.send_and_receive(messages, timeout=timeout))
        state.down += sum(_payload_bytes(m) for m in messages)
        state.up += sum(_payload_bytes(r) for r in replies)
        self._note_missing(state, messages, replies, timeout)
        for reply in replies:
            self._screen(state, reply)

    def _train_messages(
        self, server_round: int, grid: Grid, attempt: int, full_tree: bool = False
    ) -> list[Message]:
        """The step's message to every connected node that has work, sorted.

        With ``full_tree``, every message carries the tree, also to nodes that
        said they keep the current one.
        """
        messages = []
        for node_id in sorted(grid.get_node_ids()):
            client = self.client_of_node.get(node_id)
            if client is not None and not self.grower.wants(client):
                continue
            instructions = self.grower.instructions(client)
            if full_tree and self.grower.tree is not None:
                instructions.update(self.grower.tree.to_arrays())
                instructions.update(self.grower.transform_arrays())
            asked = instructions.get("task.nodes")
            self._asked[node_id] = None if asked is None else asked.tolist()
            # a fresh record per message: Flower sends each message's records as
            # they are when sent, so a shared mutable one would leak between nodes
            content = RecordDict(
                {
                    INSTRUCTIONS_KEY: to_array_record(instructions),
                    "config": ConfigRecord(
                        {"server-round": int(server_round), "attempt": int(attempt)}
                    ),
                }
            )
            messages.append(
                Message(
                    content=content, message_type=MessageType.TRAIN, dst_node_id=node_id
                )
            )
        return messages

    def _offline_clients(self, online: set, state: _Round) -> list[int]:
        """Known clients with work whose node is not connected any more."""
        present = {self.client_of_node[n] for n in online if n in self.client_of_node}
        return sorted(
            client
            for client in self._contributed - present - set(state.accepted)
            if self.grower.wants(client)
        )

    def _note_missing(self, state: _Round, messages, replies, timeout) -> None:
        """Log the nodes that were sent work and did not answer."""
        answered = {r.metadata.src_node_id for r in replies}
        missing = sorted(
            m.metadata.dst_node_id
            for m in messages
            if m.metadata.dst_node_id not in answered
        )
        if not missing:
            return
        log(WARNING, "No reply (timeout) from nodes %s", missing)
        for node_id in missing:
            client = self.client_of_node.get(node_id)
            state.leave_out(
                f"node {node_id} (client {'unknown' if client is None else client})",
                client,
                -1,
                f"no reply within the round timeout ({timeout:g}s)",
            )

    def _screen(self, state: _Round, msg: Message) -> None:
        """Accept one reply into ``state``, or log why it is left out."""
        node_id = msg.metadata.src_node_id
        client = self.client_of_node.get(node_id)
        who = f"node {node_id} (client {'unknown' if client is None else client})"
        if msg.has_error():
            self._left_out(state, who, client, -1, f"failed: {msg.error.reason}")
            return
        try:
            record = msg.content[STATS_KEY]
            claimed = int(msg.content[CLIENT_KEY]["client-key"])
            arrays = from_array_record(record)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            self._left_out(state, who, client, -1, f"malformed reply ({exc!r})")
            return
        who = f"node {node_id} (client {claimed})"
        owner = state.node_of.get(claimed)
        if owner is not None and owner != node_id:
            self._left_out(
                state,
                who,
                claimed,
                -1,
                f"client key {claimed} already answered from node {owner}",
            )
            return
        if client is not None and client != claimed:
            # the node now holds another client's data (a resumed run, a restarted
            # node): its step was computed for the wrong nodes, so it is sent again
            self._forget_node(node_id)
            self.client_of_node[node_id] = claimed
            self._left_out(
                state,
                who,
                claimed,
                -1,
                f"answered as client {claimed}, but the step was for client {client}",
            )
            return
        asked = self._asked.get(node_id)
        problems = check_reply(arrays, asked, exact=self.params.noise_multiplier == 0)
        if problems:
            for tree_node, reason in problems:
                self._left_out(state, who, claimed, tree_node, reason)
            return
        for other in [n for n, c in self.client_of_node.items() if c == claimed]:
            if other != node_id:
                self._forget_node(other)
        self.client_of_node[node_id] = claimed
        state.accepted[claimed] = arrays
        state.node_of[claimed] = node_id

    def _forget_node(self, node_id: int) -> None:
        self.client_of_node.pop(node_id, None)

    def _left_out(self, state, who, client, tree_node, reason) -> None:
        where = "" if tree_node < 0 else f", tree node {tree_node}"
        log(
            WARNING,
            "Round %d: reply of %s left out%s: %s",
            state.server_round,
            who,
            where,
            reason,
        )
        state.leave_out(who, client, tree_node, reason)

    def _fold(self, state: _Round) -> dict | None:
        """Update the tree with the accepted replies that the protocol accepts.

        The protocol checks every reply (shapes, counts, positive
        semi-definiteness, feature counts) while it updates, so the update runs on
        a copy. A client with any part left out is dropped whole and the update
        runs again; when too few clients remain, None (the step is sent again).
        """
        base = len(self.grower.rejections)
        while True:
            trial = copy.deepcopy(self.grower)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                record = trial.update(dict(sorted(state.accepted.items())))
            new = trial.rejections[base:]
            bad = sorted({r.client for r in new})
            if not bad:
                break
            for rejection in new:
                node_id = state.node_of.get(rejection.client, -1)
                who = f"node {node_id} (client {rejection.client})"
                self._left_out(
                    state, who, rejection.client, rejection.node, rejection.reason
                )
            for client in bad:
                state.accepted.pop(client, None)
            if len(state.accepted) < state.needed:
                return None
        trial.rejections.extend(state.left_out)
        self.grower = trial
        for warning in caught:
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno
            )
        return record

    def _finish_round(self, state: _Round, record: dict):
        """Count the bytes, log the round and build its metrics."""
        self._resumed = False
        self._contributed.update(state.accepted)
        self.bytes_down += state.down
        self.bytes_up += state.up
        record["clients"] = len(state.accepted)
        metrics = {k: float(v) for k, v in record.items()}
        metrics.update(
            bytes_down=float(state.down),
            bytes_up=float(state.up),
            attempts=float(state.attempts),
            left_out=float(len(state.left_out)),
        )
        self.round_records.append(metrics)
        stage = (
            f"leaf refinement {int(record['leaf_round'])}"
            if "leaf_round" in record
            else f"active nodes {int(record['active'])}"
        )
        log(
            INFO,
            "[ROUND %d] %s, leaves %d, mean log-likelihood %.4f",
            state.server_round,
            stage,
            int(record["leaves"]),
            float(record["mean_loglik"]),
        )
        tree_arrays = to_array_record(self.grower.tree.to_arrays())
        return tree_arrays, MetricRecord(metrics)

    def _failure_message(self, state: _Round) -> str:
        problems = "; ".join(
            f"{who}: {reason.rstrip('.')}"
            for who, reason in sorted(state.last_problems.items())
        )
        if self.checkpoint_dir is not None and self.grower.round > 0:
            kept = (
                f"The tree of round {self.grower.round} is saved in "
                f"{self.checkpoint_path}; run again with the same checkpoint_dir to "
                "resume."
            )
        else:
            kept = (
                f"The tree of round {self.grower.round} is kept in strategy.grower; "
                "set checkpoint_dir to resume a later run from it."
            )
        return (
            f"Round {state.server_round}: too few clients answered: "
            f"{len(state.accepted)} of {state.n_work} gave a valid reply after "
            f"{self.max_retries} retries, but min_replies={self.min_replies:g} "
            f"needs {int(np.ceil(state.needed))}. Left out: {problems or 'none'}. "
            f"{kept}"
        )

    # --------------------------------------------------------------- checkpoint

    @property
    def checkpoint_path(self) -> Path | None:
        """The checkpoint file, or None without ``checkpoint_dir``."""
        if self.checkpoint_dir is None:
            return None
        return self.checkpoint_dir / CHECKPOINT_FILE

    def _save_checkpoint(self) -> None:
        if self.checkpoint_dir is None:
            return
        arrays = self.grower.state_arrays()
        state = {
            "bytes_down": self.bytes_down,
            "bytes_up": self.bytes_up,
            "round_records": self.round_records,
            "client_of_node": sorted(self.client_of_node.items()),
            "contributed": sorted(self._contributed),
        }
        arrays[STRATEGY_STATE_KEY] = np.array(json.dumps(state))
        save_checkpoint(self.checkpoint_path, arrays)

    def _resume(self) -> None:
        """Continue from ``checkpoint_dir`` when it holds a checkpoint."""
        if self.checkpoint_dir is None:
            return
        arrays = load_checkpoint(self.checkpoint_path)
        if arrays is None:
            log(INFO, "No checkpoint in %s yet; starting afresh", self.checkpoint_dir)
            return
        grower = TreeGrower.from_state_arrays(arrays)
        if grower.params != self.params:
            changed = ", ".join(
                f"{name}={getattr(self.params, name)!r} (checkpoint: "
                f"{getattr(grower.params, name)!r})"
                for name in vars(self.params)
                if getattr(self.params, name) != getattr(grower.params, name, None)
            )
            raise ValueError(
                f"The checkpoint in {self.checkpoint_dir} was written with other "
                f"settings: {changed}. Use the same settings to resume, or another "
                "checkpoint_dir to start afresh."
            )
        state = json.loads(str(arrays[STRATEGY_STATE_KEY][()]))
        self.grower = grower
        self.bytes_down = int(state["bytes_down"])
        self.bytes_up = int(state["bytes_up"])
        self.round_records = [dict(r) for r in state["round_records"]]
        self.client_of_node = {int(n): int(c) for n, c in state["client_of_node"]}
        self._contributed = {int(c) for c in state["contributed"]}
        self._resumed = True
        log(
            INFO,
            "Resuming from %s: %d complete rounds, %d nodes",
            self.checkpoint_path,
            grower.round,
            0 if grower.tree is None else grower.tree.n_nodes,
        )

    # ------------------------------------------------------------------ results

    def model(self) -> GMMTree:
        """The fitted tree as a :class:`fedgmmtree.GMMTree`."""
        if not self.grower.done:
            raise RuntimeError("The tree is not complete yet; call start() first.")
        return GMMTree.from_grower(self.grower, n_clusters=self.n_clusters)


def _reply_order(msg: Message) -> tuple[int, int, int]:
    """Sort key of a reply: its client key when it has one, then its node id."""
    node_id = int(msg.metadata.src_node_id)
    if msg.has_error():
        return (1, 0, node_id)
    try:
        return (0, int(msg.content[CLIENT_KEY]["client-key"]), node_id)
    except (KeyError, TypeError, ValueError):
        return (1, 0, node_id)


def _check_setting(name: str, value, ok: bool, expected: str) -> None:
    if not ok:
        raise ValueError(f"{name} must be {expected}, but got {value!r}.")
