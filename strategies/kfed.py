"""``KFed``: one-shot federated clustering from local k-means centres.

Dennis, Li and Smith, "Heterogeneity for the Win: One-Shot Federated
Clustering", ICML 2021 (k-FED).
"""

import numpy as np
from sklearn.cluster import KMeans

from fedgmmtree import FederationError

from ._baseline import FederatedBaseline, Step, check_positive_int
from ._baseline_client import EVALUATE_CENTROIDS, KFED
from ._baseline_models import Centroids

ASSIGNMENTS = ("nearest", "local")


def check_centres(arrays: dict[str, np.ndarray], n_features: int | None) -> str | None:
    """Why a k-FED reply is unusable, or None.

    Parameters
    ----------
    arrays : dict of ndarray
        ``kfed.centres`` of shape (k', n_features), ``kfed.counts`` of shape (k',).
    n_features : int or None
        Expected columns (None: any).
    """
    centres, counts = arrays.get("kfed.centres"), arrays.get("kfed.counts")
    if centres is None or counts is None:
        return "kfed.centres or kfed.counts missing"
    if centres.ndim != 2 or counts.shape != (centres.shape[0],):
        return (
            f"centres of shape {centres.shape} do not match counts of shape "
            f"{counts.shape}"
        )
    if n_features is not None and centres.shape[1] != n_features:
        return f"centres have {centres.shape[1]} features, expected {n_features}"
    if not (np.all(np.isfinite(centres)) and np.all(np.isfinite(counts))):
        return "non-finite centres or counts"
    if np.any(counts <= 0):
        return "counts must be positive"
    return None


class KFed(FederatedBaseline):
    """k-FED: local k-means, then k-means of the local centres on the server.

    One round. Each client runs scikit-learn's ``KMeans`` with ``k'`` clusters
    (at most its distinct rows; seed from ``(random_state, client key)``) and
    sends its centres and their counts. The server runs k-means with
    ``n_clusters`` on all local centres, each weighted by its count. Points are
    labelled by their nearest global centre (``assignment="nearest"``), or as
    the paper induces it, by the global cluster of their nearest local centre
    (``assignment="local"``; each client then gets its own centres back).

    Dennis, Li and Smith, "Heterogeneity for the Win: One-Shot Federated
    Clustering", ICML 2021. The paper's server step is Lloyd's algorithm from a
    farthest-point start; here it is weighted k-means++ with ``n_init``
    restarts.

    Parameters
    ----------
    n_clusters : int
        Global clusters K.
    n_local_clusters : int or None, default=None
        k', clusters per client (K if None).
    assignment : {"nearest", "local"}, default="nearest"
    n_init : int, default=10
        Restarts of the server's k-means.
    local_n_init : int, default=3
        Restarts of each client's k-means.
    random_state : int or None, default=None
        Seed of the server's and (with the client key) the clients' k-means.
    min_nodes, node_wait_timeout
        As in :class:`FederatedBaseline`.

    Attributes
    ----------
    cluster_centers_ : ndarray of shape (n_clusters, n_features)
    local_centres_ : dict of int to ndarray of shape (k', n_features)
        Each client's centres, by client key.
    local_labels_ : dict of int to ndarray of shape (k',)
        Global cluster of each local centre.
    """

    def __init__(
        self,
        n_clusters: int,
        *,
        n_local_clusters: int | None = None,
        assignment: str = "nearest",
        n_init: int = 10,
        local_n_init: int = 3,
        random_state: int | None = None,
        min_nodes: int = 1,
        node_wait_timeout: float = 120.0,
    ) -> None:
        super().__init__(min_nodes=min_nodes, node_wait_timeout=node_wait_timeout)
        check_positive_int("n_clusters", n_clusters)
        check_positive_int(
            "n_local_clusters",
            n_clusters if n_local_clusters is None else n_local_clusters,
        )
        check_positive_int("n_init", n_init)
        check_positive_int("local_n_init", local_n_init)
        if assignment not in ASSIGNMENTS:
            raise ValueError(
                f"assignment must be one of {ASSIGNMENTS}, but got {assignment!r}."
            )
        self.n_clusters = n_clusters
        self.n_local_clusters = (
            n_clusters if n_local_clusters is None else n_local_clusters
        )
        self.assignment = assignment
        self.n_init = n_init
        self.local_n_init = local_n_init
        self.random_state = random_state
        self.cluster_centers_: np.ndarray | None = None
        self.local_centres_: dict[int, np.ndarray] = {}
        self.local_labels_: dict[int, np.ndarray] = {}
        self._n_features: int | None = None

    def settings(self) -> dict:
        """Settings shown by :meth:`summary`."""
        return {
            "n_clusters": self.n_clusters,
            "n_local_clusters": self.n_local_clusters,
            "assignment": self.assignment,
            "n_init": self.n_init,
            "random_state": self.random_state,
        }

    @property
    def done(self) -> bool:
        """Whether the global centres are known."""
        return self.cluster_centers_ is not None

    def next_step(self) -> Step:
        """Local k-means on every client."""
        config = {
            "n-local-clusters": int(self.n_local_clusters),
            "n-init": int(self.local_n_init),
            "random-state": int(self.random_state or 0),
        }
        return KFED, {}, config

    def check_reply(self, arrays: dict[str, np.ndarray]) -> str | None:
        """Shapes, finiteness and positive counts of the local centres."""
        return check_centres(arrays, self._n_features)

    def fold(self, stats: dict[int, dict[str, np.ndarray]]) -> dict[str, float]:
        """Weighted k-means of all local centres, in client-key order."""
        centres = [arrays["kfed.centres"] for arrays in stats.values()]
        widths = {c.shape[1] for c in centres}
        if len(widths) != 1:
            raise FederationError(
                f"k-FED clients sent centres of different widths {sorted(widths)}."
            )
        stacked = np.vstack(centres)
        counts = np.concatenate([arrays["kfed.counts"] for arrays in stats.values()])
        if stacked.shape[0] < self.n_clusters:
            raise FederationError(
                f"k-FED received {stacked.shape[0]} local centres from "
                f"{len(stats)} clients, fewer than n_clusters={self.n_clusters}. "
                "Raise n_local_clusters or add clients."
            )
        kmeans = KMeans(
            n_clusters=self.n_clusters,
            n_init=self.n_init,
            random_state=self.random_state or 0,
        ).fit(stacked, sample_weight=counts)
        self.cluster_centers_ = kmeans.cluster_centers_
        self._n_features = stacked.shape[1]
        ends = np.cumsum([c.shape[0] for c in centres])
        for client, labels, local in zip(
            stats, np.split(kmeans.labels_, ends[:-1]), centres, strict=True
        ):
            self.local_centres_[client] = local
            self.local_labels_[client] = labels.astype(np.int64)
        return {"local_centres": float(stacked.shape[0]), "inertia": kmeans.inertia_}

    def evaluation_step(self, client: int | None):
        """The global centres, or the client's own centres with their clusters."""
        if self.assignment == "local" and client in self.local_centres_:
            model = Centroids(self.local_centres_[client], self.local_labels_[client])
        else:
            model = self.model()
        return EVALUATE_CENTROIDS, model.to_arrays()

    def model(self) -> Centroids:
        """The global centres as a nearest-centre labelling."""
        if self.cluster_centers_ is None:
            raise RuntimeError("KFed has no centres yet; call start() first.")
        return Centroids(self.cluster_centers_)
