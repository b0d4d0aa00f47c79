"""Run a federated fit: on Flower's Ray-backed simulation engine or in-process.

:func:`simulate` takes one numpy array per client. Both engines run the same
ServerApp logic (``strategy.start`` on a Grid) and the same ClientApp handlers;
the in-process engine replaces Ray and the SuperLink by a Grid that calls the
ClientApp directly, which is fast enough for tests and parameter grids.
"""

import os
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from logging import ERROR
from pathlib import Path

import numpy as np
from flwr.app import Context, Error, Message, RecordDict
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import Strategy

from fedgmmtree import check_client_data
from fedgmmtree.client_app import make_client_app
from strategies import FedGMMTree

from .clients import ClientData, split_client_data

ENGINES = ("inprocess", "ray")


@dataclass
class ArrayClients:
    """Data loader of the ClientApp for in-memory partitions (picklable)."""

    partitions: list
    labels: list | None = None
    test_fraction: float = 0.0
    seed: int = 0
    _cache: dict = field(default_factory=dict, repr=False)

    def __call__(self, context: Context):
        """``(client key, ClientData)`` of the node's partition."""
        client = int(context.node_config["partition-id"])
        if client not in self._cache:
            X = check_client_data(self.partitions[client], client=client)
            y = None if self.labels is None else np.asarray(self.labels[client])
            self._cache[client] = split_client_data(
                X, y, self.test_fraction, self.seed, client
            )
        return client, self._cache[client]

    def to_files(self, folder: str | Path) -> "FileClients":
        """The same clients, their arrays written to ``.npy`` files in ``folder``."""
        folder = Path(folder)
        paths = tuple(
            _save(folder / f"X-{client}.npy", rows, client)
            for client, rows in enumerate(self.partitions)
        )
        label_paths = None
        if self.labels is not None:
            label_paths = tuple(
                _save(folder / f"y-{client}.npy", y, client)
                for client, y in enumerate(self.labels)
            )
        return FileClients(paths, label_paths, self.test_fraction, self.seed)


def _save(path: Path, values, client: int) -> str:
    array = np.asarray(values)
    if array.dtype.hasobject:
        raise ValueError(
            f"Client {client}'s arrays must be numeric to run on Ray (they are "
            f"written to .npy files), but got dtype {array.dtype}. Convert them, "
            "e.g. with np.asarray(X, dtype=float)."
        )
    np.save(path, array, allow_pickle=False)
    return str(path)


# path of a partition's file -> its ClientData, so a process reads a file once
_LOADED: dict[str, ClientData] = {}


@dataclass(frozen=True)
class FileClients:
    """Data loader of the ClientApp for partitions in ``.npy`` files (picklable).

    It holds paths only: Flower's Ray backend pickles the ClientApp, and so its
    loader, with every message. Each process reads a client's file once and
    splits it as :class:`ArrayClients` does, with the same seeds.
    """

    paths: tuple[str, ...]
    label_paths: tuple[str, ...] | None = None
    test_fraction: float = 0.0
    seed: int = 0

    def __call__(self, context: Context):
        """``(client key, ClientData)`` of the node's partition."""
        client = int(context.node_config["partition-id"])
        path = self.paths[client]
        if path not in _LOADED:
            X = check_client_data(np.load(path, mmap_mode="r"), client=client)
            y = None
            if self.label_paths is not None:
                y = np.load(self.label_paths[client], mmap_mode="r")
            # the split copies the rows it takes, so no file stays mapped
            _LOADED[path] = split_client_data(
                X, y, self.test_fraction, self.seed, client
            )
        return client, _LOADED[path]


