"""Run the project's ServerApp and ClientApp logic for a run config, on an engine.

Simulation layer. ``flwr run .`` gives both apps the run config through
``context.run_config``. Flower's in-process simulation entry point gives them
an empty one, so here the same run config reaches them by closure: the server
side runs :func:`fedgmmtree.server_app.run_strategy` (the body of the
ServerApp's ``main``), and every client loads its partition with
:func:`fedgmmtree.client_app.load_client_data` on a context that carries the
run config. Either engine runs the same two pieces of code:

- ``"ray"``: Flower's Ray-backed simulation engine, one SuperNode per client,
  through :func:`simulations.engine.run_on_ray`;
- ``"inprocess"``: :class:`simulations.engine.InProcessGrid`, which calls the
  ClientApp in this process; same results, no Ray start, for tests and quick
  sweeps.

BLAS runs on one thread during a run: the matrices are features by features,
where more threads only contend for the cores (ten times slower on a busy
2-core machine), and Ray gives each client one CPU anyway.
"""

import os
from dataclasses import dataclass

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp
from threadpoolctl import threadpool_limits

from fedgmmtree.client_app import load_client_data, make_client_app
from fedgmmtree.server_app import run_strategy, strategy_from_run_config
from strategies import FedGMMTree

from .engine import ENGINES, InProcessGrid, run_on_ray
from .faults import ClientFaults, UnreliableGrid, unreliable_client_app

# Ray reads these when it starts: keep the accelerator variables the workers
# see as they are, and send no telemetry from simulations.
_RAY_ENVIRONMENT = {
    "RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO": "0",
    "FLWR_TELEMETRY_ENABLED": "0",
}


@dataclass(frozen=True)
class RunConfigClients:
    """ClientApp data loader for a run config given up front (picklable).

    Parameters
    ----------
    run_config : dict
        The kebab-case run config the clients would read from
        ``context.run_config`` under ``flwr run``.
    """

    run_config: dict

    def __call__(self, context: Context):
        """``(client key, ClientData)`` of the node's partition."""
        return load_client_data(
            Context(
                run_id=context.run_id,
                node_id=context.node_id,
                node_config=context.node_config,
                state=context.state,
                run_config=dict(self.run_config),
            )
        )


def run_federation(
    run_config: dict,
    *,
    engine: str = "inprocess",
    num_clients: int | None = None,
    faults: ClientFaults | None = None,
    backend_config: dict | None = None,
    strategy: FedGMMTree | None = None,
) -> tuple[FedGMMTree, dict]:
    """Grow a tree over simulated clients that each load a partition.

    Parameters
    ----------
    run_config : dict
        Kebab-case run config (:func:`simulations.config.to_run_config`).
    engine : {"inprocess", "ray"}, default="inprocess"
    num_clients : int, optional
        Simulated clients; ``run_config["min-nodes"]`` when None.
    faults : ClientFaults, optional
        Clients that drop out or answer late (none when None).
    backend_config : dict, optional
        Ray only: Flower's backend config (``client_resources``, ``init_args``).
    strategy : FedGMMTree, optional
        The strategy to run, e.g. one a progress bar watches; built from the
        run config when None.

    Returns
    -------
    strategy : FedGMMTree
        The strategy after the run; ``strategy.model()`` is the fitted tree.
    results : dict
        What :func:`fedgmmtree.server_app.run_strategy` returns.

    Raises
    ------
    FederationError
        When too few clients answer a round after the retries.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, but got {engine!r}.")
    num_clients = int(run_config["min-nodes"] if num_clients is None else num_clients)
    if num_clients < 1:
        raise ValueError(f"num_clients must be >= 1, but got {num_clients}.")
    faults = ClientFaults() if faults is None else faults
    strategy = strategy_from_run_config(run_config) if strategy is None else strategy
    client_app = unreliable_client_app(
        make_client_app(RunConfigClients(dict(run_config))), faults
    )

    with threadpool_limits(limits=1):
        if engine == "inprocess":
            grid = InProcessGrid(
                client_app,
                [
                    {"partition-id": i, "num-partitions": num_clients}
                    for i in range(num_clients)
                ],
                run_config=run_config,
            )
            return run_strategy(UnreliableGrid(grid, faults), run_config, strategy)
        return _run_on_ray(
            run_config, strategy, client_app, faults, num_clients, backend_config
        )


def _run_on_ray(run_config, strategy, client_app, faults, num_clients, backend_config):
    """The ServerApp's logic on Flower's Ray engine, run config by closure."""
    outcome: dict = {}
    server_app = ServerApp()

    @server_app.main()
    def main(grid: Grid, context: Context) -> None:
        try:
            outcome["result"] = run_strategy(
                UnreliableGrid(grid, faults), run_config, strategy
            )
        except Exception as error:  # noqa: BLE001 - re-raised in the caller
            outcome["error"] = error

    for name, value in _RAY_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    run_on_ray(server_app, client_app, num_clients, backend_config)
    if "error" in outcome:
        raise outcome["error"]
    if "result" not in outcome:
        raise RuntimeError("The simulation ended without a result; see the log above.")
    return outcome["result"]
