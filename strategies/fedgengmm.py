"""``FedGenGMM``: one-shot federated Gaussian mixtures from local generative models.

After Pettersson et al., "FedGenGMM: Communication-efficient federated Gaussian
mixture models for unsupervised learning" (2025): clients fit local mixtures,
the server fits the global one on samples drawn from their union.
"""

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

from fedgmmtree import FederationError
from fedgmmtree._gaussian import check_covariance_type

from ._baseline import FederatedBaseline, Step, check_positive_int
from ._baseline_client import EVALUATE_MIXTURE, FEDGENGMM
from ._baseline_models import FlatMixture

LOCAL_FIELDS = ("local.weights", "local.means", "local.covariances", "local.n")


def check_local_mixture(
    arrays: dict[str, np.ndarray], covariance_type: str
) -> str | None:
    """Why a client's local mixture is unusable, or None.

    Parameters
    ----------
    arrays : dict of ndarray
        ``local.weights`` (k,), ``local.means`` (k, n_features),
        ``local.covariances`` (k, n_features, n_features) or (k, n_features),
        ``local.n`` (1,).
    covariance_type : {"full", "diag"}
    """
    missing = [name for name in LOCAL_FIELDS if name not in arrays]
    if missing:
        return f"fields {missing} missing"
    weights, means, covariances, n = (arrays[name] for name in LOCAL_FIELDS)
    k = weights.shape[0]
    n_features = means.shape[-1]
    cov_shape = (k, n_features) + ((n_features,) if covariance_type == "full" else ())
    if weights.ndim != 1 or means.shape != (k, n_features) or n.shape != (1,):
        return (
            f"weights {weights.shape}, means {means.shape} and n {n.shape} do not "
            "fit together"
        )
    if covariances.shape != cov_shape:
        return f"covariances have shape {covariances.shape}, expected {cov_shape}"
    if not all(np.all(np.isfinite(arrays[name])) for name in LOCAL_FIELDS):
        return "non-finite values"
    if n[0] < 0 or np.any(weights < 0) or (k and not np.isclose(weights.sum(), 1.0)):
        return "weights must be non-negative and sum to 1, and n must be >= 0"
    if covariance_type == "diag" and np.any(covariances <= 0):
        return "a diagonal covariance is not positive"
    if covariance_type == "full":
        try:
            np.linalg.cholesky(covariances)
        except np.linalg.LinAlgError:
            return "a covariance is not positive definite"
    return None


