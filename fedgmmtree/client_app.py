"""The Flower ClientApp: one refinement step on the client's own data.

A client answers ``train`` messages with statistics only (counts, centred
moments, log-likelihood sums) and ``evaluate`` messages with the counts of
(cluster, label) pairs and its held-out log-likelihood. Its data comes from
the node config:

- ``data-path``: a file of its own (``.npy``, ``.npz``, ``.csv`` or Parquet
  with an ``embedding`` column), as in a real deployment, and optionally
  ``client-key``, the int the server sorts replies by;
- ``partition-id`` (and ``num-partitions``): its share of the data set that the
  run config names, as in a simulation.
"""

import zlib
from functools import lru_cache
from pathlib import Path

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, RecordDict
from flwr.clientapp import ClientApp

from fedgmmtree import Tree, check_client_data, client_step
from fedgmmtree.estimator import GMMTree
from fedgmmtree.metrics import contingency_pairs


def _to_record(arrays: dict[str, np.ndarray]) -> ArrayRecord:
    return ArrayRecord({key: Array(np.asarray(value)) for key, value in arrays.items()})


def _from_record(record: ArrayRecord) -> dict[str, np.ndarray]:
    return {key: value.numpy() for key, value in record.items()}


def read_data_file(path: str | Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Read a client's data file: rows of features and, if present, labels.

    ``.npy`` holds X; ``.npz`` holds ``X`` (and ``y``); ``.csv`` is numeric with
    an optional ``label`` column; Parquet has an ``embedding`` column of vectors
    (and an optional ``label`` column).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"data-path {str(path)!r} does not exist.")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return np.load(path), None
    if suffix == ".npz":
        with np.load(path) as data:
            return data["X"], data["y"] if "y" in data.files else None
    if suffix == ".csv":
        import pandas as pd

        frame = pd.read_csv(path)
        y = frame.pop("label").to_numpy() if "label" in frame else None
        return frame.to_numpy(dtype=np.float64), y
    if suffix == ".parquet":
        import pandas as pd

        frame = pd.read_parquet(path)
        X = np.stack(frame["embedding"].to_numpy()).astype(np.float64)
        return X, frame["label"].to_numpy() if "label" in frame else None
    raise ValueError(
        f"data-path {str(path)!r}: expected a .npy, .npz, .csv or .parquet file."
    )


def _client_key(node_config: dict, X: np.ndarray) -> int:
    """The key the server sorts this client's replies by, stable across runs.

    ``client-key`` (or ``partition-id``) from the node config when set;
    otherwise a CRC-32 of the data-path and the validated float64 data ``X``, so
    that nodes on different machines that use the same path get distinct keys.
    """
    for name in ("client-key", "partition-id"):
        if name in node_config:
            try:
                return int(node_config[name])
            except (TypeError, ValueError):
                value = node_config[name]
                raise ValueError(
                    f"Node config {name} must be an int, but got {value!r}."
                ) from None
    seed = zlib.crc32(str(node_config["data-path"]).encode())
    return zlib.crc32(np.ascontiguousarray(X), seed)


@lru_cache(maxsize=4)
def _load(node_items: tuple, run_items: tuple):
    node_config, run_config = dict(node_items), dict(run_items)
    test_fraction = float(run_config.get("test-fraction", 0.0))
    seed = int(run_config.get("partition-seed", 0))
    if node_config.get("data-path"):
        from simulations.clients import split_client_data

        path = str(node_config["data-path"])
        X, y = read_data_file(path)
        X = check_client_data(X, client=repr(path))
        key = _client_key(node_config, X)
        return key, split_client_data(X, y, test_fraction, seed, key)
    if "partition-id" not in node_config:
        raise ValueError(
            "The node config names no data: set data-path (deployment) or "
            "partition-id and num-partitions (simulation)."
        )
    from simulations.clients import client_partition

    key = int(node_config["partition-id"])
    data = client_partition(run_config, key, int(node_config["num-partitions"]))
    check_client_data(data.X_train, client=key)
    return key, data


def load_client_data(context: Context):
    """``(client key, ClientData)`` for this node, cached per process."""
    return _load(
        tuple(sorted(context.node_config.items())),
        tuple(sorted(context.run_config.items())),
    )


TREE_STATE_KEY = "fedgmmtree-tree"
_TREE_CACHES: dict[tuple[int, int], dict] = {}


def _tree_cache(context: Context, revision: int) -> dict:
    """The node's tree between rounds: in memory, else from the node's state.

    Simulation workers and deployment processes come and go, so a worker may
    lack the tree this node last received; Flower keeps the node's state.
    """
    cache = _TREE_CACHES.setdefault((context.run_id, context.node_id), {})
    if cache.get("revision") != revision and TREE_STATE_KEY in context.state:
        arrays = _from_record(context.state[TREE_STATE_KEY])
        if int(arrays["tree.revision"][0]) == revision:
            cache["revision"] = revision
            cache["tree"] = Tree.from_arrays(arrays)
            cache["transform"] = {
                k: v for k, v in arrays.items() if k.startswith("transform.")
            }
    return cache


def make_client_app(load=load_client_data) -> ClientApp:
    """A ClientApp whose data comes from ``load(context) -> (key, ClientData)``.

    The default reads the node config; simulations of in-memory arrays pass a
    loader of their own (it is pickled to the simulation's workers).
    """
    client_app = ClientApp()

    @client_app.train()
    def train(msg: Message, context: Context) -> Message:
        """One step of the growth protocol on this client's training rows."""
        key, data = load(context)
        instructions = _from_record(msg.content["instructions"])
        revision = int(instructions.get("tree.revision", [-1])[0])
        cache = _tree_cache(context, revision)
        reply = client_step(data.X_train, instructions, client_key=key, cache=cache)
        if "tree.parent" in instructions:
            # kept in the node's state too, for a client process that restarts
            kept = {
                k: v
                for k, v in instructions.items()
                if k.startswith(("tree.", "transform."))
            }
            context.state[TREE_STATE_KEY] = _to_record(kept)
        content = RecordDict(
            {
                "stats": _to_record(reply),
                "client": ConfigRecord({"client-key": int(key)}),
            }
        )
        return Message(content=content, reply_to=msg)

    @client_app.evaluate()
    def evaluate(msg: Message, context: Context) -> Message:
        """Counts of (cluster, label) pairs and the held-out log-likelihood."""
        key, data = load(context)
        model = GMMTree.from_arrays(_from_record(msg.content["model"]))
        arrays = {}
        if data.y_train is not None:
            X_all = np.vstack([data.X_train, data.X_test])
            y_all = np.concatenate([data.y_train, data.y_test])
            arrays.update(contingency_pairs(model.predict(X_all), y_all))
        n_test = data.X_test.shape[0]
        loglik = float(model.score_samples(data.X_test).sum()) if n_test else 0.0
        arrays["test.loglik"] = np.array([loglik])
        arrays["test.n"] = np.array([n_test])
        content = RecordDict(
            {
                "evaluation": _to_record(arrays),
                "client": ConfigRecord({"client-key": int(key)}),
            }
        )
        return Message(content=content, reply_to=msg)

    from strategies import add_baseline_handlers  # the baselines share this app

    return add_baseline_handlers(client_app, load)


app = make_client_app()
