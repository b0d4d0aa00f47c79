"""What a client computes in one round of the growth protocol, on its own rows.

Everything here reads the server's instructions (named arrays) and the client's
data, and returns named arrays of statistics: counts, centred moments,
log-likelihood sums and histograms. No row ever leaves this module.
"""

from dataclasses import replace

import numpy as np

from ._gaussian import e_step, log_gaussian_prob, precisions_cholesky, row_blocks
from ._stats import Moments, local_moments, moments_from_resp, zero_moments
from ._tree import Tree

ROOT_ROUND, REFINE_ROUND, LEAF_ROUND = 0, 1, 2
HARD, SOFT = 0, 1
# standardised projections are binned on these edges for the normality test
HISTOGRAM_EDGES = np.concatenate([[-np.inf], np.linspace(-4.0, 4.0, 41), [np.inf]])
# soft routing drops a sample from a branch once its weight there is below this
SOFT_WEIGHT_FLOOR = 1e-12


def _scalar(arrays, key, default):
    value = arrays.get(key)
    return default if value is None else np.asarray(value).reshape(-1)[0]


def apply_transform(X, arrays):
    """Standardise and project ``X`` as the server's transform arrays say."""
    if "transform.offset" in arrays:
        X = (X - arrays["transform.offset"]) / arrays["transform.scale"]
    if "transform.components" in arrays:
        X = X @ arrays["transform.components"]
    return X


def route_soft(X, tree: Tree) -> dict[int, np.ndarray]:
    """Weight of every sample at every node without children (soft routing).

    A sample's weight at a node is the product of the children's
    responsibilities along the path from the root.

    Returns
    -------
    weights : dict of int to ndarray of shape (n_samples,)
    """
    weights: dict[int, np.ndarray] = {}
    for block in row_blocks(X.shape[0], X.shape[1]):
        for node, block_weights in _route_soft_block(X[block], tree).items():
            weights.setdefault(node, np.zeros(X.shape[0]))[block] = block_weights
    if not weights:
        weights[0] = np.ones(X.shape[0])
    return weights


def _route_soft_block(X, tree: Tree) -> dict[int, np.ndarray]:
    weights = {0: np.ones(X.shape[0])}
    prec_chol = tree.precisions_chol()
    for parent in range(tree.n_nodes):
        children = tree.children(parent)
        if children.size == 0 or parent not in weights:
            continue
        at_parent = weights.pop(parent)
        rows = np.flatnonzero(at_parent >= SOFT_WEIGHT_FLOOR)
        resp, _ = e_step(
            X[rows],
            tree.weight[children],
            tree.means[children],
            prec_chol[children],
            tree.covariance_type,
        )
        for k, child in enumerate(children):
            child_weights = np.zeros(X.shape[0])
            child_weights[rows] = at_parent[rows] * resp[:, k]
            weights[int(child)] = child_weights
    return weights


def node_weights(X, tree: Tree, routing: int) -> dict[int, np.ndarray]:
    """Weight of each sample at each node without children (0/1 when hard)."""
    if routing == SOFT:
        return route_soft(X, tree)
    node_of = tree.route(X)
    return {
        int(node): (node_of == node).astype(np.float64) for node in np.unique(node_of)
    }


def _sample_mask(n_rows, rate, seed):
    """Seeded Bernoulli selection of about ``rate * n_rows`` rows."""
    if rate >= 1.0:
        return np.ones(n_rows, dtype=bool)
    return np.random.default_rng(seed).random(n_rows) < rate


def _clip_rows(diff, clip_norm):
    """Rows of ``diff`` scaled down to norm at most ``clip_norm``."""
    norms = np.linalg.norm(diff, axis=1)
    factor = np.minimum(1.0, clip_norm / np.maximum(norms, 1e-300))
    return diff * factor[:, np.newaxis]


# with noise on, each row's log-likelihood is clipped to this many nats either
# way, which bounds a log-likelihood sum's sensitivity
LOGLIK_CLIP = 100.0


def _noisy(moments: Moments, sigma, clip_norm, rng) -> Moments:
    """Gaussian noise scaled to each statistic's sensitivity under clipping."""
    second_noise = rng.normal(0.0, sigma * clip_norm**2, moments.second.shape)
    if moments.second.ndim == 3:
        second_noise = 0.5 * (second_noise + np.transpose(second_noise, (0, 2, 1)))
    return Moments(
        moments.nk + rng.normal(0.0, sigma, moments.nk.shape),
        moments.first + rng.normal(0.0, sigma * clip_norm, moments.first.shape),
        moments.second + second_noise,
        moments.loglik + rng.normal(0.0, sigma * LOGLIK_CLIP),
        moments.center,
    )


