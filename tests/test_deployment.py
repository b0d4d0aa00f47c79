"""FedGMMTree on a real Flower deployment, and a simulation on a Ray cluster.

The slow tests start one ``flower-superlink`` and three ``flower-supernode``
processes on 127.0.0.1 (insecure mode), each SuperNode reading its own file from
its node config, run an app on them with ``flwr run`` and stop every process
they started, by PID, when they end, also when they fail. Flower's runtime
dependency installation, update check and telemetry are off and its home folder
is a temporary one. The fast tests cover what needs no processes: the client
key, what a failed run leaves behind, and the Ray cluster address.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from flwr.app import Context, RecordDict

from fedgmmtree import FederationError, GMMTree, Tree
from fedgmmtree.client_app import load_client_data, make_client_app, read_data_file

REPO = Path(__file__).resolve().parents[1]
EXAMPLE_APP = REPO / "examples" / "own-serverapp"
CONNECTION = "local-deployment"

# Run-config overrides that grow a one-split tree in three rounds; every tree
# setting is given, so the test does not depend on the defaults in pyproject.
TREE_CONFIG = {
    "n-children": 2,
    "covariance-type": "full",
    "split-criterion": "bic",
    "min-samples-leaf": 1,
    "max-depth": 1,
    "max-leaves": 0,
    "reg-covar": 1e-6,
    "tol": 1e-3,
    "max-iter": 2,
    "n-init": 1,
    "standardize": False,
    "pca-components": 0,
    "n-clusters": 0,
    "random-state": 0,
}
REFERENCE_PARAMS = {
    "n_children": 2,
    "covariance_type": "full",
    "split_criterion": "bic",
    "min_samples_leaf": 1,
    "max_depth": 1,
    "max_leaves": None,
    "reg_covar": 1e-6,
    "tol": 1e-3,
    "max_iter": 2,
    "n_init": 1,
    "standardize": False,
    "n_components_pca": None,
    "n_clusters": None,
    "random_state": 0,
}


# ------------------------------------------------------------------ processes


def flower_env(home: Path) -> dict[str, str]:
    """This process's environment with Flower kept offline and in ``home``."""
    env = dict(os.environ)
    env.update(
        FLWR_HOME=str(home),
        FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION="1",
        FLWR_DISABLE_UPDATE_CHECK="1",
        FLWR_TELEMETRY_ENABLED="0",
        PYTHONUNBUFFERED="1",
    )
    return env


def flower_command(name: str) -> str:
    """The Flower console script installed beside this Python."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} is not installed; pip install flwr==1.42.0.")
    return found


def free_ports(count: int) -> list[int]:
    """Ports that nothing listens on, found by binding to port 0."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _stat(pid: int | str) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name, or None if gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def process_tree(pid: int) -> list[tuple[int, str]]:
    """``pid`` and its descendants as (pid, start time), read from /proc.

    The start time tells a process from a later one that reuses its pid.
    """
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        fields = _stat(entry.name)
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        fields = _stat(current)
        if fields is not None:
            tree.append((current, fields[19]))
        todo.extend(children.get(current, []))
    return tree


def send_signal(processes: list[tuple[int, str]], sig: signal.Signals) -> None:
    """Signal each (pid, start time) that still runs (never this test itself)."""
    for pid, started in processes:
        fields = _stat(pid)
        if pid == os.getpid() or fields is None or fields[19] != started:
            continue
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


@dataclass
class FlwrRun:
    """What one ``flwr run --stream`` left: its output, run id and final status."""

    output: str
    run_id: str
    status: str
    details: str
    wall_s: float


