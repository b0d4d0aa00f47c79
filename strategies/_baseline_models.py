"""Fitted models of the federated baselines: a flat Gaussian mixture and centroids.

Strategy layer, numpy only. Both models travel as named arrays
(:meth:`to_arrays` / :meth:`from_arrays`), so the server sends them to the
clients for evaluation and the clients label their own rows.
"""

import numpy as np
from scipy.special import logsumexp

from fedgmmtree._gaussian import (
    check_covariance_type,
    n_parameters,
    weighted_log_prob_matrix,
)


def client_seed(random_state: int | None, client: int) -> int:
    """Seed of a client's local fit, derived from ``(random_state, client)``.

    Parameters
    ----------
    random_state : int or None
        The strategy's seed (None means 0).
    client : int
        The client key.

    Returns
    -------
    seed : int
        A 32-bit seed, the same for the same pair on every machine.
    """
    entropy = [0 if random_state is None else int(random_state), int(client)]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


def nearest_centre(X: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Index of the nearest centre of every row, and the squared distance to it.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    centres : ndarray of shape (n_centres, n_features)

    Returns
    -------
    nearest : ndarray of shape (n_samples,)
    sq_dist : ndarray of shape (n_samples,)
    """
    sq_dist = (
        np.sum(X**2, axis=1)[:, np.newaxis]
        - 2.0 * X @ centres.T
        + np.sum(centres**2, axis=1)[np.newaxis, :]
    )
    nearest = np.argmin(sq_dist, axis=1)
    closest = np.maximum(sq_dist[np.arange(X.shape[0]), nearest], 0.0)
    return nearest, closest


class FlatMixture:
    """A fitted flat Gaussian mixture, with scikit-learn's attribute names.

    Parameters
    ----------
    weights : ndarray of shape (n_components,)
    means : ndarray of shape (n_components, n_features)
    covariances : ndarray of shape (n_components, n_features, n_features) or \
            (n_components, n_features)
        Full or diagonal covariances (``reg_covar`` already added).

    Attributes
    ----------
    weights_, means_, covariances_ : ndarray
        The parameters above, as float64.
    covariance_type : {"full", "diag"}
        Read from the shape of ``covariances``.
    n_components : int
    n_features_in_ : int
    """

    def __init__(self, weights, means, covariances) -> None:
        self.weights_ = np.asarray(weights, dtype=np.float64)
        self.means_ = np.asarray(means, dtype=np.float64)
        self.covariances_ = np.asarray(covariances, dtype=np.float64)
        self.covariance_type = check_covariance_type(
            "full" if self.covariances_.ndim == 3 else "diag"
        )
        self.n_components, self.n_features_in_ = self.means_.shape

    def _weighted_log_prob(self, X) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"Expected X of shape (n_samples, {self.n_features_in_}), "
                f"but got shape {X.shape}."
            )
        return weighted_log_prob_matrix(
            X, self.weights_, self.means_, self.covariances_, self.covariance_type
        )

    def predict(self, X) -> np.ndarray:
        """Component of largest posterior for every row.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        labels : ndarray of shape (n_samples,)
        """
        return np.argmax(self._weighted_log_prob(X), axis=1)

    def predict_proba(self, X) -> np.ndarray:
        """Posterior of every component.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_components)
        """
        weighted = self._weighted_log_prob(X)
        return np.exp(weighted - logsumexp(weighted, axis=1, keepdims=True))

    def score_samples(self, X) -> np.ndarray:
        """Log-density of every row under the mixture.

        Returns
        -------
        log_prob : ndarray of shape (n_samples,)
        """
        return logsumexp(self._weighted_log_prob(X), axis=1)

    def score(self, X) -> float:
        """Mean log-likelihood of the rows of ``X``."""
        return float(np.mean(self.score_samples(X)))

    def bic(self, X) -> float:
        """Bayesian information criterion of the mixture on ``X`` (lower is better)."""
        n_samples = np.asarray(X).shape[0]
        n_params = n_parameters(
            self.n_components, self.n_features_in_, self.covariance_type
        )
        return float(-2.0 * self.score(X) * n_samples + n_params * np.log(n_samples))

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Named arrays for the wire."""
        return {
            "mixture.weights": self.weights_,
            "mixture.means": self.means_,
            "mixture.covariances": self.covariances_,
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> "FlatMixture":
        """Inverse of :meth:`to_arrays`; raises KeyError for a missing field."""
        return cls(
            arrays["mixture.weights"],
            arrays["mixture.means"],
            arrays["mixture.covariances"],
        )


class Centroids:
    """Nearest-centre labelling, as k-means and k-FED label points.

    Parameters
    ----------
    centres : ndarray of shape (n_centres, n_features)
    labels : ndarray of shape (n_centres,), optional
        Cluster of each centre (each centre its own cluster if None). k-FED's
        induced labelling gives a client its own local centres with the global
        cluster each was assigned to.

    Attributes
    ----------
    cluster_centers_ : ndarray of shape (n_centres, n_features)
    centre_labels_ : ndarray of shape (n_centres,)
    n_features_in_ : int
    """

    def __init__(self, centres, labels=None) -> None:
        self.cluster_centers_ = np.asarray(centres, dtype=np.float64)
        n_centres, self.n_features_in_ = self.cluster_centers_.shape
        self.centre_labels_ = (
            np.arange(n_centres)
            if labels is None
            else np.asarray(labels, dtype=np.int64)
        )

    def _nearest(self, X):
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"Expected X of shape (n_samples, {self.n_features_in_}), "
                f"but got shape {X.shape}."
            )
        return nearest_centre(X, self.cluster_centers_)

    def predict(self, X) -> np.ndarray:
        """Cluster of the nearest centre of every row.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        labels : ndarray of shape (n_samples,)
        """
        return self.centre_labels_[self._nearest(X)[0]]

    def score_samples(self, X) -> np.ndarray:
        """Minus the squared distance to the nearest centre (k-means' score).

        Not a log-likelihood: k-means defines none.

        Returns
        -------
        score : ndarray of shape (n_samples,)
        """
        return -self._nearest(X)[1]

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Named arrays for the wire."""
        return {
            "centroids.centres": self.cluster_centers_,
            "centroids.labels": self.centre_labels_,
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> "Centroids":
        """Inverse of :meth:`to_arrays`; raises KeyError for a missing field."""
        return cls(arrays["centroids.centres"], arrays["centroids.labels"])
