"""The growth protocol: what the server sends and a client computes, and the tree.

Both the centralised estimator and the Flower strategy drive the same
:class:`TreeGrower`; the estimator simply plays every client itself. One round:

1. ``grower.instructions(client)`` gives the named arrays a client needs.
2. The client answers with :func:`client_step` on its own data.
3. ``grower.update(replies)`` checks each reply, sums the statistics of each
   node over clients in sorted client order, and runs the M-step, the
   convergence test and the split decision of every node that got statistics.

Round 1 asks each client for the moments of all its data around its own mean;
the server combines them exactly into the root Gaussian (and the optional
standardisation and projection). Every later round is one EM iteration for each
active node. A node whose EM ran on samples or on a subspace of the features, or
whose split is judged by the normality rule, takes one more round once EM has
converged: a step on all its rows and all features, whose statistics decide the
split and give the children's full Gaussians.

With ``refine_leaves`` set, the complete tree's leaves then take up to that many
rounds of flat EM together, as one mixture (a client's E-step runs over all
leaves); each internal node follows as the merge of its children.
"""

import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy.stats import chi2, norm

from ._client import (  # noqa: F401 - re-exported
    HARD,
    HISTOGRAM_EDGES,
    LEAF_ROUND,
    REFINE_ROUND,
    ROOT_ROUND,
    SOFT,
    apply_transform,
    client_step,
)
from ._gaussian import (
    empirical_covariances,
    gaussian_from_moments,
    gaussian_loglik_from_moments,
    n_parameters,
)
from ._stats import (
    Moments,
    check_moments,
    sum_moments,
)
from ._tree import (
    ACTIVE,
    CHILD_TOO_SMALL,
    COLLAPSED,
    CRITERION,
    EMPTY,
    EMPTY_CHILD,
    INTERNAL,
    LEAF,
    MAX_DEPTH,
    MAX_LEAVES,
    SPLIT,
    STOPPED,
    TOO_FEW_POINTS,
    Tree,
)
from .exceptions import DataWarning, FederationError

SPLIT_CRITERIA = ("bic", "aic", "normality")
ROUTINGS = {"hard": HARD, "soft": SOFT}
# candidate covariances of one node above this size a round get a warning
LARGE_MESSAGE_BYTES = 64 * 2**20


def _is_int(value, lowest: int) -> bool:
    """Whether ``value`` is an integer (not a bool) of at least ``lowest``."""
    return (
        isinstance(value, int | np.integer)
        and not isinstance(value, bool)
        and value >= lowest
    )


def _is_real(value, lowest: float) -> bool:
    """Whether ``value`` is a finite real number (not a bool) of at least ``lowest``."""
    return (
        isinstance(value, int | float | np.integer | np.floating)
        and not isinstance(value, bool)
        and bool(np.isfinite(value))
        and value >= lowest
    )


@dataclass(frozen=True)
class GrowthParams:
    """Settings of tree growth, shared by ``GMMTree`` and ``FedGMMTree``."""

    n_children: int = 2
    covariance_type: str = "full"
    split_criterion: str = "bic"
    min_samples_leaf: int = 1
    max_depth: int | None = None
    max_leaves: int | None = None
    reg_covar: float = 1e-6
    tol: float = 1e-3
    max_iter: int = 100
    standardize: bool = False
    n_components_pca: int | None = None
    n_init: int = 3
    init_steps: int | None = None
    refine_leaves: int = 0
    random_state: int | None = None
    sample_size: int | None = None
    subspace_dim: int | float | None = None
    routing: str = "hard"
    significance: float = 1e-4
    min_count: int = 0
    noise_multiplier: float = 0.0
    clip_norm: float | None = None

    @property
    def seed(self) -> int:
        """The seed of every random choice (``random_state``, 0 when None)."""
        return 0 if self.random_state is None else int(self.random_state)

    def validate(self) -> "GrowthParams":
        """Raise a ValueError naming the first setting that is out of range."""
        checks = [
            ("n_children", self.n_children, _is_int(self.n_children, 2), "an int >= 2"),
            (
                "covariance_type",
                self.covariance_type,
                self.covariance_type in ("full", "diag"),
                "one of ('full', 'diag')",
            ),
            (
                "split_criterion",
                self.split_criterion,
                self.split_criterion in SPLIT_CRITERIA,
                f"one of {SPLIT_CRITERIA}",
            ),
            (
                "min_samples_leaf",
                self.min_samples_leaf,
                _is_int(self.min_samples_leaf, 1),
                "an int >= 1",
            ),
            (
                "max_depth",
                self.max_depth,
                self.max_depth is None or _is_int(self.max_depth, 0),
                "None or an int >= 0",
            ),
            (
                "max_leaves",
                self.max_leaves,
                self.max_leaves is None or _is_int(self.max_leaves, 1),
                "None or an int >= 1",
            ),
            ("reg_covar", self.reg_covar, _is_real(self.reg_covar, 0), "a float >= 0"),
            ("tol", self.tol, _is_real(self.tol, 0), "a float >= 0"),
            ("max_iter", self.max_iter, _is_int(self.max_iter, 1), "an int >= 1"),
            ("n_init", self.n_init, _is_int(self.n_init, 1), "an int >= 1"),
            (
                "refine_leaves",
                self.refine_leaves,
                _is_int(self.refine_leaves, 0),
                "an int >= 0",
            ),
            (
                "init_steps",
                self.init_steps,
                self.init_steps is None or _is_int(self.init_steps, 1),
                "None or an int >= 1",
            ),
            (
                "sample_size",
                self.sample_size,
                self.sample_size is None or _is_int(self.sample_size, 1),
                "None or an int >= 1",
            ),
            (
                "subspace_dim",
                self.subspace_dim,
                self.subspace_dim is None
                or _is_int(self.subspace_dim, 1)
                or (_is_real(self.subspace_dim, 0) and 0 < self.subspace_dim <= 1),
                "None, an int >= 1 or a float in (0, 1]",
            ),
            (
                "routing",
                self.routing,
                self.routing in ROUTINGS,
                f"one of {tuple(ROUTINGS)}",
            ),
            (
                "significance",
                self.significance,
                _is_real(self.significance, 0) and 0 < self.significance < 1,
                "a float in (0, 1)",
            ),
            ("min_count", self.min_count, _is_int(self.min_count, 0), "an int >= 0"),
            (
                "noise_multiplier",
                self.noise_multiplier,
                _is_real(self.noise_multiplier, 0),
                "a float >= 0",
            ),
            (
                "clip_norm",
                self.clip_norm,
                (self.clip_norm is None and self.noise_multiplier == 0)
                or (_is_real(self.clip_norm, 0) and self.clip_norm > 0),
                "a float > 0 (and it is required when noise_multiplier > 0)",
            ),
            (
                "n_components_pca",
                self.n_components_pca,
                self.n_components_pca is None or _is_int(self.n_components_pca, 1),
                "None or an int >= 1",
            ),
        ]
        for name, value, ok, expected in checks:
            if not ok:
                raise ValueError(f"{name} must be {expected}, but got {value!r}.")
        return self