class _Privacy:
    """The client's privacy settings from the instructions."""

    def __init__(self, instructions):
        self.min_count = float(_scalar(instructions, "privacy.min_count", 0))
        self.sigma = float(_scalar(instructions, "privacy.noise_multiplier", 0.0))
        self.clip_norm = float(_scalar(instructions, "privacy.clip_norm", 0.0))
        # noise must be unpredictable to the server, so it is not seeded
        self.rng = np.random.default_rng() if self.sigma > 0 else None

    def prepare(self, diff):
        if self.clip_norm > 0:
            return _clip_rows(diff, self.clip_norm)
        return diff

    def release(self, moments: Moments) -> Moments:
        if self.sigma > 0:
            return _noisy(moments, self.sigma, self.clip_norm, self.rng)
        return moments

    def clip_loglik(self, log_prob):
        if self.sigma > 0:
            return np.clip(log_prob, -LOGLIK_CLIP, LOGLIK_CLIP)
        return log_prob

    def count(self, value: float) -> float:
        if self.sigma > 0:
            return value + float(self.rng.normal(0.0, self.sigma))
        return value


def _refine_node(X, w, node, tree, instructions, client_key, privacy, reply):
    """Statistics of one active node for each candidate asked for.

    The node's rows are read in blocks: one block's E-step for every candidate,
    then its moments are added to the candidate's sums.
    """
    params_seed = int(_scalar(instructions, "round.seed", 0))
    server_round = int(_scalar(instructions, "round.number", 0))
    rate = float(_scalar(instructions, f"task.{node}.rate", 1.0))
    final = bool(_scalar(instructions, f"task.{node}.final", 0))
    dims = tree.dims[node]
    rows = np.flatnonzero(w > 0)
    count = float(w[rows].sum())
    if count < privacy.min_count:
        return False
    reply[f"node.{node}.count"] = np.array([max(privacy.count(count), 0.0)])

    if not final:
        keep = _sample_mask(
            rows.size, rate, [params_seed, server_round, node, client_key]
        )
        rows = rows[keep]
    cov_type = tree.covariance_type
    all_dims = bool(np.all(dims))
    # moments are taken on all features in the final step, else on the subspace
    center = tree.means[node] if final else tree.means[node][dims]
    candidates = [
        int(c) for c in np.asarray(instructions[f"task.{node}.candidates"]).ravel()
    ]
    mixtures, sums = {}, {}
    for c in candidates:
        prefix = f"task.{node}.{c}"
        means = instructions[f"{prefix}.means"]
        mixtures[c] = (
            instructions[f"{prefix}.weights"],
            means,
            precisions_cholesky(instructions[f"{prefix}.covariances"], cov_type),
        )
        sums[c] = zero_moments(means.shape[0], center.shape[0], cov_type, center)
    axis = instructions.get(f"task.{node}.axis") if final else None
    histogram = np.zeros(HISTOGRAM_EDGES.size - 1)
    origin = np.zeros_like(center)

    for block in row_blocks(rows.size, X.shape[1]):
        X_block, w_block = X[rows[block]], w[rows[block]]
        X_em = X_block if all_dims else X_block[:, dims]
        diff = privacy.prepare((X_block if final else X_em) - center)
        for c in candidates:
            resp, log_prob = e_step(X_em, *mixtures[c], cov_type)
            resp *= w_block[:, np.newaxis]
            loglik = float(w_block @ privacy.clip_loglik(log_prob))
            part = moments_from_resp(diff, resp, origin, cov_type, loglik)
            sums[c] = sums[c] + replace(part, center=center)
        if axis is not None:
            projected = (X_block - tree.means[node]) @ axis
            z = (projected - _scalar(instructions, f"task.{node}.axis_shift", 0.0)) / (
                _scalar(instructions, f"task.{node}.axis_scale", 1.0)
            )
            bins = np.searchsorted(HISTOGRAM_EDGES, z, side="right") - 1
            np.add.at(histogram, np.clip(bins, 0, histogram.size - 1), w_block)

    for c in candidates:
        reply.update(privacy.release(sums[c]).to_arrays(f"node.{node}.{c}"))
    if axis is not None:
        reply[f"node.{node}.histogram"] = histogram
    return True


def _leaf_statistics(X, instructions, privacy):
    """E-step of the leaves as one flat mixture on all rows, and its statistics."""
    means = instructions["leaves.means"]
    center = instructions["leaves.center"]
    cov_type = "full" if instructions["leaves.covariances"].ndim == 3 else "diag"
    mixture = (
        instructions["leaves.weights"],
        means,
        precisions_cholesky(instructions["leaves.covariances"], cov_type),
    )
    total = zero_moments(means.shape[0], center.shape[0], cov_type, center)
    if X.shape[0] < max(privacy.min_count, 1):
        return total.to_arrays("leaves")
    origin = np.zeros_like(center)
    for block in row_blocks(X.shape[0], X.shape[1]):
        resp, log_prob = e_step(X[block], *mixture, cov_type)
        loglik = float(np.sum(privacy.clip_loglik(log_prob)))
        diff = privacy.prepare(X[block] - center)
        part = moments_from_resp(diff, resp, origin, cov_type, loglik)
        total = total + replace(part, center=center)
    if privacy.min_count > 0:
        # a leaf where this client holds fewer than min_count samples is left out
        keep = (total.nk >= privacy.min_count).astype(np.float64)
        total = replace(
            total,
            nk=total.nk * keep,
            first=total.first * keep[:, np.newaxis],
            second=total.second * keep.reshape((-1,) + (1,) * (total.second.ndim - 1)),
        )
    return privacy.release(total).to_arrays("leaves")