class LocalFederation:
    """One SuperLink and SuperNodes on 127.0.0.1, stopped by PID in :meth:`stop`.

    Parameters
    ----------
    root : Path
        Folder for Flower's home, the logs and the app copies.
    node_configs : list of str
        The ``--node-config`` of each SuperNode.
    """

    def __init__(self, root: Path, node_configs: list[str]):
        self.root = root
        self.home = root / "flwr-home"
        self.env = flower_env(self.home)
        self.node_configs = node_configs
        self.processes: list[subprocess.Popen] = []
        self.nodes: list[subprocess.Popen] = []
        self.logs: dict[str, Path] = {}

    def spawn(self, name: str, command: list[str]) -> subprocess.Popen:
        """Start ``command`` in a session of its own, output to ``name.log``."""
        self.logs[name] = self.root / f"{name}.log"
        with open(self.logs[name], "wb") as out:
            process = subprocess.Popen(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                cwd=self.root,
                start_new_session=True,
            )
        self.processes.append(process)
        return process

    def log(self, name: str) -> str:
        """What process ``name`` has written so far."""
        return self.logs[name].read_text(errors="replace")

    def wait_for_port(
        self, port: int, name: str, process: subprocess.Popen, timeout: float = 60.0
    ) -> None:
        """Poll until ``port`` accepts connections; fail if ``process`` exits."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited early:\n{self.log(name)[-3000:]}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        raise TimeoutError(f"{name} did not listen on port {port} in {timeout:.0f}s.")

    def start(self) -> None:
        """Start the SuperLink, then the SuperNodes, and write the connection."""
        link_port, *node_ports = free_ports(1 + len(self.node_configs))
        self.home.mkdir(parents=True, exist_ok=True)  # the logs go beside it
        address = f"127.0.0.1:{link_port}"
        link = self.spawn(
            "superlink",
            [
                flower_command("flower-superlink"),
                "--insecure",
                "--disable-runtime-dependency-installation",
                "--host",
                "127.0.0.1",
                "--port",
                str(link_port),
            ],
        )
        self.wait_for_port(link_port, "superlink", link)
        for i, (config, port) in enumerate(
            zip(self.node_configs, node_ports, strict=True)
        ):
            node = self.spawn(
                f"supernode-{i}",
                [
                    flower_command("flower-supernode"),
                    "--insecure",
                    "--superlink",
                    address,
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--node-config",
                    config,
                ],
            )
            self.nodes.append(node)
        for i, (node, port) in enumerate(zip(self.nodes, node_ports, strict=True)):
            self.wait_for_port(port, f"supernode-{i}", node)
        (self.home / "config.toml").write_text(
            f'[superlink]\ndefault = "{CONNECTION}"\n\n'
            f'[superlink.{CONNECTION}]\naddress = "{address}"\ninsecure = true\n'
        )

    def node_id(self, index: int, timeout: float = 30.0) -> str:
        """The id the SuperLink gave SuperNode ``index`` (from its log)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(r"SuperNode ID: (\d+)", self.log(f"supernode-{index}"))
            if found:
                return found.group(1)
            time.sleep(0.2)
        raise TimeoutError(f"SuperNode {index} logged no id in {timeout:.0f}s.")

    def kill_node(self, index: int) -> None:
        """SIGKILL SuperNode ``index`` and the processes it started."""
        node = self.nodes[index]
        send_signal(process_tree(node.pid), signal.SIGKILL)
        node.wait(timeout=10)

    def run(
        self,
        app: Path,
        config: dict,
        *,
        timeout: float,
        watch: Callable[[str], None] | None = None,
    ) -> FlwrRun:
        """``flwr run APP --stream`` with run-config overrides; wait for the end.

        ``watch(output_so_far)`` is called while the run streams its log.
        """
        overrides = []
        for key, value in config.items():
            if isinstance(value, bool):
                text = "true" if value else "false"
            elif isinstance(value, str | Path):
                text = f"'{value}'"
            else:
                text = repr(value)
            overrides += ["-c", f"{key}={text}"]
        name = f"flwr-run-{len(self.logs)}"
        started = time.monotonic()
        process = self.spawn(
            name,
            [flower_command("flwr"), "run", str(app), CONNECTION, "--stream"]
            + overrides,
        )
        while process.poll() is None:
            if time.monotonic() - started > timeout:
                raise TimeoutError(
                    f"flwr run did not end in {timeout:.0f}s:\n{self.log(name)[-4000:]}"
                )
            if watch is not None:
                watch(self.log(name))
            time.sleep(0.2)
        wall_s = time.monotonic() - started
        output = self.log(name)
        found = re.search(r"Successfully started run (\d+)", output)
        assert found, f"flwr run started no run:\n{output[-4000:]}"
        run_id = found.group(1)
        listing = subprocess.run(
            [flower_command("flwr"), "ls", "--run-id", run_id, "--format", "json"],
            capture_output=True,
            text=True,
            env=self.env,
            cwd=self.root,
            timeout=60,
            check=True,
        )
        run = json.loads(listing.stdout)["runs"][0]
        return FlwrRun(output, run_id, run["status"], run["status-details"], wall_s)

    def stop(self) -> None:
        """SIGTERM every process started here and its children; SIGKILL the rest."""
        tree = sorted({proc for p in self.processes for proc in process_tree(p.pid)})
        send_signal(tree, signal.SIGTERM)
        deadline = time.monotonic() + 10.0
        for process in self.processes:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        send_signal(tree, signal.SIGKILL)
        for process in self.processes:
            process.wait(timeout=10)