@contextmanager
def engine_loader(
    loader: ArrayClients, engine: str, backend_config: dict | None = None
) -> Iterator[ArrayClients | FileClients]:
    """``loader`` as ``engine`` should carry it, for the length of a run.

    Flower's Ray backend pickles the ClientApp, loader and partitions included,
    with every message. On a Ray that starts on this machine the partitions go
    once to ``.npy`` files in a temporary folder, removed after the run, and the
    loader carries their paths. On a Ray cluster (an ``address`` in
    ``backend_config["init_args"]`` or ``RAY_ADDRESS``) the workers may not see
    this file system, so the loader carries the arrays.
    """
    init_args = (backend_config or {}).get("init_args", {})
    address = init_args.get("address", os.environ.get("RAY_ADDRESS"))
    if engine != "ray" or address not in (None, "", "local"):
        yield loader
        return
    with tempfile.TemporaryDirectory(prefix="fedgmmtree-") as folder:
        yield loader.to_files(folder)


class InProcessGrid(Grid):
    """A Grid whose nodes are ClientApp calls in this process.

    Parameters
    ----------
    client_app : ClientApp
    node_configs : list of dict
        One node config per node.
    run_config : dict, optional
    reply_seed : int or None, default=None
        When set, replies come back in a seeded random order, as replies from a
        real federation arrive in completion order.
    drop : callable, optional
        ``drop(server_round, partition_id) -> bool``: that node gives no reply
        (a timeout) in that round.
    """

    def __init__(
        self,
        client_app,
        node_configs: Sequence[dict],
        run_config: dict | None = None,
        *,
        reply_seed: int | None = None,
        drop=None,
    ):
        from flwr.supercore.task_identity import TaskIdentity

        TaskIdentity.run_id = 1
        TaskIdentity.node_id = 0
        TaskIdentity.task_id = 1
        self.client_app = client_app
        # node ids that are not in partition order, as in a real federation
        ids = np.random.default_rng(12345).choice(
            10**9, size=len(node_configs), replace=False
        )
        self._contexts = {
            int(node_id): Context(
                run_id=1,
                node_id=int(node_id),
                node_config=dict(config),
                state=RecordDict(),
                run_config=dict(run_config or {}),
            )
            for node_id, config in zip(ids, node_configs, strict=True)
        }
        self._rng = None if reply_seed is None else np.random.default_rng(reply_seed)
        self._drop = drop
        self._run = None
        self.messages_sent = 0

    def set_run(self, run) -> None:
        """Remember the run."""
        self._run = run

    @property
    def run(self):
        """The run set by :meth:`set_run`."""
        return self._run

    def create_message(self, content, message_type, dst_node_id, group_id, ttl=None):
        """Build a message to one node."""
        return Message(
            content=content,
            message_type=message_type,
            dst_node_id=dst_node_id,
            group_id=group_id,
            ttl=ttl,
        )

    def get_node_ids(self) -> Iterable[int]:
        """Ids of the in-process nodes."""
        return list(self._contexts)

    def push_messages(self, messages):
        """Not offered: use :meth:`send_and_receive`."""
        raise NotImplementedError("InProcessGrid only offers send_and_receive.")

    def pull_messages(self, message_ids):
        """Not offered: use :meth:`send_and_receive`."""
        raise NotImplementedError("InProcessGrid only offers send_and_receive.")

    def send_and_receive(self, messages, *, timeout=None) -> Iterable[Message]:
        """Call each node's ClientApp; failures come back as error replies."""
        replies = []
        for msg in messages:
            self.messages_sent += 1
            context = self._contexts[msg.metadata.dst_node_id]
            server_round = int(msg.content["config"]["server-round"])
            partition = context.node_config.get("partition-id")
            if self._drop is not None and self._drop(server_round, partition):
                continue
            try:
                replies.append(self.client_app(msg, context))
            except Exception as exc:  # noqa: BLE001 - a client failure is data
                replies.append(
                    Message(
                        Error(code=0, reason=f"{type(exc).__name__}: {exc}"),
                        reply_to=msg,
                    )
                )
        if self._rng is not None:
            order = self._rng.permutation(len(replies))
            replies = [replies[i] for i in order]
        return replies


@dataclass
class Simulation:
    """What :func:`simulate` returns; unpacks as ``model, history``."""

    model: object
    history: dict

    def __iter__(self):
        return iter((self.model, self.history))


