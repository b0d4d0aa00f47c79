"""Baselines beside FedGMMTree: centralised references and a federated driver.

Simulation layer. :func:`fit_reference` fits a centralised reference on pooled
data with one small interface (labels, held-out mean log-likelihood where the
model defines one, wall time). :func:`run_federated` runs any of the federated
baselines of :mod:`strategies` (or FedGMMTree) over in-memory client arrays,
in-process or on Flower's Ray-backed engine, with the project's ClientApp and
the baselines' handlers added to it.
"""

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from sklearn.cluster import BisectingKMeans
from sklearn.mixture import GaussianMixture

from fedgmmtree import GMMTree
from fedgmmtree.client_app import make_client_app

from .engine import run_partitions

REFERENCES = ("gaussian_mixture", "bisecting_kmeans", "gmmtree")


@dataclass
class ReferenceFit:
    """What :func:`fit_reference` returns.

    Attributes
    ----------
    name : str
    model : object
        The fitted scikit-learn style estimator.
    labels : ndarray of shape (n_samples,)
        Labels of the rows it was fitted on.
    test_labels : ndarray of shape (n_test,)
        Labels of the held-out rows (empty without them).
    heldout_mean_loglik : float
        Mean log-density of the held-out rows; NaN without them or for a model
        that defines no density (k-means).
    wall_time_s : float
        Seconds to fit and label.
    """

    name: str
    model: object
    labels: np.ndarray
    test_labels: np.ndarray
    heldout_mean_loglik: float
    wall_time_s: float


def _reference_model(name: str, n_clusters: int, random_state: int, options: dict):
    if name == "gaussian_mixture":
        return GaussianMixture(
            n_components=n_clusters, random_state=random_state, **options
        )
    if name == "bisecting_kmeans":
        return BisectingKMeans(
            n_clusters=n_clusters, random_state=random_state, **options
        )
    if name == "gmmtree":
        return GMMTree(n_clusters=n_clusters, random_state=random_state, **options)
    raise ValueError(f"reference must be one of {REFERENCES}, but got {name!r}.")


def fit_reference(
    name: str,
    X: np.ndarray,
    n_clusters: int,
    *,
    X_test: np.ndarray | None = None,
    random_state: int = 0,
    **options,
) -> ReferenceFit:
    """Fit a centralised reference on pooled rows.

    Parameters
    ----------
    name : {"gaussian_mixture", "bisecting_kmeans", "gmmtree"}
        scikit-learn's ``GaussianMixture`` (``n_components=n_clusters``),
        ``BisectingKMeans``, or :class:`fedgmmtree.GMMTree` (leaves merged to
        ``n_clusters``).
    X : ndarray of shape (n_samples, n_features)
    n_clusters : int
        The true number of clusters.
    X_test : ndarray of shape (n_test, n_features), optional
        Held-out rows, labelled and scored.
    random_state : int, default=0
    **options
        Passed to the estimator (e.g. ``covariance_type``).

    Returns
    -------
    fit : ReferenceFit
    """
    model = _reference_model(name, n_clusters, random_state, options)
    X = np.asarray(X, dtype=np.float64)
    X_test = np.zeros((0, X.shape[1])) if X_test is None else np.asarray(X_test)
    started = time.time()
    model.fit(X)
    labels = model.predict(X)
    test_labels = model.predict(X_test) if X_test.shape[0] else np.zeros(0, int)
    wall_time = time.time() - started
    loglik = float("nan")
    if hasattr(model, "score_samples") and X_test.shape[0]:
        loglik = float(np.mean(model.score_samples(X_test)))
    return ReferenceFit(name, model, labels, test_labels, loglik, wall_time)


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


def baseline_client_app(loader: Callable):
    """The project's ClientApp for ``loader``, with the baselines' handlers.

    :func:`fedgmmtree.client_app.make_client_app` registers them already.
    """
    return make_client_app(loader)


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
    client_app_factory: Callable = baseline_client_app,
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
    client_app_factory : callable, default=baseline_client_app
        ``factory(loader) -> ClientApp``; tests pass one that fails on purpose.
    backend_config : dict, optional
        Ray only: Flower's backend config.
    seed : int, default=0
        Seed of the train/test split.

    Returns
    -------
    run : FederatedRun
    """
    result, seconds = run_partitions(
        strategy,
        client_app_factory,
        partitions,
        labels=labels,
        test_fraction=test_fraction,
        seed=seed,
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
        wall_time_s=seconds,
        result=result,
    )