class FedGenGMM(FederatedBaseline):
    """One-shot federated mixture: local mixtures, then a fit on their samples.

    One round. Each client fits scikit-learn ``GaussianMixture`` models with
    1 .. ``max_local_components`` components (at most its distinct rows) and
    sends the one of lowest BIC with its row count. The server draws
    ``n_synthetic`` samples from the union of the local mixtures, each client's
    mixture weighted by its share of the rows (seeded, in client-key order), and
    fits a ``GaussianMixture`` with ``n_clusters`` components on them.

    A FedGenGMM-style method after Pettersson et al., "FedGenGMM:
    Communication-efficient federated Gaussian mixture models for unsupervised
    learning" (2025).

    Parameters
    ----------
    n_clusters : int
        Components K of the global mixture.
    covariance_type : {"full", "diag"}, default="full"
        Of the local mixtures and the global one.
    max_local_components : int or None, default=None
        Largest local mixture tried (K if None).
    n_synthetic : int or None, default=None
        Samples the server draws (the clients' rows together if None, and never
        fewer than K).
    reg_covar : float, default=1e-6
    n_init : int, default=1
        Initialisations of the server's fit.
    local_n_init : int, default=1
        Initialisations of each local fit.
    random_state : int or None, default=None
        Seed of the server's draws and fit and (with the client key) the local
        fits.
    min_nodes, node_wait_timeout
        As in :class:`FederatedBaseline`.

    Attributes
    ----------
    mixture_ : FlatMixture
        The global mixture.
    local_components_ : dict of int to int
        Components of each client's mixture, by client key.
    """

    def __init__(
        self,
        n_clusters: int,
        *,
        covariance_type: str = "full",
        max_local_components: int | None = None,
        n_synthetic: int | None = None,
        reg_covar: float = 1e-6,
        n_init: int = 1,
        local_n_init: int = 1,
        random_state: int | None = None,
        min_nodes: int = 1,
        node_wait_timeout: float = 120.0,
    ) -> None:
        super().__init__(min_nodes=min_nodes, node_wait_timeout=node_wait_timeout)
        check_positive_int("n_clusters", n_clusters)
        self.max_local_components = check_positive_int(
            "max_local_components",
            n_clusters if max_local_components is None else max_local_components,
        )
        if n_synthetic is not None:
            check_positive_int("n_synthetic", n_synthetic)
        check_positive_int("n_init", n_init)
        check_positive_int("local_n_init", local_n_init)
        if not reg_covar >= 0.0:
            raise ValueError(f"reg_covar must be a float >= 0, but got {reg_covar!r}.")
        self.n_clusters = n_clusters
        self.covariance_type = check_covariance_type(covariance_type)
        self.n_synthetic = n_synthetic
        self.reg_covar = reg_covar
        self.n_init = n_init
        self.local_n_init = local_n_init
        self.random_state = random_state
        self.mixture_: FlatMixture | None = None
        self.local_components_: dict[int, int] = {}

    def settings(self) -> dict:
        """Settings shown by :meth:`summary`."""
        return {
            "n_clusters": self.n_clusters,
            "covariance_type": self.covariance_type,
            "max_local_components": self.max_local_components,
            "n_synthetic": self.n_synthetic,
            "random_state": self.random_state,
        }

    @property
    def done(self) -> bool:
        """Whether the global mixture is fitted."""
        return self.mixture_ is not None

    def next_step(self) -> Step:
        """Local mixtures on every client."""
        config = {
            "max-components": int(self.max_local_components),
            "covariance-type": self.covariance_type,
            "reg-covar": float(self.reg_covar),
            "n-init": int(self.local_n_init),
            "random-state": int(self.random_state or 0),
        }
        return FEDGENGMM, {}, config

    def check_reply(self, arrays: dict[str, np.ndarray]) -> str | None:
        """Shapes, finiteness and positive definiteness of a local mixture."""
        return check_local_mixture(arrays, self.covariance_type)

    def fold(self, stats: dict[int, dict[str, np.ndarray]]) -> dict[str, float]:
        """Draw from the union of the local mixtures and fit the global one."""
        widths = sorted({arrays["local.means"].shape[1] for arrays in stats.values()})
        if len(widths) != 1:
            raise FederationError(
                f"FedGenGMM: clients sent mixtures of different widths {widths}."
            )
        rows = np.array([arrays["local.n"][0] for arrays in stats.values()])
        if rows.sum() <= 0:
            raise FederationError("FedGenGMM: the clients that answered hold no rows.")
        self.local_components_ = {
            client: int(arrays["local.weights"].shape[0])
            for client, arrays in stats.items()
        }
        weights = np.concatenate(
            [
                arrays["local.weights"] * n / rows.sum()
                for arrays, n in zip(stats.values(), rows, strict=True)
            ]
        )
        means = np.vstack([arrays["local.means"] for arrays in stats.values()])
        covariances = np.concatenate(
            [arrays["local.covariances"] for arrays in stats.values()]
        )
        n_synthetic = self.n_synthetic or int(rows.sum())
        n_synthetic = max(n_synthetic, self.n_clusters)
        rng = np.random.default_rng(self.random_state or 0)
        samples = self._draw(rng, n_synthetic, weights, means, covariances)
        gmm = GaussianMixture(
            n_components=self.n_clusters,
            covariance_type=self.covariance_type,
            reg_covar=self.reg_covar,
            n_init=self.n_init,
            random_state=self.random_state or 0,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            gmm.fit(samples)
        self.mixture_ = FlatMixture(gmm.weights_, gmm.means_, gmm.covariances_)
        return {
            "local_components": float(weights.shape[0]),
            "n_synthetic": float(n_synthetic),
        }

    def _draw(self, rng, n_samples, weights, means, covariances) -> np.ndarray:
        """``n_samples`` rows from the mixture, component by component."""
        counts = rng.multinomial(n_samples, weights / weights.sum())
        parts = []
        for k in np.flatnonzero(counts):
            draws = rng.standard_normal((counts[k], means.shape[1]))
            if self.covariance_type == "full":
                parts.append(means[k] + draws @ np.linalg.cholesky(covariances[k]).T)
            else:
                parts.append(means[k] + draws * np.sqrt(covariances[k]))
        return np.vstack(parts)

    def evaluation_step(self, client: int | None):
        """The global mixture, the same for every client."""
        return EVALUATE_MIXTURE, self.model().to_arrays()

    def model(self) -> FlatMixture:
        """The global mixture."""
        if self.mixture_ is None:
            raise RuntimeError("FedGenGMM has no mixture yet; call start() first.")
        return self.mixture_
