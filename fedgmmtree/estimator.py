"""``GMMTree``: the tree of Gaussians as a scikit-learn estimator.

``fit`` plays the federated protocol with the whole data set as the only client,
so a centralised fit and a federated one run the very same maths.
"""

import numpy as np
from scipy.special import logsumexp
from sklearn.base import BaseEstimator, ClusterMixin, DensityMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from ._client import route_soft
from ._gaussian import log_gaussian_prob, precisions_cholesky
from ._merge import cut_linkage, merge_linkage
from ._protocol import (
    GrowthParams,
    TreeGrower,
    _is_int,
    apply_transform,
    client_step,
)
from ._tree import LEAF, Tree
from .validation import check_client_data


class GMMTree(ClusterMixin, DensityMixin, BaseEstimator):
    """Divisive hierarchical clustering with a tree of Gaussian mixtures.

    Each node is a Gaussian. A node is refined by EM on a mixture of
    ``n_children`` Gaussians fitted to the samples routed to it; the split is kept
    when ``split_criterion`` prefers it, otherwise the node becomes a leaf. The
    leaves form a flat Gaussian mixture; ``n_clusters`` merges leaves bottom-up.

    Parameters
    ----------
    n_children : int, default=2
        Number of children fitted at each node (K).
    covariance_type : {"full", "diag"}, default="full"
    split_criterion : {"bic", "aic", "normality"}, default="bic"
        Rule that keeps a split. ``"bic"`` and ``"aic"``: the split must lower the
        criterion of the node's data. ``"normality"`` (G-means, Hamerly and Elkan
        2003): the node's data projected on the axis of the children's means must
        fail a chi-square test of normality at ``significance``; clients send
        histograms of the standardised projection on fixed bins.
    min_samples_leaf : int, default=1
        Fewest samples a child may hold. The effective floor is never below
        ``n_features + 1``, so every child's covariance is estimable.
    max_depth : int or None, default=None
        Depth at which nodes stop splitting (the root has depth 0).
    max_leaves : int or None, default=None
        Most leaves the tree may have.
    reg_covar : float, default=1e-6
        Added to the diagonal of every covariance.
    tol : float, default=1e-3
        EM at a node stops when the mean log-likelihood gains less than this.
    max_iter : int, default=100
        Most EM iterations per node.
    n_clusters : int or None, default=None
        When set, leaves are merged bottom-up to this many clusters and
        ``predict`` returns cluster labels; otherwise it returns leaf labels.
    standardize : bool, default=False
        Fit on data scaled by the global mean and standard deviation.
        Parameters are reported in the original units.
    n_components_pca : int or None, default=None
        Fit on the projection onto the data's first principal components. The
        Gaussians then live in the projected space.
    n_init : int, default=3
        Candidate child mixtures per node: the principal-axis split, then seeded
        draws from the node's Gaussian. The best final log-likelihood wins.
    init_steps : int or None, default=None
        When set, every candidate takes this many EM steps and then only the
        one with the best log-likelihood goes on to convergence (short runs of
        EM, Biernacki, Celeux and Govaert, 2003), so a node waits at most
        ``init_steps`` rounds for a slow candidate. Fewer rounds, but the
        candidate that leads early is not always the one that wins at the end.
        None runs every candidate to convergence.
    refine_leaves : int, default=0
        After growth, up to this many rounds of EM on all leaves at once, as
        one flat mixture (stopping early on ``tol``); each internal node then
        becomes the moment-matched merge of its children. 0 keeps the leaves
        as growth left them.
    sample_size : int or None, default=None
        About this many of a node's rows (over all clients, each client in
        proportion to its share, drawn from a seed of ``random_state``, the
        round, the node and the client) take part in each EM step; None uses
        all rows. Sampled log-likelihoods are noisy, so EM stops on ``tol`` or
        ``max_iter`` as usual and then one step on all rows gives the statistics
        that decide the split and the children's parameters.
    subspace_dim : int, float or None, default=None
        Each node fits its children on a random subset of this many features (a
        float: this share of them), drawn once per node from ``random_state``;
        a final step then estimates the children's Gaussians on all features,
        so prediction uses every feature. The split criterion is evaluated on
        the subspace.
    routing : {"hard", "soft"}, default="hard"
        ``"hard"`` sends each sample to its most likely child; ``"soft"`` sends
        it down every branch with weight equal to the product of the
        responsibilities along the path (weights below 1e-12 are dropped), and
        ``predict`` picks the leaf of largest weight.
    significance : float, default=1e-4
        Level of the normality test.
    random_state : int or None, default=None
        Seed of the randomised options (None means 0: fits are always
        reproducible, and never read NumPy's global random state).

    Attributes
    ----------
    tree_ : Tree
        The fitted tree as flat arrays.
    n_leaves_ : int
    depth_ : int
    weights_ : ndarray of shape (n_leaves,)
    means_ : ndarray of shape (n_leaves, n_features)
    covariances_ : ndarray of shape (n_leaves, n_features, n_features) or \
            (n_leaves, n_features)
    linkage_ : ndarray of shape (n_leaves - 1, 4)
        Bottom-up merge order of the leaves in SciPy's linkage format.
    leaf_cluster_ : ndarray of shape (n_leaves,)
        Cluster of each leaf (each leaf its own when ``n_clusters`` is None).
    labels_ : ndarray of shape (n_samples,)
        Labels of the training data.
    n_rounds_ : int
        Rounds of the protocol the fit took.
    n_iter_ : int
        Most EM iterations that any node took (at most ``max_iter``).
    history_ : list of dict
        One record per round: active nodes, leaves and mean log-likelihood.
    n_features_in_ : int
    """

    def __init__(
        self,
        n_children=2,
        covariance_type="full",
        split_criterion="bic",
        min_samples_leaf=1,
        max_depth=None,
        max_leaves=None,
        reg_covar=1e-6,
        tol=1e-3,
        max_iter=100,
        n_clusters=None,
        standardize=False,
        n_components_pca=None,
        n_init=3,
        init_steps=None,
        refine_leaves=0,
        sample_size=None,
        subspace_dim=None,
        routing="hard",
        significance=1e-4,
        random_state=None,
    ):
        self.n_children = n_children
        self.covariance_type = covariance_type
        self.split_criterion = split_criterion
        self.min_samples_leaf = min_samples_leaf
        self.max_depth = max_depth
        self.max_leaves = max_leaves
        self.reg_covar = reg_covar
        self.tol = tol
        self.max_iter = max_iter
        self.n_clusters = n_clusters
        self.standardize = standardize
        self.n_components_pca = n_components_pca
        self.n_init = n_init
        self.init_steps = init_steps
        self.refine_leaves = refine_leaves
        self.sample_size = sample_size
        self.subspace_dim = subspace_dim
        self.routing = routing
        self.significance = significance
        self.random_state = random_state

    def growth_params(self) -> GrowthParams:
        """The growth settings shared with the federated strategy."""
        return GrowthParams(
            n_children=self.n_children,
            covariance_type=self.covariance_type,
            split_criterion=self.split_criterion,
            min_samples_leaf=self.min_samples_leaf,
            max_depth=self.max_depth,
            max_leaves=self.max_leaves,
            reg_covar=self.reg_covar,
            tol=self.tol,
            max_iter=self.max_iter,
            standardize=self.standardize,
            n_components_pca=self.n_components_pca,
            n_init=self.n_init,
            init_steps=self.init_steps,
            refine_leaves=self.refine_leaves,
            sample_size=self.sample_size,
            subspace_dim=self.subspace_dim,
            routing=self.routing,
            significance=self.significance,
            random_state=self.random_state,
        ).validate()

    def fit(self, X, y=None):
        """Grow the tree on ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : Ignored

        Returns
        -------
        self : GMMTree
        """
        self.fit_predict(X)
        return self

    def fit_predict(self, X, y=None):
        """Grow the tree on ``X`` and return the label of every sample.

        Returns
        -------
        labels : ndarray of shape (n_samples,)
        """
        X = validate_data(self, X, dtype=np.float64, ensure_all_finite=False)
        X = check_client_data(X)
        if self.n_clusters is not None and not _is_int(self.n_clusters, 1):
            raise ValueError(
                f"n_clusters must be None or an int >= 1, but got {self.n_clusters!r}."
            )
        grower = TreeGrower(self.growth_params())
        cache = {}
        while not grower.done:
            grower.update({0: client_step(X, grower.instructions(0), 0, cache)})
        self._set_fitted(grower)
        self.labels_ = self.predict(X)
        return self.labels_

    def _set_fitted(self, grower: TreeGrower):
        """Read the fitted attributes off a finished grower (also used federated)."""
        tree = grower.tree
        self.tree_ = tree
        self.n_features_in_ = grower.n_features_in
        self.transform_ = {
            key: value for key, value in grower.transform_arrays().items()
        }
        self.n_rounds_ = grower.round
        self.n_iter_ = max(
            (len(c) for lists in grower.em_logliks.values() for c in lists), default=0
        )
        self.history_ = list(grower.history)
        leaves = np.flatnonzero(tree.state == LEAF)
        self.leaves_ = leaves
        self.n_leaves_ = int(leaves.size)
        self.depth_ = int(tree.depth.max())
        path = tree.path_weights()
        self.weights_ = path[leaves] / path[leaves].sum()
        self._work_means = tree.means[leaves]
        self._work_covariances = tree.covariances[leaves]
        self._work_prec_chol = precisions_cholesky(
            self._work_covariances, tree.covariance_type
        )
        self.means_, self.covariances_ = self._to_input_units(
            self._work_means, self._work_covariances
        )
        total = tree.n_samples[0]
        self.linkage_ = merge_linkage(
            total * self.weights_,
            self._work_means,
            self._work_covariances,
            tree.covariance_type,
        )
        n_clusters = self.n_leaves_ if self.n_clusters is None else self.n_clusters
        self.leaf_cluster_ = cut_linkage(self.linkage_, self.n_leaves_, n_clusters)
        self._leaf_position = np.full(tree.n_nodes, -1)
        self._leaf_position[leaves] = np.arange(self.n_leaves_)
        return self

    def _to_input_units(self, means, covariances):
        if "transform.components" in self.transform_:
            return means.copy(), covariances.copy()
        if "transform.offset" not in self.transform_:
            return means.copy(), covariances.copy()
        offset = self.transform_["transform.offset"]
        scale = self.transform_["transform.scale"]
        means = offset + means * scale
        if covariances.ndim == 3:
            covariances = covariances * np.outer(scale, scale)
        else:
            covariances = covariances * scale**2
        return means, covariances

    def _prepare(self, X):
        check_is_fitted(self, "tree_")
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return apply_transform(X, self.transform_)

    def _log_jacobian(self):
        if "transform.components" in self.transform_:
            return 0.0
        if "transform.offset" in self.transform_:
            return -float(np.sum(np.log(self.transform_["transform.scale"])))
        return 0.0

    def _weighted_log_prob(self, X):
        log_prob = log_gaussian_prob(
            X, self._work_means, self._work_prec_chol, self.tree_.covariance_type
        )
        return log_prob + np.log(self.weights_) + self._log_jacobian()

    def predict(self, X):
        """Label of each sample: its leaf, or its leaf's cluster.

        Samples are routed down the tree as in a decision tree (with
        ``routing="soft"``: to the leaf of largest path weight).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        labels : ndarray of shape (n_samples,)
        """
        leaf = self.predict_leaf(X)
        return self.leaf_cluster_[leaf]

    def predict_leaf(self, X):
        """Index (into ``means_``) of the leaf each sample is routed to."""
        X = self._prepare(X)
        if self.routing != "soft":
            return self._leaf_position[self.tree_.route(X)]
        weights = route_soft(X, self.tree_)
        leaves = np.array(sorted(weights))
        best = np.argmax(np.stack([weights[v] for v in leaves], axis=1), axis=1)
        return self._leaf_position[leaves[best]]

    def predict_proba(self, X):
        """Posterior of each cluster under the flat mixture of leaves.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_clusters)
            Leaves' posteriors summed per cluster (per leaf without
            ``n_clusters``).
        """
        X = self._prepare(X)
        weighted = self._weighted_log_prob(X)
        resp = np.exp(weighted - logsumexp(weighted, axis=1, keepdims=True))
        n_out = int(self.leaf_cluster_.max()) + 1
        proba = np.zeros((X.shape[0], n_out))
        np.add.at(proba.T, self.leaf_cluster_, resp.T)
        return proba

    def score_samples(self, X):
        """Log-density of each sample under the flat mixture of leaves.

        Returns
        -------
        log_density : ndarray of shape (n_samples,)
        """
        X = self._prepare(X)
        return logsumexp(self._weighted_log_prob(X), axis=1)

    def score(self, X, y=None):
        """Mean log-density of ``X`` under the flat mixture of leaves."""
        return float(self.score_samples(X).mean())

    def _n_parameters(self):
        n_features = self._work_means.shape[1]
        if self.tree_.covariance_type == "full":
            cov = self.n_leaves_ * n_features * (n_features + 1) / 2.0
        else:
            cov = self.n_leaves_ * n_features
        return int(cov + self.n_leaves_ * n_features + self.n_leaves_ - 1)

    def bic(self, X):
        """Bayesian information criterion of the flat mixture on ``X``."""
        n = np.asarray(X).shape[0]
        return -2 * self.score(X) * n + self._n_parameters() * np.log(n)

    def aic(self, X):
        """Akaike information criterion of the flat mixture on ``X``."""
        n = np.asarray(X).shape[0]
        return -2 * self.score(X) * n + 2 * self._n_parameters()

    def render(self) -> str:
        """The fitted tree as text, one node a line."""
        check_is_fitted(self, "tree_")
        return self.tree_.render()

    @classmethod
    def from_grower(cls, grower: TreeGrower, n_clusters=None) -> "GMMTree":
        """A fitted estimator from a grower that finished, e.g. a federated one."""
        params = grower.params
        model = cls(
            n_children=params.n_children,
            covariance_type=params.covariance_type,
            split_criterion=params.split_criterion,
            min_samples_leaf=params.min_samples_leaf,
            max_depth=params.max_depth,
            max_leaves=params.max_leaves,
            reg_covar=params.reg_covar,
            tol=params.tol,
            max_iter=params.max_iter,
            n_clusters=n_clusters,
            standardize=params.standardize,
            n_components_pca=params.n_components_pca,
            n_init=params.n_init,
            init_steps=params.init_steps,
            refine_leaves=params.refine_leaves,
            sample_size=params.sample_size,
            subspace_dim=params.subspace_dim,
            routing=params.routing,
            significance=params.significance,
            random_state=params.random_state,
        )
        return model._set_fitted(grower)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The fitted model as named arrays (what travels and what is saved)."""
        check_is_fitted(self, "tree_")
        arrays = self.tree_.to_arrays()
        arrays.update(self.transform_)
        arrays["model.linkage"] = self.linkage_
        arrays["model.leaf_cluster"] = self.leaf_cluster_
        arrays["model.n_features_in"] = np.array([self.n_features_in_])
        arrays["model.soft_routing"] = np.array([int(self.routing == "soft")])
        return arrays

    @classmethod
    def from_arrays(cls, arrays, n_clusters=None) -> "GMMTree":
        """A fitted model from :meth:`to_arrays`; ``n_clusters`` re-cuts the leaves."""
        tree = Tree.from_arrays(arrays)
        soft = int(np.asarray(arrays.get("model.soft_routing", [0]))[0]) == 1
        grower = TreeGrower(
            GrowthParams(
                covariance_type=tree.covariance_type,
                routing="soft" if soft else "hard",
            )
        )
        grower.tree = tree
        grower.n_features_in = int(arrays["model.n_features_in"][0])
        grower.offset = arrays.get("transform.offset")
        grower.scale = arrays.get("transform.scale")
        grower.components = arrays.get("transform.components")
        if n_clusters is None and "model.leaf_cluster" in arrays:
            leaf_cluster = np.asarray(arrays["model.leaf_cluster"])
            if leaf_cluster.size and leaf_cluster.max() + 1 < leaf_cluster.size:
                n_clusters = int(leaf_cluster.max()) + 1
        return cls.from_grower(grower, n_clusters=n_clusters)

    def save(self, path):
        """Write the fitted model to an ``.npz`` file of named arrays."""
        np.savez(path, **self.to_arrays())

    @classmethod
    def load(cls, path, n_clusters=None) -> "GMMTree":
        """Read a model written by :meth:`save`."""
        with np.load(path) as data:
            arrays = {key: data[key] for key in data.files}
        return cls.from_arrays(arrays, n_clusters=n_clusters)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags
