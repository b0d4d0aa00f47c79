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
active node.
"""

import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy.stats import norm

from ._gaussian import (
    empirical_covariances,
    gaussian_from_moments,
    gaussian_loglik_from_moments,
    n_parameters,
)
from ._stats import (
    Moments,
    check_moments,
    local_moments,
    mixture_moments,
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

ROOT_ROUND, REFINE_ROUND = 0, 1
SPLIT_CRITERIA = ("bic", "aic")


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
    random_state: int | None = None

    def validate(self) -> "GrowthParams":
        """Raise a ValueError naming the first setting that is out of range."""
        checks = [
            ("n_children", self.n_children, self.n_children >= 2, "an int >= 2"),
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
                self.min_samples_leaf >= 1,
                "an int >= 1",
            ),
            (
                "max_depth",
                self.max_depth,
                self.max_depth is None or self.max_depth >= 0,
                "None or an int >= 0",
            ),
            (
                "max_leaves",
                self.max_leaves,
                self.max_leaves is None or self.max_leaves >= 1,
                "None or an int >= 1",
            ),
            ("reg_covar", self.reg_covar, self.reg_covar >= 0, "a float >= 0"),
            ("tol", self.tol, self.tol >= 0, "a float >= 0"),
            ("max_iter", self.max_iter, self.max_iter >= 1, "an int >= 1"),
            ("n_init", self.n_init, self.n_init >= 1, "an int >= 1"),
            (
                "n_components_pca",
                self.n_components_pca,
                self.n_components_pca is None or self.n_components_pca >= 1,
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

    def running(self) -> list[int]:
        """Indices of the candidates that still take EM steps."""
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

    # ------------------------------------------------------------------ state

    @property
    def done(self) -> bool:
        """Whether the tree is complete (no active node left)."""
        return self.tree is not None and not np.any(self.tree.state == ACTIVE)

    def stop(self) -> None:
        """Turn every active node into a leaf (the round cap was reached)."""
        for node in self.active_nodes():
            self.tree.set_state(node, LEAF, STOPPED)
            self._fits.pop(node, None)

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
            known = counts.get(node)
            if known is None:
                known = counts.get(int(self.tree.parent[node]), 1.0)
            if known > 0:
                assigned.append(node)
        return assigned

    def wants(self, client: int) -> bool:
        """Whether ``client`` has any work in the next round."""
        return self.tree is None or bool(self.assigned_nodes(client))

    # ----------------------------------------------------------- instructions

    def instructions(self, client: int | None = None) -> dict[str, np.ndarray]:
        """Named arrays that tell ``client`` what to compute this round."""
        if self.tree is None:
            return {
                "round.kind": np.array([ROOT_ROUND]),
                "round.covariance_type": np.array(
                    [0 if self._root_covariance_type() == "full" else 1]
                ),
            }
        nodes = self.active_nodes() if client is None else self.assigned_nodes(client)
        arrays = {"round.kind": np.array([REFINE_ROUND])}
        arrays.update(self.tree.to_arrays())
        arrays.update(self.transform_arrays())
        arrays["task.nodes"] = np.array(nodes, dtype=np.int64)
        for node in nodes:
            fit = self._fits[node]
            running = fit.running()
            arrays[f"task.{node}.candidates"] = np.array(running, dtype=np.int64)
            for c in running:
                cand = fit.candidates[c]
                arrays[f"task.{node}.{c}.weights"] = cand.weights
                arrays[f"task.{node}.{c}.means"] = cand.means
                arrays[f"task.{node}.{c}.covariances"] = cand.covariances
        return arrays

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
        if self.tree is None:
            record = self._update_root(replies)
        else:
            record = self._update_nodes(replies)
        self.history.append(record)
        return record

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
                reason = check_moments(moments, 1, n_features, cov_type)
            if reason is not None:
                self._reject(client, -1, reason)
                continue
            self._counts[client] = {0: moments.n_samples}
            if moments.n_samples > 0:
                parts.append(moments)
        if not parts or sum(m.n_samples for m in parts) <= 0:
            raise FederationError(
                "No data: every client that answered holds 0 samples "
                f"({len(replies)} replies, {len(self.rejections)} left out)."
            )
        total = sum_moments(parts)
        n = total.n_samples
        mean = total.center + total.first[0] / n
        total = total.shifted(mean)
        covariance = total.second[0] / n
        self._warn_degenerate_columns(mean, covariance)
        mean, covariance = self._set_transform(mean, covariance)
        if params.covariance_type == "diag" and covariance.ndim == 2:
            covariance = np.diag(covariance)
        n_work = mean.shape[0]
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
        self._fits[node] = _NodeFit(
            [_Candidate(*init) for init in self._initial_candidates(node)]
        )

    def _initial_candidates(self, node):
        """The principal-axis split, then seeded draws from the node's Gaussian."""
        params, tree = self.params, self.tree
        mean, covariance = tree.means[node], tree.covariances[node]
        inits = [
            principal_axis_init(
                mean, covariance, params.n_children, params.covariance_type
            )
        ]
        seed = 0 if params.random_state is None else params.random_state
        for c in range(1, params.n_init):
            rng = np.random.default_rng([seed, node, c])
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
        routed_loglik, routed_n = 0.0, 0.0
        for client in sorted(replies):
            arrays = replies[client]
            counts = self._counts.setdefault(client, {})
            for node, parts in self._parse_reply(client, arrays):
                for c, moments in parts.items():
                    per_node[node].setdefault(c, []).append(moments)
                counts[node] = next(iter(parts.values())).n_samples
            if "routed.loglik" in arrays:
                self._routed[client] = (
                    float(np.asarray(arrays["routed.loglik"]).reshape(-1)[0]),
                    float(np.asarray(arrays["routed.n"]).reshape(-1)[0]),
                )
        # a client without work this round holds data in leaves only, so its
        # last routed log-likelihood still holds
        for client in sorted(self._routed):
            routed_loglik += self._routed[client][0]
            routed_n += self._routed[client][1]
        for node in sorted(per_node):
            summed = {
                c: sum_moments(parts)
                for c, parts in sorted(per_node[node].items())
                if any(m.n_samples > 0 for m in parts)
            }
            if not summed:
                tree.n_samples[node] = 0.0
                tree.set_state(node, LEAF, EMPTY)
                self._fits.pop(node, None)
                continue
            self._em_step(node, summed)
        mean_loglik = routed_loglik / routed_n if routed_n > 0 else float("nan")
        return self._record(mean_loglik)

    def _parse_reply(self, client, arrays):
        """Yield ``(node, {candidate: moments})`` for each valid part of a reply."""
        tree, cov_type = self.tree, self.params.covariance_type
        try:
            nodes = [int(v) for v in np.asarray(arrays["reply.nodes"]).reshape(-1)]
        except (KeyError, TypeError, ValueError) as exc:
            self._reject(client, -1, f"no readable node list ({exc})")
            return
        for node in nodes:
            if node not in self._fits:
                self._reject(client, node, "statistics for a node that is not active")
                continue
            parts, reason = {}, None
            for c in self._fits[node].running():
                try:
                    moments = Moments.from_arrays(arrays, f"node.{node}.{c}")
                except (KeyError, TypeError, ValueError, IndexError) as exc:
                    reason = f"missing or unreadable field {exc}"
                    break
                reason = check_moments(
                    moments, self.params.n_children, tree.n_features, cov_type
                )
                if reason is None and not np.array_equal(
                    moments.center, tree.means[node]
                ):
                    reason = "statistics were not taken around the node's mean"
                if reason is not None:
                    break
                parts[c] = moments
            if reason is not None:
                self._reject(client, node, reason)
                continue
            yield node, parts

    def _em_step(self, node, summed):
        """One M-step for every running candidate of ``node``."""
        params, tree, fit = self.params, self.tree, self._fits[node]
        n = next(iter(summed.values())).n_samples
        if fit.n_iter == 0:
            tree.n_samples[node] = n
            if n < params.n_children * self._min_leaf():
                tree.set_state(node, LEAF, TOO_FEW_POINTS)
                del self._fits[node]
                return
        fit.n_iter += 1
        for c, moments in summed.items():
            cand = fit.candidates[c]
            cand.logliks.append(moments.loglik / n)
            cand.last = moments
            cand.weights, cand.means, cand.covariances = gaussian_from_moments(
                moments.nk,
                moments.first,
                moments.second,
                moments.center,
                params.reg_covar,
                params.covariance_type,
            )
            cand.converged = bool(np.any(moments.nk <= 0)) or (
                len(cand.logliks) >= 2
                and cand.logliks[-1] - cand.logliks[-2] < params.tol
            )
        if not fit.running() or fit.n_iter >= params.max_iter:
            self._decide(node)

    def _decide(self, node):
        """Keep the split of ``node`` or make it a leaf, and record why."""
        params, tree = self.params, self.tree
        fit = self._fits.pop(node)
        self.em_logliks[node] = [list(c.logliks) for c in fit.candidates]
        # the candidate with the best final log-likelihood wins; ties: lowest index
        best = max(
            range(len(fit.candidates)),
            key=lambda c: (fit.candidates[c].logliks[-1], -c),
        )
        cand = fit.candidates[best]
        moments = cand.last
        n = moments.n_samples
        n_features = tree.n_features

        if np.any(moments.nk <= 0):
            tree.set_state(node, LEAF, EMPTY_CHILD)
            return
        if np.any(moments.nk < self._min_leaf()):
            tree.set_state(node, LEAF, CHILD_TOO_SMALL)
            return
        if self._collapsed(node, cand, moments):
            tree.set_state(node, LEAF, COLLAPSED)
            return

        pooled = moments.pooled()
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
        # log-likelihood of the parameters before the last M-step: EM only
        # raises it, so the criterion errs on the side of not splitting
        loglik_split = moments.loglik
        p_one = n_parameters(1, n_features, params.covariance_type)
        p_split = n_parameters(params.n_children, n_features, params.covariance_type)
        penalty = np.log(n) if params.split_criterion == "bic" else 2.0
        score = float(2.0 * (loglik_split - loglik_one) - (p_split - p_one) * penalty)
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
        for k in range(params.n_children):
            child = tree.add_node(
                node,
                cand.weights[k],
                cand.means[k],
                cand.covariances[k],
                moments.nk[k],
                ACTIVE,
            )
            self._activate(child)

    def _collapsed(self, node, cand, moments) -> bool:
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
        children = empirical_covariances(
            cand.covariances, floor, params.covariance_type
        )
        for k, child in enumerate(children):
            child = np.diag(child) if child.ndim == 1 else child
            largest = np.linalg.eigvalsh(spread.T @ child @ spread).max()
            if largest <= floor:
                value = np.array2string(cand.means[k][:6], precision=6)
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

    def _record(self, mean_loglik):
        tree = self.tree
        record = {
            "round": self.round,
            "active": int(np.sum(tree.state == ACTIVE)),
            "leaves": int(np.sum(tree.state == LEAF)),
            "nodes": tree.n_nodes,
            "mean_loglik": float(mean_loglik),
        }
        return record


