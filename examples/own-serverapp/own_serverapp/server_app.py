"""Grow a FedGMMTree on the SuperNodes of a Flower deployment and save it."""

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from strategies import FedGMMTree

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Grow the tree on the connected SuperNodes and save it as ``.npz``."""
    cfg = context.run_config
    strategy = FedGMMTree(
        max_depth=int(cfg["max-depth"]),
        max_iter=int(cfg["max-iter"]),
        n_init=int(cfg["n-init"]),
        min_nodes=int(cfg["min-nodes"]),
    )
    strategy.start(
        grid, num_rounds=int(cfg["num-rounds"]), timeout=float(cfg["round-timeout"])
    )
    model = strategy.model()  # a fitted fedgmmtree.GMMTree
    model.save(str(cfg["model-path"]))
    print(model.render())
