"""The tree of Gaussians as flat parallel arrays, its routing and its codec.

Node ``i`` has ``parent[i]`` (-1 for the root), ``depth[i]``, ``weight[i]`` (its
share of the parent's mass), a Gaussian ``means[i]``/``covariances[i]``,
``n_samples[i]``, a ``state`` and, once decided, the ``reason`` and ``score`` of
its split decision. Children always have larger ids than their parent, so a pass
in id order visits parents first.
"""

import numpy as np

from ._gaussian import (
    log_gaussian_prob,
    merge_moments,
    precisions_cholesky,
    row_blocks,
)

FORMAT_VERSION = 1

ACTIVE, INTERNAL, LEAF = 0, 1, 2
STATE_NAMES = {ACTIVE: "active", INTERNAL: "internal", LEAF: "leaf"}

# Why a node is what it is; the codes travel on the wire, so never renumber.
REASONS = {
    0: "undecided",
    1: "split accepted",
    2: "criterion prefers one Gaussian",
    3: "max_depth reached",
    4: "max_leaves reached",
    5: "too few points for the children",
    6: "a child would hold too few points",
    7: "a child collapsed onto the reg_covar floor",
    8: "no data reached the node",
    9: "a child lost all its points",
    10: "growth stopped by the round cap",
}
UNDECIDED, SPLIT, CRITERION, MAX_DEPTH, MAX_LEAVES = 0, 1, 2, 3, 4
TOO_FEW_POINTS, CHILD_TOO_SMALL, COLLAPSED, EMPTY, EMPTY_CHILD = 5, 6, 7, 8, 9
STOPPED = 10

_COVARIANCE_CODES = {"full": 0, "diag": 1}
_FIELDS = (
    "parent",
    "depth",
    "weight",
    "means",
    "covariances",
    "n_samples",
    "state",
    "reason",
    "score",
    "dims",
)


