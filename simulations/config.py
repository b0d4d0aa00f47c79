"""Schema of the Hydra config of ``python -m simulations.run``, and its run config.

Simulation layer. The dataclasses below are registered in Hydra's ConfigStore
as ``schema``; ``conf/config.yaml`` lists it first in its defaults, so every
group file and every command-line override is merged into typed nodes: an
unknown key or a value of the wrong type stops the composition with an error
that names the key.

:func:`to_run_config` turns a composed config into the kebab-case run config
that the ServerApp and the ClientApp read (the keys of
``[tool.flwr.app.config]`` in ``pyproject.toml``), so the Hydra driver and
``flwr run .`` share one code path.
"""

from dataclasses import dataclass, field, fields, is_dataclass
from enum import Enum
from pathlib import Path

from hydra.core.config_store import ConfigStore
from omegaconf import II, DictConfig, OmegaConf


class Engine(Enum):
    """Where the federation runs."""

    inprocess = "inprocess"
    ray = "ray"


class Scheme(Enum):
    """How the rows are split over the clients (see :mod:`simulations.partitions`)."""

    iid = "iid"
    dirichlet = "dirichlet"
    pathological = "pathological"
    quantity_skew = "quantity_skew"
    feature_skew = "feature_skew"


class Preprocess(Enum):
    """Where standardisation and PCA are computed."""

    federated = "federated"
    pooled = "pooled"


class CovarianceType(Enum):
    """Covariance of every Gaussian of the tree."""

    full = "full"
    diag = "diag"


class SplitCriterion(Enum):
    """Rule that keeps a split."""

    bic = "bic"
    aic = "aic"
    normality = "normality"


@dataclass
class DatasetConfig:
    """Which data set, its held-out share and its preprocessing.

    ``preprocess=federated`` has the server compute the mean, spread and
    principal axes from the clients' root statistics (the strategy's
    ``standardize`` and ``pca-components``); ``pooled`` computes them on all
    rows at once before partitioning, a centralised reference.
    """

    name: str = "digits"
    data_dir: str = ""
    n_samples: int = 0
    test_fraction: float = 0.2
    n_classes: int = 0
    preprocess: Preprocess = Preprocess.federated
    standardize: bool = False
    pca_components: int = 0


@dataclass
class PartitionConfig:
    """Partition scheme and its options; options of other schemes are ignored."""

    scheme: Scheme = Scheme.iid
    alpha: float = 0.5
    classes_per_client: int = 2
    power: float = 1.0
    strength: float = 0.5
    seed: int = II("simulation.seed")


@dataclass
class StrategyConfig:
    """The tree's parameters (0 means "no limit" for the int limits)."""

    n_children: int = 2
    covariance_type: CovarianceType = CovarianceType.full
    split_criterion: SplitCriterion = SplitCriterion.bic
    min_samples_leaf: int = 1
    max_depth: int = 0
    max_leaves: int = 0
    reg_covar: float = 1e-6
    tol: float = 1e-3
    max_iter: int = 100
    n_init: int = 3
    init_steps: int = 0
    refine_leaves: int = 0
    n_clusters: int = II("dataset.n_classes")
    random_state: int = II("simulation.seed")
    min_replies: float = 1.0
    max_retries: int = 2
    min_count: int = 0
    noise_multiplier: float = 0.0
    clip_norm: float = 0.0


@dataclass
class ClientResources:
    """Resources of one simulated client on the Ray engine."""

    num_cpus: float = 1.0
    num_gpus: float = 0.0


@dataclass
class SimulationConfig:
    """The federation: engine, clients, their resources and faults, rounds cap.

    ``dropout`` and ``late`` are the shares of (client, round) pairs in which a
    client fails (an error reply) or answers after the round's deadline (its
    reply is discarded); see :mod:`simulations.faults`. ``checkpoint_dir``
    (empty: none) keeps the tree after every round, and a run given a folder
    that holds a checkpoint resumes from it.
    """

    engine: Engine = Engine.ray
    num_clients: int = 10
    num_rounds: int = 1000
    round_timeout: float = 300.0
    node_wait_timeout: float = 120.0
    checkpoint_dir: str = ""
    seed: int = 0
    client_resources: ClientResources = field(default_factory=ClientResources)
    dropout: float = 0.0
    late: float = 0.0
    progress: bool = True