def copy_app(source: Path, target: Path, names: list[str]) -> Path:
    """Copy an app's files, so that ``flwr run`` never rewrites the originals.

    ``flwr run`` migrates a legacy ``[tool.flwr.federations]`` table by
    rewriting the app's ``pyproject.toml``.
    """
    target.mkdir(parents=True)
    for name in names:
        path = source / name
        if path.is_dir():
            shutil.copytree(
                path, target / name, ignore=shutil.ignore_patterns("__pycache__")
            )
        elif path.exists():
            shutil.copy2(path, target / name)
    return target


# ----------------------------------------------------------------------- data


def two_blobs(rng: np.random.Generator, n_left: int, n_right: int) -> np.ndarray:
    """Rows from two well separated 2-D Gaussians."""
    return np.vstack(
        [
            rng.normal([-4.0, 0.0], 1.0, size=(n_left, 2)),
            rng.normal([4.0, 1.0], 0.7, size=(n_right, 2)),
        ]
    )


@pytest.fixture(scope="module")
def node_files(tmp_path_factory) -> list[Path]:
    """One file per SuperNode, one of each format: .npy, .csv, Parquet."""
    rng = np.random.default_rng(20240607)
    folder = tmp_path_factory.mktemp("node-data")
    paths = [folder / "node0.npy", folder / "node1.csv", folder / "node2.parquet"]
    np.save(paths[0], two_blobs(rng, 30, 10))
    pd.DataFrame(two_blobs(rng, 15, 35), columns=["x0", "x1"]).to_csv(
        paths[1], index=False
    )
    pd.DataFrame({"embedding": list(two_blobs(rng, 20, 20))}).to_parquet(paths[2])
    return paths


def pooled(paths: list[Path]) -> np.ndarray:
    """The three nodes' rows in one array, read as the ClientApp reads them."""
    return np.vstack([read_data_file(path)[0] for path in paths])


def start_federation(root: Path, node_files: list[Path]):
    """A SuperLink and three SuperNodes, each with its data-path; stopped after."""
    configs = [f"data-path='{path}'" for path in node_files]
    federation = LocalFederation(root, configs)
    try:
        federation.start()
        yield federation
    finally:
        federation.stop()


@pytest.fixture(scope="module")
def shared_federation(tmp_path_factory, node_files):
    """One federation for the runs that leave it as they found it."""
    yield from start_federation(tmp_path_factory.mktemp("federation"), node_files)