@dataclass
class _Candidate:
    """One candidate child mixture of an active node, refined by EM."""

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    logliks: list = field(default_factory=list)
    last: Moments | None = None
    converged: bool = False


@dataclass
class _NodeFit:
    """EM state of one active node on the server: its candidates."""

    candidates: list
    n_iter: int = 0
    chosen: int | None = None
    axis: np.ndarray | None = None
    axis_shift: float = 0.0
    axis_scale: float = 1.0

    @property
    def final(self) -> bool:
        """Whether the next round is the node's full-data, all-feature step."""
        return self.chosen is not None

    def running(self) -> list[int]:
        """Indices of the candidates that take a step in the next round."""
        if self.chosen is not None:
            return [self.chosen]
        return [c for c, cand in enumerate(self.candidates) if not cand.converged]


@dataclass(frozen=True)
class Rejection:
    """A reply (or part of one) that was left out, and why."""

    round: int
    client: int
    node: int
    reason: str


def principal_axis_init(mean, covariance, n_children, covariance_type):
    """Children of a Gaussian spread along its principal axis, from its moments only.

    The children sit at the conditional means of ``n_children`` equal-probability
    slices of the Gaussian along its largest axis, and each keeps the parent's
    covariance minus the spread between them along that axis, so the mixture has
    exactly the parent's mean and covariance.

    Returns
    -------
    weights : ndarray of shape (n_children,)
    means : ndarray of shape (n_children, n_features)
    covariances : ndarray of shape (n_children, n_features, n_features) or \
            (n_children, n_features)
    """
    edges = norm.ppf(np.linspace(0.0, 1.0, n_children + 1))
    # E[z | a < z < b] = (pdf(a) - pdf(b)) / (cdf(b) - cdf(a)), each slice 1/K
    offsets = n_children * (norm.pdf(edges[:-1]) - norm.pdf(edges[1:]))
    between = float(np.mean(offsets**2))
    if covariance_type == "full":
        eigvals, eigvecs = np.linalg.eigh(covariance)
        lam, axis = eigvals[-1], eigvecs[:, -1]
        # fix the sign so that the result does not depend on the LAPACK build
        axis = axis * (1.0 if axis[np.argmax(np.abs(axis))] >= 0 else -1.0)
        spread = np.outer(axis, axis) * lam * between
    else:
        j = int(np.argmax(covariance))
        lam = covariance[j]
        axis = np.zeros_like(mean)
        axis[j] = 1.0
        spread = axis * lam * between
    means = mean + np.outer(offsets, axis) * np.sqrt(lam)
    covariances = np.repeat((covariance - spread)[np.newaxis], n_children, axis=0)
    weights = np.full(n_children, 1.0 / n_children)
    return weights, means, covariances