class StaleTreeError(RuntimeError):
    """The server sent no tree and the client holds none of that revision."""


def _cached_tree(instructions, cache):
    """The tree (and transform) of this round, from the message or the cache."""
    revision = int(_scalar(instructions, "tree.revision", -1))
    if "tree.parent" in instructions:
        tree = Tree.from_arrays(instructions)
        transform = {
            k: v for k, v in instructions.items() if k.startswith("transform.")
        }
        if cache is not None:
            cache.clear()
            cache["revision"] = revision
            cache["tree"] = tree
            cache["transform"] = transform
        return tree, transform
    if cache is None or cache.get("revision") != revision:
        raise StaleTreeError(
            f"The server sent no tree and this client holds no tree of revision "
            f"{revision}; the server sends it again with the next attempt."
        )
    return cache["tree"], cache["transform"]


def client_step(
    X, instructions: dict[str, np.ndarray], client_key: int = 0, cache=None
):
    """Everything a client computes in one round, on its own data.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        The client's data, already validated.
    instructions : dict of str to ndarray
        From :meth:`TreeGrower.instructions`.
    client_key : int, default=0
        The client's key, which seeds its share of sampled steps.
    cache : dict, optional
        Where the client keeps the tree between rounds; the server sends the
        tree only when it changed since the client last answered.

    Returns
    -------
    reply : dict of str to ndarray
        Statistics only: counts, centred moments, log-likelihood sums and, for
        the normality rule, histograms of standardised projections.
    """
    X = np.asarray(X, dtype=np.float64)
    privacy = _Privacy(instructions)
    kind = int(_scalar(instructions, "round.kind", ROOT_ROUND))
    if kind == ROOT_ROUND:
        cov_type = (
            "full" if int(instructions["round.covariance_type"][0]) == 0 else "diag"
        )
        if X.shape[0] < max(privacy.min_count, 1):
            return zero_moments(
                1, X.shape[1], cov_type, np.zeros(X.shape[1])
            ).to_arrays("root")
        if privacy.sigma > 0 or privacy.clip_norm > 0:
            center = np.zeros(X.shape[1])
            moments = moments_from_resp(
                privacy.prepare(X), np.ones((X.shape[0], 1)), center, cov_type
            )
            return privacy.release(moments).to_arrays("root")
        return local_moments(X, cov_type).to_arrays("root")

    tree, transform = _cached_tree(instructions, cache)
    X = apply_transform(X, transform)
    if kind == LEAF_ROUND:
        reply = _leaf_statistics(X, instructions, privacy)
        reply["reply.nodes"] = np.zeros(0, dtype=np.int64)
        if cache is not None:
            reply["tree.cached_revision"] = np.array([cache["revision"]])
        return reply
    routing = int(_scalar(instructions, "round.routing", HARD))
    weights = node_weights(X, tree, routing)
    nodes = np.asarray(instructions["task.nodes"], dtype=np.int64).reshape(-1)
    reply = {}
    answered = []
    for node in nodes:
        w = weights.get(int(node), np.zeros(X.shape[0]))
        if _refine_node(
            X, w, int(node), tree, instructions, client_key, privacy, reply
        ):
            answered.append(int(node))
    reply["reply.nodes"] = np.array(answered, dtype=np.int64)
    if cache is not None:
        reply["tree.cached_revision"] = np.array([cache["revision"]])
    routed = routed_loglik(X, weights, tree, privacy.min_count)
    if privacy.sigma > 0:
        routed["routed.loglik"] = routed["routed.loglik"] + privacy.rng.normal(
            0.0, privacy.sigma * LOGLIK_CLIP, 1
        )
        routed["routed.n"] = routed["routed.n"] + privacy.rng.normal(
            0.0, privacy.sigma, 1
        )
    reply.update(routed)
    return reply


def routed_loglik(X, weights, tree, min_count=0.0):
    """Sum of ``w * log(path weight * density)`` at the nodes each sample reaches.

    Nodes where the client holds fewer than ``min_count`` samples are left out.
    """
    total, count = 0.0, 0.0
    path = tree.path_weights()
    prec_chol = tree.precisions_chol()
    for node, w in sorted(weights.items()):
        rows = np.flatnonzero(w > 0)
        if rows.size == 0 or w[rows].sum() < max(min_count, 1e-300):
            continue
        for block in row_blocks(rows.size, X.shape[1]):
            log_prob = log_gaussian_prob(
                X[rows[block]],
                tree.means[[node]],
                prec_chol[[node]],
                tree.covariance_type,
            )[:, 0]
            total += float(w[rows[block]] @ (log_prob + np.log(path[node])))
        count += float(w[rows].sum())
    return {"routed.loglik": np.array([total]), "routed.n": np.array([count])}