class Tree:
    """A tree of Gaussians held in flat arrays.

    Parameters
    ----------
    n_features : int
        Dimension of the space the Gaussians live in.
    covariance_type : {"full", "diag"}
    """

    def __init__(self, n_features: int, covariance_type: str):
        self.n_features = int(n_features)
        self.covariance_type = covariance_type
        cov_shape = (
            (0, n_features, n_features)
            if covariance_type == "full"
            else (0, n_features)
        )
        self.parent = np.zeros(0, dtype=np.int64)
        self.depth = np.zeros(0, dtype=np.int64)
        self.weight = np.zeros(0)
        self.means = np.zeros((0, n_features))
        self.covariances = np.zeros(cov_shape)
        self.n_samples = np.zeros(0)
        self.state = np.zeros(0, dtype=np.int64)
        self.reason = np.zeros(0, dtype=np.int64)
        self.score = np.zeros(0)
        self.dims = np.zeros((0, n_features), dtype=bool)
        self._prec_chol = None

    @property
    def n_nodes(self) -> int:
        """Number of nodes."""
        return self.parent.shape[0]

    def add_node(self, parent, weight, mean, covariance, n_samples, state):
        """Append a node and return its id."""
        depth = 0 if parent < 0 else self.depth[parent] + 1
        self.parent = np.append(self.parent, parent)
        self.depth = np.append(self.depth, depth)
        self.weight = np.append(self.weight, weight)
        self.means = np.vstack([self.means, mean[np.newaxis]])
        self.covariances = np.concatenate([self.covariances, covariance[np.newaxis]])
        self.n_samples = np.append(self.n_samples, n_samples)
        self.state = np.append(self.state, state)
        self.reason = np.append(self.reason, UNDECIDED)
        self.score = np.append(self.score, 0.0)
        self.dims = np.vstack([self.dims, np.ones((1, self.n_features), dtype=bool)])
        self._prec_chol = None
        return self.n_nodes - 1

    def set_state(self, node, state, reason=UNDECIDED, score=0.0):
        """Record a decision on ``node``."""
        self.state[node] = state
        self.reason[node] = reason
        self.score[node] = score

    def children(self, node) -> np.ndarray:
        """Ids of the children of ``node``, in increasing order."""
        return np.flatnonzero(self.parent == node)

    def leaves(self) -> np.ndarray:
        """Ids of the nodes that have no children (leaves and active nodes)."""
        return np.flatnonzero(self.state != INTERNAL)

    def set_leaves(self, leaves, n_samples, means, covariances) -> None:
        """New Gaussians for some leaves; every internal node becomes a merge.

        Each internal node gets the moment-matched Gaussian of its children and
        each node's ``weight`` its share of its parent's samples, so the tree
        stays a hierarchy of the leaves' mixture.

        Parameters
        ----------
        leaves : ndarray of shape (n_set,)
            Ids of the leaves to set; the others keep their Gaussians.
        n_samples : ndarray of shape (n_set,)
            Each must be positive.
        means : ndarray of shape (n_set, n_features)
        covariances : ndarray
        """
        self.n_samples[leaves] = n_samples
        self.means[leaves] = means
        self.covariances[leaves] = covariances
        for node in range(self.n_nodes - 1, -1, -1):
            children = self.children(node)
            if children.size == 0:
                continue
            counts = self.n_samples[children]
            if counts.sum() <= 0:
                continue
            self.n_samples[node] = counts.sum()
            self.weight[children] = counts / counts.sum()
            self.means[node], self.covariances[node] = merge_moments(
                counts,
                self.means[children],
                self.covariances[children],
                self.covariance_type,
            )
        self._prec_chol = None

    def path_weights(self) -> np.ndarray:
        """Mixture weight of every node: the product of ``weight`` from the root."""
        total = np.ones(self.n_nodes)
        for node in range(self.n_nodes):
            if self.parent[node] >= 0:
                total[node] = total[self.parent[node]] * self.weight[node]
        return total

    def precisions_chol(self) -> np.ndarray:
        """Cholesky factors of every node's precision, cached."""
        if self._prec_chol is None:
            self._prec_chol = precisions_cholesky(
                self.covariances, self.covariance_type
            )
        return self._prec_chol

    def route(self, X) -> np.ndarray:
        """Send every sample down to a node with no children.

        At each internal node a sample goes to the child with the largest
        ``log weight + log density``, as a decision tree would.

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_features)

        Returns
        -------
        node : ndarray of shape (n_samples,)
            The id of the leaf or active node each sample ends in.
        """
        node = np.zeros(X.shape[0], dtype=np.int64)
        if self.n_nodes == 0:
            return node
        for block in row_blocks(X.shape[0], X.shape[1]):
            node[block] = self._route_block(X[block])
        return node

    def _route_block(self, X) -> np.ndarray:
        node = np.zeros(X.shape[0], dtype=np.int64)
        prec_chol = self.precisions_chol()
        for parent in np.flatnonzero(self.state == INTERNAL):
            children = self.children(parent)
            at_parent = np.flatnonzero(node == parent)
            if at_parent.size == 0 or children.size == 0:
                continue
            log_prob = log_gaussian_prob(
                X[at_parent],
                self.means[children],
                prec_chol[children],
                self.covariance_type,
            )
            with np.errstate(divide="ignore"):
                log_prob += np.log(self.weight[children])
            node[at_parent] = children[np.argmax(log_prob, axis=1)]
        return node

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Named arrays, one key per field, with a format version."""
        arrays = {f"tree.{name}": getattr(self, name) for name in _FIELDS}
        arrays["tree.version"] = np.array([FORMAT_VERSION])
        arrays["tree.covariance_type"] = np.array(
            [_COVARIANCE_CODES[self.covariance_type]]
        )
        arrays["tree.n_features"] = np.array([self.n_features])
        return arrays

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> "Tree":
        """Inverse of :meth:`to_arrays`, exact."""
        version = int(arrays["tree.version"][0])
        if version != FORMAT_VERSION:
            raise ValueError(
                f"Tree format version {version} is not supported; this version of "
                f"fedgmmtree reads version {FORMAT_VERSION}."
            )
        codes = {code: name for name, code in _COVARIANCE_CODES.items()}
        tree = cls(
            int(arrays["tree.n_features"][0]),
            codes[int(arrays["tree.covariance_type"][0])],
        )
        for name in _FIELDS:
            value = np.asarray(arrays[f"tree.{name}"])
            setattr(tree, name, value.astype(getattr(tree, name).dtype, copy=True))
        return tree

    def render(self, feature_digits: int = 3) -> str:
        """A text drawing of the tree, one node a line."""
        lines = []

        def visit(node, prefix, last):
            elbow = "└── " if last else "├── "
            branch = "" if self.parent[node] < 0 else elbow
            mean = np.array2string(
                self.means[node][:4], precision=feature_digits, separator=", "
            )
            if self.n_features > 4:
                mean = mean[:-1] + ", ...]"
            lines.append(
                f"{prefix}{branch}node {node} [{STATE_NAMES[self.state[node]]}] "
                f"w={self.weight[node]:.3f} n={self.n_samples[node]:.1f} "
                f"mean={mean} ({REASONS[int(self.reason[node])]})"
            )
            children = self.children(node)
            extension = "" if self.parent[node] < 0 else ("    " if last else "│   ")
            for i, child in enumerate(children):
                visit(child, prefix + extension, i == len(children) - 1)

        if self.n_nodes:
            visit(0, "", True)
        return "\n".join(lines)