def simulate(
    partitions: Sequence[np.ndarray],
    strategy: Strategy | None = None,
    *,
    labels: Sequence[np.ndarray] | None = None,
    test_fraction: float = 0.0,
    engine: str = "inprocess",
    num_rounds: int = 1000,
    timeout: float = 600.0,
    reply_seed: int | None = None,
    backend_config: dict | None = None,
    seed: int = 0,
) -> Simulation:
    """Grow a tree over clients that each hold one array.

    Parameters
    ----------
    partitions : sequence of ndarray of shape (n_rows_client, n_features)
        One array per client.
    strategy : Strategy, optional
        A fresh strategy: ``FedGMMTree`` (default settings if None) or one of
        the baselines.
    labels : sequence of ndarray, optional
        Each client's labels, for ARI and NMI (never sent: clients send counts of
        (cluster, label) pairs).
    test_fraction : float, default=0.0
        Share of each client's rows held out for the log-likelihood.
    engine : {"inprocess", "ray"}, default="inprocess"
        ``"ray"`` runs Flower's simulation engine with one SuperNode per client.
    num_rounds : int, default=1000
        Cap on rounds.
    timeout : float, default=600.0
        Seconds to wait for the replies of one round.
    reply_seed : int, optional
        In-process only: shuffle the order replies arrive in.
    backend_config : dict, optional
        Ray only: Flower's backend config (``client_resources``, ``init_args``).
    seed : int, default=0
        Seed of the train/test split.

    Returns
    -------
    simulation : Simulation
        ``model`` (a fitted :class:`fedgmmtree.GMMTree`) and ``history`` (rounds,
        evaluation, bytes each way, wall time).
    """
    strategy = FedGMMTree() if strategy is None else strategy
    if getattr(strategy, "min_nodes", 0) > len(partitions):
        raise ValueError(
            f"The strategy waits for min_nodes={strategy.min_nodes} nodes, but the "
            f"simulation has {len(partitions)} clients."
        )
    run = run_federated(
        strategy,
        partitions,
        labels=labels,
        test_fraction=test_fraction,
        engine=engine,
        num_rounds=num_rounds,
        timeout=timeout,
        reply_seed=reply_seed,
        backend_config=backend_config,
        seed=seed,
    )
    history = {
        "rounds": [dict(r) for r in strategy.grower.history]
        if hasattr(strategy, "grower")
        else list(strategy.history),
        "evaluation": run.evaluation,
        "bytes_down": run.bytes_down,
        "bytes_up": run.bytes_up,
        "wall_time_s": run.wall_time_s,
        "result": run.result,
    }
    return Simulation(run.model, history)


@dataclass
class FederatedRun:
    """What :func:`run_federated` returns.

    Attributes
    ----------
    model : object
        ``strategy.model()``.
    evaluation : dict of str to float
        ARI, NMI, held-out mean log-likelihood, held-out rows, clients.
    rounds : int
        Training rounds (the evaluation round not counted).
    bytes_down, bytes_up : int
        Bytes of the records sent to and from the clients in the training rounds
        (FedGMMTree counts its arrays only).
    wall_time_s : float
    result : flwr.serverapp.strategy.Result
    """

    model: object
    evaluation: dict
    rounds: int
    bytes_down: int
    bytes_up: int
    wall_time_s: float
    result: object = field(repr=False)


