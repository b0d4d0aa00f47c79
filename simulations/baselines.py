"""Centralised references beside FedGMMTree.

Simulation layer. :func:`fit_reference` fits a centralised reference on pooled
data with one small interface (labels, held-out mean log-likelihood where the
model defines one, wall time). The federated baselines of :mod:`strategies` run
through :func:`simulations.engine.run_federated`, as FedGMMTree does.
"""

import time
from dataclasses import dataclass

import numpy as np
from sklearn.cluster import BisectingKMeans
from sklearn.mixture import GaussianMixture

from fedgmmtree import GMMTree

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