@pytest.fixture
def federation(tmp_path, node_files):
    """A federation of this test's own (it may kill a node)."""
    yield from start_federation(tmp_path / "federation", node_files)


def assert_same_tree(fitted: GMMTree, reference: GMMTree) -> None:
    """Same structure, parameters equal to 1e-9 relative."""
    ours, theirs = fitted.tree_.to_arrays(), reference.tree_.to_arrays()
    np.testing.assert_array_equal(ours["tree.parent"], theirs["tree.parent"])
    assert ours.keys() == theirs.keys()
    for key, value in theirs.items():
        if np.issubdtype(value.dtype, np.floating):
            np.testing.assert_allclose(ours[key], value, rtol=1e-9, atol=1e-12)
        else:
            np.testing.assert_array_equal(ours[key], value, err_msg=key)
    np.testing.assert_allclose(fitted.means_, reference.means_, rtol=1e-9)
    np.testing.assert_allclose(fitted.covariances_, reference.covariances_, rtol=1e-9)
    np.testing.assert_allclose(fitted.weights_, reference.weights_, rtol=1e-9)


# ----------------------------------------------------------------- fast tests


def _context(node_config: dict, run_config: dict | None = None) -> Context:
    return Context(
        run_id=1,
        node_id=7,
        node_config=node_config,
        state=RecordDict(),
        run_config=run_config or {"test-fraction": 0.0},
    )


def test_load_client_data_reads_each_format(node_files):
    for path in node_files:
        _, data = load_client_data(_context({"data-path": str(path)}))

        np.testing.assert_allclose(data.X_train, read_data_file(path)[0])
        assert data.X_test.shape == (0, 2)


def test_client_key_distinct_and_stable_without_partition_id(node_files, tmp_path):
    from fedgmmtree import client_app

    def key_of(path: Path) -> int:
        client_app._load.cache_clear()
        return load_client_data(_context({"data-path": str(path)}))[0]

    keys = [key_of(path) for path in node_files]
    # the same path on another machine holds other rows
    path = tmp_path / "site.npy"
    np.save(path, np.load(node_files[0]))
    first = key_of(path)
    np.save(path, np.load(node_files[0])[::-1])
    second = key_of(path)

    assert len(set(keys + [first, second])) == 5
    assert key_of(node_files[1]) == keys[1]


def test_client_key_from_node_config(node_files):
    config = {"data-path": str(node_files[0]), "client-key": 42}

    assert load_client_data(_context(config))[0] == 42


def test_client_key_not_an_int_raises(node_files):
    config = {"data-path": str(node_files[0]), "client-key": "site-a"}

    with pytest.raises(ValueError, match="client-key must be an int, but got 'site-a'"):
        load_client_data(_context(config))


def test_server_main_saves_partial_tree_when_nodes_stop_answering(tmp_path):
    from fedgmmtree import server_app
    from simulations.engine import ArrayClients, InProcessGrid

    rng = np.random.default_rng(3)
    parts = [two_blobs(rng, 20, 20) for _ in range(3)]
    client_app = make_client_app(ArrayClients(parts))
    # partition 2 stops answering from round 3 on
    grid = InProcessGrid(
        client_app,
        [{"partition-id": i, "num-partitions": 3} for i in range(3)],
        drop=lambda server_round, partition: server_round >= 3 and partition == 2,
    )
    run_config = {
        **TREE_CONFIG,
        "max-iter": 20,
        "max-depth": 0,
        "min-nodes": 3,
        "max-retries": 1,
        "round-timeout": 1.0,
        "results-dir": str(tmp_path / "results"),
    }
    context = _context({}, run_config)

    with pytest.raises(FederationError, match="Round 3: too few clients answered"):
        server_app.main(grid, context)

    results = json.loads((tmp_path / "results" / "results.json").read_text())
    assert results["status"] == "failed"
    assert "Round 3" in results["error"]
    assert results["rounds"] == 2
    with np.load(tmp_path / "results" / "partial_tree.npz") as saved:
        tree = Tree.from_arrays({key: saved[key] for key in saved.files})
    assert tree.n_nodes >= 1
    assert tree.n_samples[0] == sum(len(part) for part in parts)
    assert not (tmp_path / "results" / "model.npz").exists()