def run_federated(
    strategy,
    partitions: Sequence[np.ndarray],
    *,
    labels: Sequence[np.ndarray] | None = None,
    test_fraction: float = 0.0,
    engine: str = "inprocess",
    num_rounds: int = 1000,
    timeout: float = 600.0,
    reply_seed: int | None = None,
    client_app_factory: Callable = make_client_app,
    backend_config: dict | None = None,
    seed: int = 0,
) -> FederatedRun:
    """Run a federated strategy over clients that each hold one array.

    Parameters
    ----------
    strategy : FederatedBaseline or FedGMMTree
        A fresh strategy.
    partitions : sequence of ndarray of shape (n_rows_client, n_features)
        One array per client; the client key is its position.
    labels : sequence of ndarray of shape (n_rows_client,), optional
        Each client's labels, for ARI and NMI (clients send only counts).
    test_fraction : float, default=0.0
        Share of each client's rows held out.
    engine : {"inprocess", "ray"}, default="inprocess"
    num_rounds : int, default=1000
    timeout : float, default=600.0
        Seconds to wait for the replies of one round.
    reply_seed : int, optional
        In-process only: replies come back in a seeded random order.
    client_app_factory : callable, default=make_client_app
        ``factory(loader) -> ClientApp``; tests pass one that fails on purpose.
    backend_config : dict, optional
        Ray only: Flower's backend config.
    seed : int, default=0
        Seed of the train/test split.

    Returns
    -------
    run : FederatedRun
    """
    loader = ArrayClients(
        list(partitions),
        None if labels is None else list(labels),
        test_fraction,
        seed,
    )
    started = time.time()
    with engine_loader(loader, engine, backend_config) as load:
        result = run_strategy(
            strategy,
            client_app_factory(load),
            len(partitions),
            engine=engine,
            num_rounds=num_rounds,
            timeout=timeout,
            reply_seed=reply_seed,
            backend_config=backend_config,
        )
    evaluation = next(iter(result.evaluate_metrics_clientapp.values()), {})
    return FederatedRun(
        model=strategy.model(),
        evaluation={k: float(v) for k, v in evaluation.items()},
        rounds=len(result.train_metrics_clientapp),
        bytes_down=strategy.bytes_down,
        bytes_up=strategy.bytes_up,
        wall_time_s=time.time() - started,
        result=result,
    )


def run_strategy(
    strategy,
    client_app,
    n_clients: int,
    *,
    engine: str = "inprocess",
    num_rounds: int = 1000,
    timeout: float = 600.0,
    reply_seed: int | None = None,
    backend_config: dict | None = None,
):
    """Run ``strategy.start`` over ``n_clients`` nodes of ``client_app``.

    Node ``i`` gets ``partition-id`` ``i``. Returns Flower's ``Result``.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, but got {engine!r}.")
    if engine == "inprocess":
        grid = InProcessGrid(
            client_app,
            [
                {"partition-id": i, "num-partitions": n_clients}
                for i in range(n_clients)
            ],
            reply_seed=reply_seed,
        )
        return strategy.start(grid, num_rounds=num_rounds, timeout=timeout)
    strategy.min_nodes = max(strategy.min_nodes, n_clients)
    holder: dict = {}
    server_app = ServerApp()

    @server_app.main()
    def _main(grid: Grid, context: Context) -> None:
        holder["result"] = strategy.start(grid, num_rounds=num_rounds, timeout=timeout)

    run_on_ray(server_app, client_app, n_clients, backend_config)
    if "result" not in holder:
        raise RuntimeError("The simulation ended without a result; see the log above.")
    return holder["result"]


def run_on_ray(server_app, client_app, num_supernodes, backend_config=None):
    """Run apps on Flower's Ray-backed simulation engine (the one place that does).

    ``flwr.simulation.run_simulation`` is deprecated in Flower 1.42 in favour of
    ``flwr run`` with a simulation federation, which needs a SuperLink and an
    installed app; it remains the only in-process entry point that accepts app
    objects, so every caller goes through this function.
    """
    import logging

    from flwr.simulation import run_simulation

    config = {
        "client_resources": {"num_cpus": 1, "num_gpus": 0.0},
        "init_args": {"log_to_driver": False, "logging_level": ERROR},
    }
    for key, value in (backend_config or {}).items():
        if isinstance(value, dict):
            config.setdefault(key, {}).update(value)
        else:
            config[key] = value
    logging.getLogger("ray").setLevel(ERROR)
    run_simulation(
        server_app=server_app,
        client_app=client_app,
        num_supernodes=num_supernodes,
        backend_config=config,
    )
