"""``FedEM``: flat federated EM with exact sufficient statistics.

The federated equivalent of scikit-learn's ``GaussianMixture``: every round is
one EM iteration whose E-step runs on the clients and whose M-step runs on the
sum of their statistics (Dempster, Laird and Rubin, "Maximum likelihood from
incomplete data via the EM algorithm", JRSS-B 1977; the distributed form, in
which sites send sufficient statistics, is Nowak, "Distributed EM algorithms for
density estimation and clustering in sensor networks", IEEE TSP 2003).
"""

from logging import WARNING

import numpy as np
from flwr.supercore import log

from fedgmmtree import FederationError, Moments
from fedgmmtree._gaussian import check_covariance_type, gaussian_from_moments
from fedgmmtree._stats import check_moments, sum_moments

from ._baseline import FederatedBaseline, Step, check_positive_int
from ._baseline_client import EVALUATE_MIXTURE, FLAT_EM, GLOBAL_MOMENTS
from ._baseline_models import FlatMixture
from .kfed import KFed

INITS = ("gaussian", "kfed")


class FedEM(FederatedBaseline):
    """Federated EM for a flat Gaussian mixture with ``n_clusters`` components.

    Each EM round sends the current mixture; every client returns, per
    component, the soft count and the first and second moments of its rows
    around a centre the server fixes, with its log-likelihood sum
    (:func:`fedgmmtree._stats.mixture_moments`). The server adds them in
    client-key order and runs the M-step of the core
    (:func:`fedgmmtree._gaussian.gaussian_from_moments`). EM stops, as
    scikit-learn's does, when the mean log-likelihood changes by less than
    ``tol`` or after ``max_iter`` iterations, so from the same initial
    parameters it gives scikit-learn's ``GaussianMixture`` fit.

    Initialisation, with no data leaving the clients:

    - ``"gaussian"``: one round of one-component statistics gives the global
      mean and covariance; the means are seeded draws from that Gaussian, every
      covariance is the global one, the weights are equal;
    - ``"kfed"``: a k-FED round (:class:`KFed`) gives K centres, then one round
      of hard statistics (each row counts for its nearest centre) gives the
      weights, means and covariances, as scikit-learn's ``init_params="kmeans"``
      does from k-means labels;
    - ``weights_init``, ``means_init`` and ``covariances_init`` together: EM
      starts from them at once.

    Parameters
    ----------
    n_clusters : int
        Components K.
    covariance_type : {"full", "diag"}, default="full"
    init : {"gaussian", "kfed"}, default="gaussian"
    weights_init : ndarray of shape (n_clusters,), optional
    means_init : ndarray of shape (n_clusters, n_features), optional
    covariances_init : ndarray of shape (n_clusters, n_features, n_features) or \
            (n_clusters, n_features), optional
    tol : float, default=1e-3
        Least change of the mean log-likelihood that continues EM.
    reg_covar : float, default=1e-6
        Added to the diagonal of every covariance.
    max_iter : int, default=100
        Most EM iterations.
    n_local_clusters : int or None, default=None
        k' of the k-FED initialisation (K if None).
    random_state : int or None, default=None
        Seed of the initialisation (None means 0).
    min_nodes, node_wait_timeout
        As in :class:`FederatedBaseline`.

    Attributes
    ----------
    weights_ : ndarray of shape (n_clusters,)
    means_ : ndarray of shape (n_clusters, n_features)
    covariances_ : ndarray of shape (n_clusters, n_features, n_features) or \
            (n_clusters, n_features)
    n_iter_ : int
        EM iterations run.
    converged_ : bool
    lower_bound_ : float
        Mean log-likelihood under the parameters of the last E-step.
    n_samples_ : float
        Rows over all clients that answered.
    """

    def __init__(
        self,
        n_clusters: int,
        *,
        covariance_type: str = "full",
        init: str = "gaussian",
        weights_init: np.ndarray | None = None,
        means_init: np.ndarray | None = None,
        covariances_init: np.ndarray | None = None,
        tol: float = 1e-3,
        reg_covar: float = 1e-6,
        max_iter: int = 100,
        n_local_clusters: int | None = None,
        random_state: int | None = None,
        min_nodes: int = 1,
        node_wait_timeout: float = 120.0,
    ) -> None:
        super().__init__(min_nodes=min_nodes, node_wait_timeout=node_wait_timeout)
        check_positive_int("n_clusters", n_clusters)
        check_positive_int("max_iter", max_iter)
        if init not in INITS:
            raise ValueError(f"init must be one of {INITS}, but got {init!r}.")
        for name, value in (("tol", tol), ("reg_covar", reg_covar)):
            if not value >= 0.0:
                raise ValueError(f"{name} must be a float >= 0, but got {value!r}.")
        self.n_clusters = n_clusters
        self.covariance_type = check_covariance_type(covariance_type)
        self.init = init
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.random_state = random_state
        self.n_iter_ = 0
        self.converged_ = False
        self.lower_bound_ = -np.inf
        self.n_samples_ = 0.0
        self._kfed = KFed(
            n_clusters, n_local_clusters=n_local_clusters, random_state=random_state
        )
        given = [weights_init, means_init, covariances_init]
        if any(value is not None for value in given):
            self._set_given_init(*given)
            self._phase = "em"
        else:
            self._phase = "moments" if init == "gaussian" else "kfed"

    def _set_given_init(self, weights, means, covariances) -> None:
        if any(value is None for value in (weights, means, covariances)):
            raise ValueError(
                "weights_init, means_init and covariances_init go together, but "
                "only some were given. Give all three, or none to use init."
            )
        weights, means, covariances = (
            np.array(value, dtype=np.float64) for value in (weights, means, covariances)
        )
        n_features = means.shape[-1]
        expected_cov = (self.n_clusters, n_features) + (
            (n_features,) if self.covariance_type == "full" else ()
        )
        for name, value, shape in (
            ("weights_init", weights, (self.n_clusters,)),
            ("means_init", means, (self.n_clusters, n_features)),
            ("covariances_init", covariances, expected_cov),
        ):
            if value.shape != shape or not np.all(np.isfinite(value)):
                raise ValueError(
                    f"{name} must be a finite array of shape {shape}, but got "
                    f"shape {value.shape}."
                )
        if np.any(weights < 0) or not np.isclose(weights.sum(), 1.0):
            raise ValueError(
                f"weights_init must be non-negative and sum to 1, but sum to "
                f"{weights.sum()!r}."
            )
        self.weights_, self.means_, self.covariances_ = weights, means, covariances
        self._center = weights @ means

    def settings(self) -> dict:
        """Settings shown by :meth:`summary`."""
        return {
            "n_clusters": self.n_clusters,
            "covariance_type": self.covariance_type,
            "init": "given" if self._phase == "em" else self.init,
            "tol": self.tol,
            "reg_covar": self.reg_covar,
            "max_iter": self.max_iter,
            "random_state": self.random_state,
        }

    @property
    def done(self) -> bool:
        """Whether EM has stopped."""
        return self._phase == "done"

    # ---------------------------------------------------------------- the steps

    def next_step(self) -> Step:
        """Global statistics, k-FED, hard statistics or an E-step, by phase."""
        config = {"covariance-type": self.covariance_type}
        if self._phase == "moments":
            return GLOBAL_MOMENTS, {}, config
        if self._phase == "kfed":
            return self._kfed.next_step()
        if self._phase == "hard":
            arrays = {
                "centroids.centres": self._kfed.cluster_centers_,
                "moments.center": self._center,
            }
            return FLAT_EM, arrays, {**config, "hard": True}
        arrays = {**self._mixture().to_arrays(), "moments.center": self._center}
        return FLAT_EM, arrays, {**config, "hard": False}

    def check_reply(self, arrays: dict[str, np.ndarray]) -> str | None:
        """Shapes, finiteness and positive semi-definiteness of the statistics."""
        if self._phase == "kfed":
            return self._kfed.check_reply(arrays)
        try:
            moments = Moments.from_arrays(arrays, "moments")
        except KeyError as exc:
            return f"statistics field {exc} missing"
        if self._phase == "moments":
            n_components, n_features = 1, moments.center.shape[0]
        elif self._phase == "hard":
            n_components = self.n_clusters
            n_features = self._kfed.cluster_centers_.shape[1]
        else:
            n_components, n_features = self.n_clusters, self.means_.shape[1]
        return check_moments(moments, n_components, n_features, self.covariance_type)

    def fold(self, stats: dict[int, dict[str, np.ndarray]]) -> dict[str, float]:
        """Fold one step's statistics (client-key order) into the mixture."""
        if self._phase == "kfed":
            values = self._kfed.fold(stats)
            centres = np.vstack([a["kfed.centres"] for a in stats.values()])
            counts = np.concatenate([a["kfed.counts"] for a in stats.values()])
            self._center = counts @ centres / counts.sum()
            self._phase = "hard"
            return values
        parts = [Moments.from_arrays(a, "moments") for a in stats.values()]
        widths = sorted({part.center.shape[0] for part in parts})
        if len(widths) != 1:
            raise FederationError(
                f"FedEM: clients sent statistics of different widths {widths}."
            )
        total = sum_moments(parts)
        if total.n_samples <= 0:
            raise FederationError("FedEM: the clients that answered hold no rows.")
        if self._phase == "moments":
            return self._fold_global(total)
        if self._phase == "hard":
            return self._fold_hard(total)
        return self._fold_em(total)

    def _fold_global(self, total: Moments) -> dict[str, float]:
        _, mean, cov = gaussian_from_moments(
            total.nk,
            total.first,
            total.second,
            total.center,
            self.reg_covar,
            self.covariance_type,
        )
        rng = np.random.default_rng(self.random_state or 0)
        draws = rng.standard_normal((self.n_clusters, mean.shape[1]))
        if self.covariance_type == "full":
            self.means_ = mean[0] + draws @ np.linalg.cholesky(cov[0]).T
        else:
            self.means_ = mean[0] + draws * np.sqrt(cov[0])
        self.covariances_ = np.repeat(cov, self.n_clusters, axis=0)
        self.weights_ = np.full(self.n_clusters, 1.0 / self.n_clusters)
        self._center = mean[0]
        self.n_samples_ = total.n_samples
        self._phase = "em"
        return {"n_samples": total.n_samples}

    def _fold_hard(self, total: Moments) -> dict[str, float]:
        weights, means, covariances = gaussian_from_moments(
            total.nk,
            total.first,
            total.second,
            total.center,
            self.reg_covar,
            self.covariance_type,
        )
        empty = total.nk <= 0
        if np.any(empty):
            # a k-FED centre nearest to no row: restart it as the pooled Gaussian
            pooled = total.pooled()
            _, _, cov = gaussian_from_moments(
                pooled.nk,
                pooled.first,
                pooled.second,
                pooled.center,
                self.reg_covar,
                self.covariance_type,
            )
            means[empty] = self._kfed.cluster_centers_[empty]
            covariances[empty] = cov[0]
            weights = np.maximum(total.nk, 1.0) / np.maximum(total.nk, 1.0).sum()
            log(
                WARNING,
                "FedEM: k-FED centres %s are nearest to no row; they start as the "
                "pooled Gaussian at their centre.",
                np.flatnonzero(empty).tolist(),
            )
        self.weights_, self.means_, self.covariances_ = weights, means, covariances
        self.n_samples_ = total.n_samples
        self._phase = "em"
        return {"n_samples": total.n_samples}

    def _fold_em(self, total: Moments) -> dict[str, float]:
        mean_loglik = total.loglik / total.n_samples
        change = mean_loglik - self.lower_bound_
        self.weights_, self.means_, self.covariances_ = gaussian_from_moments(
            total.nk,
            total.first,
            total.second,
            total.center,
            self.reg_covar,
            self.covariance_type,
        )
        self.lower_bound_ = mean_loglik
        self.n_samples_ = total.n_samples
        self.n_iter_ += 1
        if abs(change) < self.tol:
            self.converged_ = True
            self._phase = "done"
        elif self.n_iter_ >= self.max_iter:
            log(
                WARNING,
                "FedEM did not converge in max_iter=%d iterations (last change "
                "%.3g, tol=%g); raise max_iter or tol.",
                self.max_iter,
                change,
                self.tol,
            )
            self._phase = "done"
        return {"mean_loglik": mean_loglik, "n_iter": float(self.n_iter_)}

    def stop_early(self, num_rounds: int) -> None:
        """Keep the mixture so far when EM has started; otherwise fail."""
        if self._phase != "em":
            super().stop_early(num_rounds)
        log(
            WARNING,
            "FedEM: num_rounds=%d reached after %d EM iterations, not converged; "
            "raise num_rounds for a converged mixture.",
            num_rounds,
            self.n_iter_,
        )
        self._phase = "done"

    def evaluation_step(self, client: int | None):
        """The mixture, the same for every client."""
        return EVALUATE_MIXTURE, self.model().to_arrays()

    # ------------------------------------------------------------------ results

    def _mixture(self) -> FlatMixture:
        return FlatMixture(self.weights_, self.means_, self.covariances_)

    def model(self) -> FlatMixture:
        """The fitted mixture."""
        if self._phase != "done":
            raise RuntimeError("FedEM has not finished; call start() first.")
        return self._mixture()