def test_run_config_sets_checkpoint_dir_and_node_wait_timeout(tmp_path):
    from fedgmmtree.server_app import strategy_from_run_config

    strategy = strategy_from_run_config(
        {"checkpoint-dir": str(tmp_path), "node-wait-timeout": 5.0}
    )
    default = strategy_from_run_config({"checkpoint-dir": ""})

    assert strategy.checkpoint_dir == tmp_path
    assert strategy.node_wait_timeout == 5.0
    assert default.checkpoint_dir is None


def test_strategy_stops_when_a_node_goes_offline():
    # A SuperLink lists a killed SuperNode until its heartbeats lapse (about a
    # minute), then no more: the strategy must count its client as missing
    # rather than go on without its data.
    from simulations.engine import ArrayClients, InProcessGrid
    from strategies import FedGMMTree

    class OfflineAfterRoundOne(InProcessGrid):
        """Partition 2 disappears from the node list after round 1."""

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

    rng = np.random.default_rng(4)
    parts = [two_blobs(rng, 20, 20) for _ in range(3)]
    grid = OfflineAfterRoundOne(
        make_client_app(ArrayClients(parts)),
        [{"partition-id": i, "num-partitions": 3} for i in range(3)],
    )
    strategy = FedGMMTree(max_depth=1, max_iter=5, n_init=1, max_retries=1)

    with pytest.raises(FederationError, match="client 2: .*no longer connected"):
        strategy.start(grid, num_rounds=50, timeout=1.0)


def test_run_on_ray_passes_cluster_address_to_ray_init(monkeypatch):
    import ray
    from flwr.clientapp import ClientApp
    from flwr.serverapp import ServerApp

    from simulations.engine import run_on_ray

    seen: dict = {}

    class RayInitCalled(Exception):
        pass

    def fake_init(**kwargs):
        seen.update(kwargs)
        raise RayInitCalled

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", fake_init)
    server_app = ServerApp()

    @server_app.main()
    def _main(grid, context):
        pass

    address = "ray://10.0.0.1:10001"
    with pytest.raises(RuntimeError, match="Ending simulation"):
        run_on_ray(
            server_app,
            ClientApp(),
            num_supernodes=2,
            backend_config={"init_args": {"address": address}},
        )

    assert seen["address"] == address
    # connecting to a running cluster forbids num_cpus and num_gpus
    assert "num_cpus" not in seen and "num_gpus" not in seen
    assert seen["log_to_driver"] is False


# ----------------------------------------------------------------- slow tests


@pytest.mark.slow
def test_deployment_three_nodes_equals_pooled_fit(
    shared_federation, node_files, tmp_path
):
    app = copy_app(
        REPO,
        tmp_path / "app",
        ["pyproject.toml", "README.md", "fedgmmtree", "strategies", "simulations"],
    )
    results_dir = tmp_path / "results"
    config = {
        **TREE_CONFIG,
        "test-fraction": 0.0,
        "min-nodes": 3,
        "round-timeout": 120.0,
        "results-dir": str(results_dir),
    }

    run = shared_federation.run(app, config, timeout=300.0)
    print(f"\n3-node deployment run: {run.wall_s:.1f}s wall (flwr run)")

    assert run.status == "finished:completed", run.output[-4000:]
    fitted = GMMTree.load(results_dir / "model.npz")
    reference = GMMTree(**REFERENCE_PARAMS).fit(pooled(node_files))
    assert_same_tree(fitted, reference)
    results = json.loads((results_dir / "results.json").read_text())
    assert results["status"] == "completed"
    assert results["rounds"] == reference.n_rounds_
    assert fitted.tree_.n_samples[0] == pooled(node_files).shape[0]