@dataclass
class Config:
    """The whole config of one run."""

    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    partition: PartitionConfig = field(default_factory=PartitionConfig)
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    simulation: SimulationConfig = field(default_factory=SimulationConfig)
    plots: bool = True


def register_schema() -> None:
    """Store :class:`Config` in Hydra's ConfigStore as ``schema``."""
    ConfigStore.instance().store(name="schema", node=Config)


def unknown_keys(cfg: DictConfig, prefix: str = "") -> list[str]:
    """Keys of ``cfg`` that its schema does not have.

    Composition already refuses them, except when added with Hydra's ``+``
    (which its own error message suggests for a misspelt key). Hydra's own
    ``hydra`` node is not checked.
    """
    schema = OmegaConf.get_type(cfg)
    known = {f.name for f in fields(schema)} if is_dataclass(schema) else None
    unknown = []
    for key in cfg.keys():
        if not prefix and key == "hydra":
            continue
        if known is not None and key not in known:
            unknown.append(f"{prefix}{key}")
            continue
        value = cfg[key]
        if isinstance(value, DictConfig):
            unknown += unknown_keys(value, f"{prefix}{key}.")
    return unknown


def to_run_config(cfg: DictConfig | Config, results_dir: str = "") -> dict:
    """The kebab-case run config of the ServerApp and ClientApp for ``cfg``.

    Parameters
    ----------
    cfg : DictConfig or Config
        A composed config.
    results_dir : str, default=""
        Folder the ServerApp writes into.

    Returns
    -------
    run_config : dict of str to (str, int, float or bool)
    """
    cfg = OmegaConf.structured(cfg) if isinstance(cfg, Config) else cfg
    unknown = unknown_keys(cfg)
    if unknown:
        raise ValueError(
            f"Unknown config keys {unknown}: they are not in the schema "
            "(simulations/config.py) and would be ignored. Check their spelling."
        )
    data, part, tree, sim = cfg.dataset, cfg.partition, cfg.strategy, cfg.simulation
    federated = data.preprocess == Preprocess.federated
    return {
        "dataset": str(data.name),
        "data-dir": _absolute(data.data_dir),
        "n-samples": int(data.n_samples),
        "test-fraction": float(data.test_fraction),
        "standardize": bool(data.standardize) and federated,
        "pca-components": int(data.pca_components) if federated else 0,
        "pooled-standardize": bool(data.standardize) and not federated,
        "pooled-pca-components": 0 if federated else int(data.pca_components),
        "partition": part.scheme.value,
        "alpha": float(part.alpha),
        "classes-per-client": int(part.classes_per_client),
        "power": float(part.power),
        "strength": float(part.strength),
        "partition-seed": int(part.seed),
        "n-children": int(tree.n_children),
        "covariance-type": tree.covariance_type.value,
        "split-criterion": tree.split_criterion.value,
        "min-samples-leaf": int(tree.min_samples_leaf),
        "max-depth": int(tree.max_depth),
        "max-leaves": int(tree.max_leaves),
        "reg-covar": float(tree.reg_covar),
        "tol": float(tree.tol),
        "max-iter": int(tree.max_iter),
        "n-init": int(tree.n_init),
        "init-steps": int(tree.init_steps),
        "refine-leaves": int(tree.refine_leaves),
        "n-clusters": int(tree.n_clusters),
        "random-state": int(tree.random_state),
        "min-count": int(tree.min_count),
        "noise-multiplier": float(tree.noise_multiplier),
        "clip-norm": float(tree.clip_norm),
        "min-nodes": int(sim.num_clients),
        "min-replies": float(tree.min_replies),
        "max-retries": int(tree.max_retries),
        "node-wait-timeout": float(sim.node_wait_timeout),
        "checkpoint-dir": _absolute(sim.checkpoint_dir),
        "num-rounds": int(sim.num_rounds),
        "round-timeout": float(sim.round_timeout),
        "results-dir": str(results_dir),
    }


def _absolute(path: str) -> str:
    """An absolute path (Ray's workers may start elsewhere); empty stays empty."""
    return str(Path(path).expanduser().resolve()) if path else ""