def apply_transform(X, arrays):
    """Standardise and project ``X`` as the server's transform arrays say."""
    if "transform.offset" in arrays:
        X = (X - arrays["transform.offset"]) / arrays["transform.scale"]
    if "transform.components" in arrays:
        X = X @ arrays["transform.components"]
    return X


def client_step(X, instructions: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Everything a client computes in one round, on its own data.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        The client's data, already validated.
    instructions : dict of str to ndarray
        From :meth:`TreeGrower.instructions`.

    Returns
    -------
    reply : dict of str to ndarray
        Statistics only: counts, centred moments and log-likelihood sums.
    """
    kind = int(instructions["round.kind"][0])
    if kind == ROOT_ROUND:
        cov_type = (
            "full" if int(instructions["round.covariance_type"][0]) == 0 else "diag"
        )
        return local_moments(X, cov_type).to_arrays("root")
    tree = Tree.from_arrays(instructions)
    X = apply_transform(np.asarray(X, dtype=np.float64), instructions)
    node_of = tree.route(X)
    nodes = np.asarray(instructions["task.nodes"], dtype=np.int64)
    reply = {"reply.nodes": nodes}
    for node in nodes:
        at_node = X[node_of == node]
        for c in np.asarray(instructions[f"task.{node}.candidates"]).reshape(-1):
            moments = mixture_moments(
                at_node,
                tree.means[node],
                instructions[f"task.{node}.{c}.weights"],
                instructions[f"task.{node}.{c}.means"],
                instructions[f"task.{node}.{c}.covariances"],
                tree.covariance_type,
            )
            reply.update(moments.to_arrays(f"node.{node}.{c}"))
    reply.update(routed_loglik(X, node_of, tree))
    return reply


def routed_loglik(X, node_of, tree):
    """Sum over samples of ``log(path weight * density)`` at the node each ends in."""
    from ._gaussian import log_gaussian_prob

    total = 0.0
    path = tree.path_weights()
    prec_chol = tree.precisions_chol()
    for node in np.unique(node_of):
        at_node = X[node_of == node]
        log_prob = log_gaussian_prob(
            at_node,
            tree.means[[node]],
            prec_chol[[node]],
            tree.covariance_type,
        )
        total += float(log_prob.sum() + at_node.shape[0] * np.log(path[node]))
    return {
        "routed.loglik": np.array([total]),
        "routed.n": np.array([float(X.shape[0])]),
    }