class TreeGrower:
    """Server-side state of a tree being grown from clients' statistics.

    Parameters
    ----------
    params : GrowthParams
    """

    def __init__(self, params: GrowthParams):
        self.params = params.validate()
        if params.clip_norm is not None and params.noise_multiplier == 0:
            warnings.warn(
                f"clip_norm={params.clip_norm} without noise_multiplier: rows are "
                "clipped (at the root, the rows themselves) and no noise is added, "
                "so the tree differs from GMMTree.fit on the same data. Set "
                "noise_multiplier for privacy, or leave clip_norm out.",
                UserWarning,
                stacklevel=2,
            )
        self.round = 0
        self.tree: Tree | None = None
        self.n_features_in: int | None = None
        self.offset: np.ndarray | None = None
        self.scale: np.ndarray | None = None
        self.components: np.ndarray | None = None
        self.rejections: list[Rejection] = []
        self.history: list[dict] = []
        self._fits: dict[int, _NodeFit] = {}
        self._counts: dict[int, dict[int, float]] = {}
        self._routed: dict[int, tuple[float, float]] = {}
        self.em_logliks: dict[int, list[list[float]]] = {}
        self.leaf_logliks: list[float] = []
        self._leaf_rounds_left = self.params.refine_leaves
        self._revision = 0
        self._revision_key = None
        self._client_revision: dict[int, int] = {}

    # ------------------------------------------------------------------ state

    @property
    def done(self) -> bool:
        """Whether the tree is complete (no active node, leaves refined)."""
        return self._grown and not self.refining

    @property
    def _grown(self) -> bool:
        return self.tree is not None and not np.any(self.tree.state == ACTIVE)

    @property
    def refining(self) -> bool:
        """Whether the next round is a round of flat EM over the leaves.

        A tree with fewer than two leaves that hold mass has nothing to refine.
        """
        return (
            self._grown
            and self._leaf_rounds_left > 0
            and self._refined_leaves().size > 1
        )

    def stop(self) -> None:
        """Turn every active node into a leaf (the round cap was reached)."""
        for node in self.active_nodes():
            self.tree.set_state(node, LEAF, STOPPED)
            self._fits.pop(node, None)
        self._leaf_rounds_left = 0

    def active_nodes(self) -> list[int]:
        """Ids of the nodes refined in the next round."""
        if self.tree is None:
            return []
        return [int(v) for v in np.flatnonzero(self.tree.state == ACTIVE)]

    def assigned_nodes(self, client: int) -> list[int]:
        """Active nodes where ``client`` held data when last asked.

        A node that is new since then is assigned when the client held data in
        its parent. An unknown client is assigned every active node.
        """
        active = self.active_nodes()
        counts = self._counts.get(client)
        if counts is None:
            return active
        assigned = []
        for node in active:
            # the count at the node, or at its nearest ancestor the client was
            # asked about: a client with no rows in a node has none below it
            ancestor = node
            while ancestor not in counts and ancestor > 0:
                ancestor = int(self.tree.parent[ancestor])
            if counts.get(ancestor, 1.0) > 0:
                assigned.append(node)
        return assigned

    def wants(self, client: int) -> bool:
        """Whether ``client`` has any work in the next round."""
        if self.refining:
            return self._counts.get(client, {}).get(0, 1.0) > 0
        return self.tree is None or bool(self.assigned_nodes(client))

    # ----------------------------------------------------------- instructions

    def instructions(self, client: int | None = None) -> dict[str, np.ndarray]:
        """Named arrays that tell ``client`` what to compute this round."""
        params = self.params
        arrays = {
            "round.number": np.array([self.round + 1]),
            "round.seed": np.array([params.seed]),
            "round.routing": np.array([ROUTINGS[params.routing]]),
            "privacy.min_count": np.array([params.min_count]),
            "privacy.noise_multiplier": np.array([params.noise_multiplier]),
            "privacy.clip_norm": np.array([params.clip_norm or 0.0]),
        }
        if self.tree is None:
            arrays["round.kind"] = np.array([ROOT_ROUND])
            arrays["round.covariance_type"] = np.array(
                [0 if self._root_covariance_type() == "full" else 1]
            )
            return arrays
        if self.refining:
            nodes = []
            arrays["round.kind"] = np.array([LEAF_ROUND])
            arrays.update(self._leaf_task())
        else:
            nodes = (
                self.active_nodes() if client is None else self.assigned_nodes(client)
            )
            arrays["round.kind"] = np.array([REFINE_ROUND])
        # the tree and the transform travel only when the client lacks them
        revision = self._tree_revision()
        arrays["tree.revision"] = np.array([revision])
        if client is None or self._client_revision.get(client) != revision:
            arrays.update(self.tree.to_arrays())
            arrays.update(self.transform_arrays())
        arrays["task.nodes"] = np.array(nodes, dtype=np.int64)
        for node in nodes:
            arrays.update(self._node_task(node))
        return arrays

    def _refined_leaves(self) -> np.ndarray:
        """The leaves that hold mass; a leaf no data reached stays as it is."""
        tree = self.tree
        leaves = tree.leaves()
        return leaves[tree.path_weights()[leaves] > 0]

    def _leaf_task(self) -> dict[str, np.ndarray]:
        """The leaves as one flat mixture, and the centre of their statistics."""
        tree = self.tree
        leaves = self._refined_leaves()
        return {
            "leaves.weights": tree.path_weights()[leaves],
            "leaves.means": tree.means[leaves],
            "leaves.covariances": tree.covariances[leaves],
            "leaves.center": tree.means[0],
        }

    def _node_task(self, node) -> dict[str, np.ndarray]:
        fit = self._fits[node]
        running = fit.running()
        task = {
            f"task.{node}.candidates": np.array(running, dtype=np.int64),
            f"task.{node}.final": np.array([int(fit.final)]),
            f"task.{node}.rate": np.array([self._sample_rate(node)]),
        }
        for c in running:
            cand = fit.candidates[c]
            task[f"task.{node}.{c}.weights"] = cand.weights
            task[f"task.{node}.{c}.means"] = cand.means
            task[f"task.{node}.{c}.covariances"] = cand.covariances
        if fit.final and fit.axis is not None:
            task[f"task.{node}.axis"] = fit.axis
            task[f"task.{node}.axis_shift"] = np.array([fit.axis_shift])
            task[f"task.{node}.axis_scale"] = np.array([fit.axis_scale])
        return task

    def _sample_rate(self, node) -> float:
        """Share of a node's rows that each client uses in an EM step."""
        if self.params.sample_size is None or self._fits[node].final:
            return 1.0
        n = self.tree.n_samples[node]
        return float(min(1.0, self.params.sample_size / n)) if n > 0 else 1.0

    @property
    def needs_final_step(self) -> bool:
        """Whether nodes take a full-data, all-feature step after EM."""
        params = self.params
        return (
            params.sample_size is not None
            or params.subspace_dim is not None
            or params.split_criterion == "normality"
        )

    def _root_covariance_type(self) -> str:
        if self.params.n_components_pca is not None:
            return "full"
        return self.params.covariance_type

    def transform_arrays(self) -> dict[str, np.ndarray]:
        arrays = {}
        if self.offset is not None:
            arrays["transform.offset"] = self.offset
            arrays["transform.scale"] = self.scale
        if self.components is not None:
            arrays["transform.components"] = self.components
        return arrays

    # ---------------------------------------------------------------- updates

    def update(self, replies: dict[int, dict[str, np.ndarray]]) -> dict:
        """Fold one round of replies into the tree.

        Parameters
        ----------
        replies : dict of int to dict of str to ndarray
            The arrays each client answered, keyed by a stable client id.

        Returns
        -------
        record : dict
            What happened this round (also appended to ``history``).
        """
        self.round += 1
        # a client that says it keeps the tree gets only what changed; any other
        # client (or one that did not answer) gets the whole tree next time
        self._client_revision = {}
        for client in sorted(replies):
            arrays = replies[client]
            try:
                kept = int(np.asarray(arrays["tree.cached_revision"]).reshape(-1)[0])
            except (KeyError, TypeError, ValueError, IndexError):
                continue
            self._client_revision[client] = kept
        if self.tree is None:
            record = self._update_root(replies)
        elif self.refining:
            record = self._update_leaves(replies)
        else:
            record = self._update_nodes(replies)
        self.history.append(record)
        return record

    def _tree_revision(self) -> int:
        """A number that changes whenever the routing structure changes."""
        tree = self.tree
        key = (tree.n_nodes, tree.state.tobytes(), tree.dims.tobytes())
        if key != self._revision_key:
            self._revision_key = key
            self._revision += 1
        return self._revision

    def _reject(self, client, node, reason):
        self.rejections.append(Rejection(self.round, int(client), int(node), reason))

    def _update_root(self, replies):
        params = self.params
        cov_type = self._root_covariance_type()
        parsed = {}
        for client in sorted(replies):
            try:
                parsed[client] = Moments.from_arrays(replies[client], "root")
            except (KeyError, TypeError, ValueError, IndexError) as exc:
                self._reject(client, -1, f"missing or unreadable field {exc}")
        if self.n_features_in is None and parsed:
            # the feature count most clients agree on; ties go to the lowest id
            widths = [m.center.shape[0] for m in parsed.values()]
            self.n_features_in = max(widths, key=lambda w: (widths.count(w), -w))
        parts = []
        for client, moments in parsed.items():
            n_features = moments.center.shape[0]
            if n_features != self.n_features_in:
                reason = (
                    f"client {client} has {n_features} features, expected "
                    f"{self.n_features_in} like the other clients"
                )
            else:
                reason = check_moments(
                    moments,
                    1,
                    n_features,
                    cov_type,
                    strict=self.params.noise_multiplier == 0,
                )
            if reason is not None:
                self._reject(client, -1, reason)
                continue
            self._counts[client] = {0: moments.n_samples}
            if moments.n_samples > 0:
                parts.append(moments)
        if not parts or sum(m.n_samples for m in parts) <= 0:
            withheld = (
                f"; with min_count={params.min_count}, a client with fewer rows "
                "than that sends none"
                if params.min_count > 0
                else ""
            )
            raise FederationError(
                "No data: every client that answered holds 0 samples "
                f"({len(replies)} replies, {len(self.rejections)} left out)"
                f"{withheld}."
            )
        total = sum_moments(parts)
        if self.params.noise_multiplier > 0:
            total = _repair(total, self._noise_scale(len(parts)))
        n = total.n_samples
        mean = total.center + total.first[0] / n
        total = total.shifted(mean)
        covariance = total.second[0] / n
        if self.params.noise_multiplier > 0:
            # the shift can leave a noisy, repaired scatter a hair below zero
            covariance = _psd_part(covariance)
        self._warn_degenerate_columns(mean, covariance)
        mean, covariance = self._set_transform(mean, covariance)
        if params.covariance_type == "diag" and covariance.ndim == 2:
            covariance = np.diag(covariance)
        n_work = mean.shape[0]
        self._advise_diag(n_work)
        scatter = n * covariance
        covariance = covariance + (
            params.reg_covar * np.eye(n_work)
            if covariance.ndim == 2
            else params.reg_covar
        )
        self.tree = Tree(n_work, params.covariance_type)
        root = self.tree.add_node(-1, 1.0, mean, covariance, n, ACTIVE)
        self._activate(root)
        loglik = gaussian_loglik_from_moments(
            n,
            np.zeros(n_work),
            scatter,
            mean,
            mean,
            covariance,
            params.covariance_type,
        )
        return self._record(loglik / n)

    def _advise_diag(self, n_features: int) -> None:
        """Warn when full covariances make every node's messages large."""
        params = self.params
        if params.covariance_type != "full":
            return
        per_node = params.n_init * params.n_children * n_features**2 * 8
        if per_node <= LARGE_MESSAGE_BYTES:
            return
        warnings.warn(
            f"Full covariances over {n_features} features: each active node "
            f"sends each client {per_node / 2**20:,.0f} MiB of candidate "
            "covariances a round, and gets as much back. covariance_type='diag' "
            f"({per_node / n_features / 2**20:,.2f} MiB), n_components_pca or "
            "a smaller n_init keep messages small.",
            UserWarning,
            stacklevel=3,
        )

    def _warn_degenerate_columns(self, mean, covariance):
        variances = np.diag(covariance) if covariance.ndim == 2 else covariance
        constant = np.flatnonzero(variances <= (1e-7 * np.abs(mean)) ** 2 + 1e-300)
        for column in constant:
            warnings.warn(
                f"Feature {column} is constant (value {mean[column]:.6g}) in the whole "
                "data set; it is kept and its variance is regularised by reg_covar. "
                "Drop the column to silence this warning.",
                DataWarning,
                stacklevel=4,
            )
        if covariance.ndim == 2 and self.params.covariance_type == "full":
            spread = np.sqrt(np.maximum(variances, 1e-300))
            corr = covariance / np.outer(spread, spread)
            for i, j in zip(*np.triu_indices_from(corr, k=1), strict=True):
                if i in constant or j in constant:
                    continue
                if abs(corr[i, j]) > 1.0 - 1e-10:
                    warnings.warn(
                        f"Features {i} and {j} are duplicates (correlation "
                        f"{corr[i, j]:+.10f}); the covariance is singular and only "
                        "reg_covar keeps it invertible. Drop one of them.",
                        DataWarning,
                        stacklevel=4,
                    )

    def _set_transform(self, mean, covariance):
        """Standardise and project from the global moments; return the root."""
        params = self.params
        full = covariance.ndim == 2
        if params.standardize:
            variances = np.diag(covariance) if full else covariance
            scale = np.sqrt(variances)
            scale[scale <= 1e-12 * (1.0 + np.abs(mean))] = 1.0
            self.offset, self.scale = mean, scale
            covariance = (
                covariance / np.outer(scale, scale) if full else covariance / scale**2
            )
            mean = np.zeros_like(mean)
        if params.n_components_pca is not None:
            k = min(params.n_components_pca, mean.shape[0])
            if self.offset is None:
                self.offset, self.scale = mean, np.ones_like(mean)
                mean = np.zeros_like(mean)
            eigvals, eigvecs = np.linalg.eigh(covariance)
            order = np.argsort(eigvals)[::-1][:k]
            components = eigvecs[:, order]
            signs = np.sign(components[np.argmax(np.abs(components), axis=0), range(k)])
            self.components = components * np.where(signs == 0, 1.0, signs)
            covariance = self.components.T @ covariance @ self.components
            mean = np.zeros(k)
        return mean, covariance

    def _min_leaf(self) -> int:
        return max(self.params.min_samples_leaf, self.tree.n_features + 1)

    def _activate(self, node):
        """Make ``node`` active with initial children, or a leaf with its reason."""
        params, tree = self.params, self.tree
        if params.max_depth is not None and tree.depth[node] >= params.max_depth:
            tree.set_state(node, LEAF, MAX_DEPTH)
            return
        if tree.n_samples[node] < params.n_children * self._min_leaf():
            tree.set_state(node, LEAF, TOO_FEW_POINTS)
            return
        tree.set_state(node, ACTIVE)
        tree.dims[node] = self._subspace(node)
        self._fits[node] = _NodeFit(
            [_Candidate(*init) for init in self._initial_candidates(node)]
        )

    def _subspace(self, node) -> np.ndarray:
        """Mask of the features a node's EM uses, drawn from (seed, node)."""
        n_features = self.tree.n_features
        dim = self.params.subspace_dim
        mask = np.ones(n_features, dtype=bool)
        if dim is None:
            return mask
        size = int(np.ceil(dim * n_features)) if isinstance(dim, float) else dim
        size = min(max(size, 1), n_features)
        if size == n_features:
            return mask
        rng = np.random.default_rng([self.params.seed, node, 1])
        mask[:] = False
        mask[np.sort(rng.choice(n_features, size=size, replace=False))] = True
        return mask

    def _restricted(self, node):
        """The node's Gaussian restricted to its subspace."""
        tree = self.tree
        dims = tree.dims[node]
        mean, covariance = tree.means[node][dims], tree.covariances[node]
        covariance = (
            covariance[np.ix_(dims, dims)]
            if covariance.ndim == 2
            else (covariance[dims])
        )
        return mean, covariance

    def _initial_candidates(self, node):
        """The principal-axis split, then seeded draws from the node's Gaussian."""
        params = self.params
        mean, covariance = self._restricted(node)
        inits = [
            principal_axis_init(
                mean, covariance, params.n_children, params.covariance_type
            )
        ]
        for c in range(1, params.n_init):
            rng = np.random.default_rng([params.seed, node, c])
            noise = rng.standard_normal((params.n_children, mean.shape[0]))
            # a Cholesky factor varies smoothly with the covariance (an SVD's signs
            # do not), so the same seed gives the same draws federated and not
            if covariance.ndim == 2:
                means = mean + noise @ np.linalg.cholesky(covariance).T
            else:
                means = mean + noise * np.sqrt(covariance)
            covariances = np.repeat(covariance[np.newaxis], params.n_children, 0)
            weights = np.full(params.n_children, 1.0 / params.n_children)
            inits.append((weights, means, covariances))
        return inits

    def _update_nodes(self, replies):
        tree = self.tree
        per_node = {v: {} for v in self.active_nodes()}
        counts_per_node = {v: 0.0 for v in per_node}
        histograms = {v: [] for v in per_node}
        for client in sorted(replies):
            arrays = replies[client]
            counts = self._counts.setdefault(client, {})
            for node, count, parts, histogram in self._parse_reply(client, arrays):
                for c, moments in parts.items():
                    per_node[node].setdefault(c, []).append(moments)
                counts[node] = count
                counts_per_node[node] += count
                if histogram is not None:
                    histograms[node].append(histogram)
            if "routed.loglik" in arrays:
                try:
                    self._routed[client] = (
                        float(np.asarray(arrays["routed.loglik"]).reshape(-1)[0]),
                        float(np.asarray(arrays["routed.n"]).reshape(-1)[0]),
                    )
                except (KeyError, ValueError, IndexError, TypeError):
                    self._reject(client, -1, "unreadable routed log-likelihood")
        for node in sorted(per_node):
            summed = {
                c: sum_moments(parts)
                for c, parts in sorted(per_node[node].items())
                if any(m.n_samples > 0 for m in parts)
            }
            if not summed or counts_per_node[node] <= 0:
                tree.n_samples[node] = 0.0
                tree.set_state(node, LEAF, EMPTY)
                self._fits.pop(node, None)
                continue
            if self.params.noise_multiplier > 0:
                summed = {
                    c: _repair(m, self._noise_scale(len(per_node[node][c])))
                    for c, m in summed.items()
                }
            hist = np.sum(histograms[node], axis=0) if histograms[node] else None
            if self._fits[node].final:
                self._final_step(node, summed, counts_per_node[node], hist)
            else:
                self._em_step(node, summed, counts_per_node[node])
        # a client without work this round holds data in leaves only, so its
        # last routed log-likelihood still holds
        routed_loglik = sum(self._routed[c][0] for c in sorted(self._routed))
        routed_n = sum(self._routed[c][1] for c in sorted(self._routed))
        mean_loglik = routed_loglik / routed_n if routed_n > 0 else float("nan")
        return self._record(mean_loglik)

    def _update_leaves(self, replies):
        """One M-step of the leaves' flat mixture; internal nodes follow."""
        params, tree = self.params, self.tree
        leaves = self._refined_leaves()
        center = tree.means[0]
        parts = []
        for client in sorted(replies):
            try:
                moments = Moments.from_arrays(replies[client], "leaves")
            except (KeyError, TypeError, ValueError, IndexError) as exc:
                self._reject(client, -1, f"missing or unreadable field {exc}")
                continue
            reason = check_moments(
                moments,
                leaves.size,
                tree.n_features,
                params.covariance_type,
                strict=params.noise_multiplier == 0,
            )
            if reason is None and not np.array_equal(moments.center, center):
                reason = "statistics were not taken around the root's mean"
            if reason is not None:
                self._reject(client, -1, reason)
            elif moments.n_samples > 0:
                parts.append(moments)
        if not parts:
            self._leaf_rounds_left = 0
            return self._leaf_record(float("nan"))
        summed = sum_moments(parts)
        if params.noise_multiplier > 0:
            summed = _repair(summed, self._noise_scale(len(parts)))
        mean_loglik = summed.loglik / summed.n_samples
        self.leaf_logliks.append(mean_loglik)
        self._leaf_rounds_left -= 1
        if np.any(summed.nk < self._min_leaf()):
            # a leaf would lose (almost) all its samples: the tree stays as it is
            self._leaf_rounds_left = 0
            return self._leaf_record(mean_loglik)
        _, means, covariances = gaussian_from_moments(
            summed.nk,
            summed.first,
            summed.second,
            center,
            params.reg_covar,
            params.covariance_type,
        )
        tree.set_leaves(leaves, summed.nk, means, covariances)
        if len(self.leaf_logliks) >= 2 and (
            self.leaf_logliks[-1] - self.leaf_logliks[-2] < params.tol
        ):
            self._leaf_rounds_left = 0
        return self._leaf_record(mean_loglik)

    def _parse_reply(self, client, arrays):
        """Yield ``(node, count, {candidate: moments}, histogram)`` per valid node."""
        tree, params = self.tree, self.params
        try:
            nodes = [int(v) for v in np.asarray(arrays["reply.nodes"]).reshape(-1)]
        except (KeyError, TypeError, ValueError) as exc:
            self._reject(client, -1, f"no readable node list ({exc})")
            return
        for node in nodes:
            if node not in self._fits:
                self._reject(client, node, "statistics for a node that is not active")
                continue
            fit = self._fits[node]
            dims = tree.dims[node]
            n_features = tree.n_features if fit.final else int(dims.sum())
            center = tree.means[node] if fit.final else tree.means[node][dims]
            parts, reason, count, histogram = {}, None, 0.0, None
            try:
                count = float(np.asarray(arrays[f"node.{node}.count"]).reshape(-1)[0])
                if not np.isfinite(count) or count < 0:
                    reason = f"count {count} is not a finite non-negative number"
                for c in fit.running():
                    if reason is not None:
                        break
                    moments = Moments.from_arrays(arrays, f"node.{node}.{c}")
                    reason = check_moments(
                        moments,
                        params.n_children,
                        n_features,
                        params.covariance_type,
                        strict=params.noise_multiplier == 0,
                    )
                    if reason is None and not np.array_equal(moments.center, center):
                        reason = "statistics were not taken around the node's mean"
                    parts[c] = moments
                if reason is None and fit.final and fit.axis is not None:
                    histogram = np.asarray(
                        arrays[f"node.{node}.histogram"], dtype=np.float64
                    )
                    if histogram.shape != (HISTOGRAM_EDGES.size - 1,) or not np.all(
                        np.isfinite(histogram) & (histogram >= 0)
                    ):
                        reason = "histogram has the wrong shape or invalid counts"
            except (KeyError, TypeError, ValueError, IndexError) as exc:
                reason = f"missing or unreadable field {exc}"
            if reason is not None:
                self._reject(client, node, reason)
                continue
            yield node, count, parts, histogram

    def _em_step(self, node, summed, count):
        """One M-step for every running candidate of ``node``."""
        params, tree, fit = self.params, self.tree, self._fits[node]
        if fit.n_iter == 0:
            tree.n_samples[node] = count
            if count < params.n_children * self._min_leaf():
                tree.set_state(node, LEAF, TOO_FEW_POINTS)
                del self._fits[node]
                return
        fit.n_iter += 1
        center = tree.means[node][tree.dims[node]]
        for c, moments in summed.items():
            cand = fit.candidates[c]
            cand.logliks.append(moments.loglik / moments.n_samples)
            cand.last = moments
            cand.weights, cand.means, cand.covariances = gaussian_from_moments(
                moments.nk,
                moments.first,
                moments.second,
                center,
                params.reg_covar,
                params.covariance_type,
            )
            cand.converged = bool(np.any(moments.nk <= 0)) or (
                len(cand.logliks) >= 2
                and cand.logliks[-1] - cand.logliks[-2] < params.tol
            )
        if (
            params.init_steps is not None
            and fit.n_iter == params.init_steps
            and len(fit.candidates) > 1
        ):
            # short runs: only the candidate that leads after ``init_steps`` goes on
            leader = self._leader(fit)
            for c, cand in enumerate(fit.candidates):
                cand.converged = cand.converged or c != leader
        if fit.running() and fit.n_iter < params.max_iter:
            return
        self.em_logliks[node] = [list(c.logliks) for c in fit.candidates]
        best = self._leader(fit)
        if np.any(fit.candidates[best].last.nk <= 0):
            tree.set_state(node, LEAF, EMPTY_CHILD)
            del self._fits[node]
            return
        if not self.needs_final_step:
            self._decide(node, best, fit.candidates[best].last, None)
            return
        fit.chosen = best
        if params.split_criterion == "normality":
            self._set_projection_axis(node, fit)

    @staticmethod
    def _leader(fit) -> int:
        """The candidate with the best last log-likelihood; ties: lowest index."""
        return max(
            range(len(fit.candidates)),
            key=lambda c: (fit.candidates[c].logliks[-1], -c),
        )

    def _set_projection_axis(self, node, fit):
        """The axis of the children's means, and the node's spread along it."""
        cand = fit.candidates[fit.chosen]
        dims = self.tree.dims[node]
        shares = cand.weights / cand.weights.sum()
        centred = cand.means - shares @ cand.means
        scatter = (centred * shares[:, np.newaxis]).T @ centred
        _, eigvecs = np.linalg.eigh(scatter)
        axis = np.zeros(self.tree.n_features)
        axis[dims] = eigvecs[:, -1]
        pooled = cand.last.pooled()
        n = pooled.n_samples
        # moments of the node's rows, centred at the node mean, on the axis
        sub_axis = axis[dims]
        first = float(pooled.first[0] @ sub_axis) / n
        if pooled.second.ndim == 3:
            second = float(sub_axis @ pooled.second[0] @ sub_axis) / n
        else:
            second = float(pooled.second[0] @ sub_axis**2) / n
        fit.axis = axis
        fit.axis_shift = first
        fit.axis_scale = float(np.sqrt(max(second - first**2, 1e-300)))

    def _final_step(self, node, summed, count, histogram):
        """The full-data, all-feature step of a node whose EM has converged."""
        fit = self._fits[node]
        self.tree.n_samples[node] = count
        self._decide(node, fit.chosen, summed[fit.chosen], histogram)

    def _decide(self, node, best, moments, histogram):
        """Keep the split of ``node`` or make it a leaf, and record why.

        ``moments`` are over all features (the EM's subspace when there is no
        final step, which is then all features); their log-likelihood is that of
        the chosen candidate before its last M-step: EM only raises it, so the
        criterion errs on the side of not splitting.
        """
        params, tree = self.params, self.tree
        fit = self._fits.pop(node)
        weights, means, covariances = gaussian_from_moments(
            moments.nk,
            moments.first,
            moments.second,
            tree.means[node],
            params.reg_covar,
            params.covariance_type,
        )

        if np.any(moments.nk <= 0):
            tree.set_state(node, LEAF, EMPTY_CHILD)
            return
        if np.any(moments.nk < self._min_leaf()):
            tree.set_state(node, LEAF, CHILD_TOO_SMALL)
            return
        if self._collapsed(node, means, covariances, moments):
            tree.set_state(node, LEAF, COLLAPSED)
            return

        if params.split_criterion == "normality":
            score = _normality_score(histogram, params.significance)
        else:
            score = self._likelihood_score(node, moments)
        if score <= 0:
            tree.set_state(node, LEAF, CRITERION, score)
            return
        n_terminal = int(np.sum(tree.state != INTERNAL))
        if (
            params.max_leaves is not None
            and n_terminal + params.n_children - 1 > params.max_leaves
        ):
            tree.set_state(node, LEAF, MAX_LEAVES, score)
            return

        tree.set_state(node, INTERNAL, SPLIT, score)
        del fit
        for k in range(params.n_children):
            child = tree.add_node(
                node, weights[k], means[k], covariances[k], moments.nk[k], ACTIVE
            )
            self._activate(child)

    def _likelihood_score(self, node, moments) -> float:
        """BIC (or AIC) of one Gaussian minus that of the split, on the EM's features.

        Positive when the split is better.
        """
        params, tree = self.params, self.tree
        dims = tree.dims[node]
        if moments.first.shape[1] != dims.sum():
            moments = _restrict(moments, dims)
        pooled = moments.pooled()
        n = pooled.n_samples
        _, own_mean, own_cov = gaussian_from_moments(
            pooled.nk,
            pooled.first,
            pooled.second,
            pooled.center,
            params.reg_covar,
            params.covariance_type,
        )
        loglik_one = gaussian_loglik_from_moments(
            n,
            pooled.first[0],
            pooled.second[0],
            pooled.center,
            own_mean[0],
            own_cov[0],
            params.covariance_type,
        )
        n_features = int(dims.sum())
        p_one = n_parameters(1, n_features, params.covariance_type)
        p_split = n_parameters(params.n_children, n_features, params.covariance_type)
        penalty = np.log(n) if params.split_criterion == "bic" else 2.0
        return float(2.0 * (moments.loglik - loglik_one) - (p_split - p_one) * penalty)

    def _collapsed(self, node, means, covariances, moments) -> bool:
        """Whether a child is a point mass where the node's data is spread.

        Its covariance then sits on the ``reg_covar`` floor in every direction in
        which the node's own data varies: the child holds duplicated points, and
        its likelihood grows without bound as ``reg_covar`` shrinks. A direction
        that is constant in the whole node (a constant column) does not count.
        """
        params = self.params
        floor = params.reg_covar
        pooled = moments.pooled()
        shift = pooled.first[0] / pooled.n_samples
        if params.covariance_type == "diag":
            own = np.diag(pooled.second[0] / pooled.n_samples - shift**2)
        else:
            own = pooled.second[0] / pooled.n_samples - np.outer(shift, shift)
        eigvals, eigvecs = np.linalg.eigh(own)
        spread = eigvecs[:, eigvals > 100.0 * floor]
        if spread.shape[1] == 0:
            return False
        children = empirical_covariances(covariances, floor, params.covariance_type)
        for k, child in enumerate(children):
            child = np.diag(child) if child.ndim == 1 else child
            largest = np.linalg.eigvalsh(spread.T @ child @ spread).max()
            if largest <= floor:
                value = np.array2string(means[k][:6], precision=6)
                warnings.warn(
                    f"Node {node}: child {k} collapsed onto duplicated points at "
                    f"{value} (its variance sits on the reg_covar floor); the split "
                    "is refused and the node is a leaf. Remove duplicated rows or "
                    "raise reg_covar.",
                    DataWarning,
                    stacklevel=5,
                )
                return True
        return False

    def _noise_scale(self, n_clients: int) -> float:
        """Standard deviation of the noise on a second-moment sum of ``n_clients``."""
        params = self.params
        return params.noise_multiplier * params.clip_norm**2 * np.sqrt(n_clients)

    def _leaf_record(self, mean_loglik):
        record = self._record(mean_loglik)
        record["leaf_round"] = len(self.leaf_logliks)
        return record

    def _record(self, mean_loglik):
        tree = self.tree
        return {
            "round": self.round,
            "active": int(np.sum(tree.state == ACTIVE)),
            "leaves": int(np.sum(tree.state == LEAF)),
            "nodes": tree.n_nodes,
            "mean_loglik": float(mean_loglik),
        }

    # -------------------------------------------------------------- checkpoint

    def state_arrays(self) -> dict[str, np.ndarray]:
        """Every attribute of the grower as named arrays, exactly.

        The tree, each active node's EM candidates, the clients' counts, the
        round, the transform, the history and the rejections: what a resumed run
        needs to continue bit for bit. See :mod:`fedgmmtree.checkpoint`.
        """
        from .checkpoint import to_state_arrays

        return to_state_arrays(vars(self), "grower")

    @classmethod
    def from_state_arrays(cls, arrays: dict[str, np.ndarray]) -> "TreeGrower":
        """The grower that :meth:`state_arrays` recorded."""
        from .checkpoint import from_state_arrays

        grower = cls.__new__(cls)
        grower.__dict__.update(from_state_arrays(arrays))
        return grower


