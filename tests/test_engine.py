"""Tests of simulations.engine: the data loaders the simulated ClientApp carries."""

import pickle
from pathlib import Path

import numpy as np
import pytest
from flwr.app import Context, RecordDict
from sklearn.datasets import load_iris

from simulations.engine import ArrayClients, FileClients, engine_loader, simulate
from simulations.partitions import partition
from strategies import FedGMMTree


def node(partition_id):
    return Context(
        run_id=1,
        node_id=partition_id,
        node_config={"partition-id": partition_id},
        state=RecordDict(),
        run_config={},
    )


def clients(n_clients=4, seed=0):
    rng = np.random.default_rng(seed)
    sizes = [0, 7, 30, 101][:n_clients]
    parts = [rng.normal(size=(n, 3)) for n in sizes]
    parts[2] = parts[2].astype(np.float32)
    labels = [rng.integers(0, 5, size=n) for n in sizes]
    return ArrayClients(parts, labels, test_fraction=0.25, seed=11)


def test_file_clients_give_the_array_clients_data_bit_for_bit(tmp_path):
    arrays = clients()
    files = arrays.to_files(tmp_path)
    for client in range(4):
        key, expected = arrays(node(client))
        file_key, got = files(node(client))
        assert file_key == key == client
        for name in ("X_train", "y_train", "X_test", "y_test"):
            want, have = getattr(expected, name), getattr(got, name)
            assert type(have) is np.ndarray, name
            assert have.dtype == want.dtype and have.shape == want.shape, name
            assert want.tobytes() == have.tobytes(), name


def test_file_clients_pickle_paths_only(tmp_path):
    arrays = clients()
    files = arrays.to_files(tmp_path)
    assert len(pickle.dumps(files)) < 1024 < len(pickle.dumps(arrays))
    assert pickle.loads(pickle.dumps(files)) == files


def test_engine_loader_uses_files_on_local_ray_and_removes_them(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    arrays = clients()
    with engine_loader(arrays, "ray") as loader:
        assert isinstance(loader, FileClients)
        folder = Path(loader.paths[0]).parent
        assert all(Path(p).exists() for p in loader.paths + loader.label_paths)
    assert not folder.exists()


@pytest.mark.parametrize(
    "engine, backend_config",
    [
        ("inprocess", None),
        ("ray", {"init_args": {"address": "auto"}}),
    ],
)
def test_engine_loader_keeps_arrays_in_process_and_on_a_cluster(engine, backend_config):
    arrays = clients()
    with engine_loader(arrays, engine, backend_config) as loader:
        assert loader is arrays


def test_to_files_refuses_object_arrays(tmp_path):
    arrays = ArrayClients([np.array([[1.0], [None]], dtype=object)])
    with pytest.raises(ValueError, match="Client 0's arrays must be numeric"):
        arrays.to_files(tmp_path)


@pytest.mark.slow
def test_simulate_on_ray_equals_in_process_bit_for_bit():
    X, y = load_iris(return_X_y=True)
    parts = partition(y, "dirichlet", 3, seed=1, alpha=1.0)
    runs = [
        simulate(
            [X[p] for p in parts],
            FedGMMTree(n_init=2, random_state=3, n_clusters=3),
            labels=[y[p] for p in parts],
            test_fraction=0.25,
            engine=engine,
            seed=5,
        )
        for engine in ("inprocess", "ray")
    ]
    a, b = (run.model.tree_.to_arrays() for run in runs)
    assert a.keys() == b.keys()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    ray, inprocess = runs[1].history["evaluation"], runs[0].history["evaluation"]
    assert ray.keys() == inprocess.keys()
    for key in ray:
        # summed in client-key order, so equal bit for bit
        assert ray[key] == inprocess[key], key
    assert np.isfinite(ray["heldout_mean_loglik"])
    assert runs[0].history["bytes_up"] == runs[1].history["bytes_up"]