@pytest.mark.slow
def test_deployment_own_serverapp_example(shared_federation, node_files, tmp_path):
    app = copy_app(EXAMPLE_APP, tmp_path / "app", ["pyproject.toml", "own_serverapp"])
    model_path = tmp_path / "model.npz"
    config = {
        "min-nodes": 3,
        "max-depth": 1,
        "max-iter": 1,
        "n-init": 1,
        "round-timeout": 120.0,
        "model-path": str(model_path),
    }

    run = shared_federation.run(app, config, timeout=300.0)

    assert run.status == "finished:completed", run.output[-4000:]
    params = {**REFERENCE_PARAMS, "max_depth": 1, "max_iter": 1, "n_init": 1}
    reference = GMMTree(**params).fit(pooled(node_files))
    assert_same_tree(GMMTree.load(model_path), reference)


@pytest.mark.slow
def test_deployment_killed_node_fails_with_clear_error(
    federation, node_files, tmp_path
):
    app = copy_app(
        REPO,
        tmp_path / "app",
        ["pyproject.toml", "README.md", "fedgmmtree", "strategies", "simulations"],
    )
    results_dir = tmp_path / "results"
    # long enough for a round of healthy nodes on a busy 2-core machine
    round_timeout = 30.0
    config = {
        **TREE_CONFIG,
        "max-depth": 0,
        "max-iter": 20,
        "test-fraction": 0.0,
        "min-nodes": 3,
        "max-retries": 1,
        "round-timeout": round_timeout,
        "results-dir": str(results_dir),
    }
    killed_id = federation.node_id(2)
    killed_at: list[float] = []

    def kill_after_round_one(output: str) -> None:
        if not killed_at and "[ROUND 1]" in output:
            federation.kill_node(2)
            killed_at.append(time.monotonic())

    run = federation.run(app, config, timeout=300.0, watch=kill_after_round_one)

    assert killed_at, run.output[-4000:]
    # the first try and one retry each wait round_timeout; then the run stops
    assert time.monotonic() - killed_at[0] < 2 * round_timeout + 60.0
    assert run.status == "finished:failed", run.output[-4000:]
    assert "too few clients answered" in run.details
    assert re.search(rf"No reply \(timeout\) from nodes \[{killed_id}\]", run.output)
    assert "sending the same step again" in run.output
    results = json.loads((results_dir / "results.json").read_text())
    assert results["status"] == "failed"
    with np.load(results_dir / "partial_tree.npz") as saved:
        tree = Tree.from_arrays({key: saved[key] for key in saved.files})
    assert tree.n_samples[0] == pooled(node_files).shape[0]


def test_server_main_with_a_bad_setting_reports_it_and_keeps_no_stale_model(
    tmp_path,
):
    from fedgmmtree import server_app

    results_dir = tmp_path / "results"
    results_dir.mkdir()
    (results_dir / "model.npz").write_bytes(b"an earlier run's model")
    (results_dir / "results.json").write_text('{"status": "completed"}')
    context = _context({}, {"max-depth": 1.7, "results-dir": str(results_dir)})

    with pytest.raises(ValueError, match="Run config max-depth must be an integer"):
        server_app.main(None, context)

    results = json.loads((results_dir / "results.json").read_text())
    assert results["status"] == "failed"
    assert "max-depth" in results["error"]
    assert not (results_dir / "model.npz").exists()


@pytest.mark.parametrize(
    "config, key",
    [({"refine-leaves": "five"}, "refine-leaves"), ({"tol": "small"}, "tol")],
)
def test_run_config_names_the_key_it_cannot_read(config, key):
    from fedgmmtree.server_app import strategy_from_run_config

    with pytest.raises(ValueError, match=f"Run config {key} must be"):
        strategy_from_run_config(config)