def _restrict(moments: Moments, dims) -> Moments:
    """Statistics restricted to the features in ``dims``."""
    second = (
        moments.second[:, dims][:, :, dims]
        if moments.second.ndim == 3
        else moments.second[:, dims]
    )
    return Moments(
        moments.nk, moments.first[:, dims], second, moments.loglik, moments.center[dims]
    )


def _psd_part(covariance: np.ndarray) -> np.ndarray:
    """The nearest positive semi-definite matrix (or non-negative variances)."""
    if covariance.ndim == 1:
        return np.maximum(covariance, 0.0)
    eigvals, eigvecs = np.linalg.eigh(0.5 * (covariance + covariance.T))
    return (eigvecs * np.maximum(eigvals, 0.0)) @ eigvecs.T


def _repair(moments: Moments, noise: float = 0.0) -> Moments:
    """Noisy sums made usable: positive counts and a scatter above the noise.

    The scatter ``second / nk - shift shift^T`` of each component is symmetrised
    and its eigenvalues are raised to at least what the noise alone could give
    (``noise``, the standard deviation of the noise on each second-moment sum,
    times ``2 sqrt(d) / nk``: the spectral size of a symmetric Gaussian matrix),
    then the second moment is rebuilt from it. The M-step so gives valid
    covariances, and a child cannot shrink below the noise in any direction and
    win a likelihood rule by it.
    """
    nk = np.maximum(moments.nk, 1.0)
    floor = noise * 2.0 * np.sqrt(moments.first.shape[1]) / nk
    shift = moments.first / nk[:, np.newaxis]
    if moments.second.ndim == 3:
        scatter = moments.second / nk[:, np.newaxis, np.newaxis] - np.einsum(
            "ki,kj->kij", shift, shift
        )
        eigvals, eigvecs = np.linalg.eigh(
            0.5 * (scatter + np.transpose(scatter, (0, 2, 1)))
        )
        scatter = np.einsum(
            "kij,kj,klj->kil",
            eigvecs,
            np.maximum(eigvals, floor[:, np.newaxis]),
            eigvecs,
        )
        second = nk[:, np.newaxis, np.newaxis] * (
            scatter + np.einsum("ki,kj->kij", shift, shift)
        )
    else:
        scatter = np.maximum(
            moments.second / nk[:, np.newaxis] - shift**2, floor[:, np.newaxis] / 2.0
        )
        second = nk[:, np.newaxis] * (scatter + shift**2)
    return Moments(nk, moments.first, second, moments.loglik, moments.center)


def _normality_score(histogram, significance) -> float:
    """Evidence against normality of a binned standardised projection.

    A chi-square goodness-of-fit test of the histogram against the standard
    normal (bins with fewer than 5 expected samples are pooled with their
    neighbours; two degrees of freedom go to the estimated mean and spread).

    Returns
    -------
    score : float
        ``log(significance) - log(p_value)``: positive when normality is
        rejected at ``significance``, i.e. when the node should split.
    """
    counts = np.asarray(histogram, dtype=np.float64)
    n = counts.sum()
    expected = n * np.diff(norm.cdf(HISTOGRAM_EDGES))
    observed_bins, expected_bins = [], []
    acc_obs = acc_exp = 0.0
    for obs, exp in zip(counts, expected, strict=True):
        acc_obs += obs
        acc_exp += exp
        if acc_exp >= 5.0:
            observed_bins.append(acc_obs)
            expected_bins.append(acc_exp)
            acc_obs = acc_exp = 0.0
    if observed_bins:
        observed_bins[-1] += acc_obs
        expected_bins[-1] += acc_exp
    dof = len(observed_bins) - 3
    if dof < 1:
        return -np.inf
    observed_bins, expected_bins = np.array(observed_bins), np.array(expected_bins)
    statistic = float(np.sum((observed_bins - expected_bins) ** 2 / expected_bins))
    log_p = float(chi2.logsf(statistic, dof))
    return float(np.log(significance) - log_p)
