"""Bottom-up merging of leaves into clusters, as a SciPy linkage matrix."""

import numpy as np

from ._gaussian import log_det_covariance, merge_moments


def merge_cost(n_a, cov_a, n_b, cov_b, cov_ab, covariance_type):
    """Log-likelihood lost when two Gaussians are replaced by their moment match.

    For samples that follow their own Gaussians, the log-likelihood is
    ``-n/2 log|Sigma|`` plus terms that do not change under a merge, so the loss is
    ``(n_ab log|Sigma_ab| - n_a log|Sigma_a| - n_b log|Sigma_b|) / 2``, never
    negative because the log-determinant is concave.
    """
    return 0.5 * (
        (n_a + n_b) * log_det_covariance(cov_ab, covariance_type)
        - n_a * log_det_covariance(cov_a, covariance_type)
        - n_b * log_det_covariance(cov_b, covariance_type)
    )


def merge_linkage(counts, means, covariances, covariance_type):
    """Greedy pairwise merging by least loss of log-likelihood.

    Parameters
    ----------
    counts : ndarray of shape (n_leaves,)
        Mass of each leaf, in samples.
    means : ndarray of shape (n_leaves, n_features)
    covariances : ndarray of shape (n_leaves, n_features, n_features) or \
            (n_leaves, n_features)
    covariance_type : {"full", "diag"}

    Returns
    -------
    linkage : ndarray of shape (n_leaves - 1, 4)
        SciPy's format: the two clusters merged (leaves are ``0..n_leaves-1``,
        the cluster made at step ``i`` is ``n_leaves + i``), the loss of
        log-likelihood of that merge, and the number of leaves it holds. Ties are
        broken by the smallest pair of ids, so the result is deterministic.
    """
    n_leaves = counts.shape[0]
    clusters = {
        i: (float(counts[i]), means[i], covariances[i], 1) for i in range(n_leaves)
    }
    costs = {}

    def pair_cost(a, b):
        n_a, mean_a, cov_a, _ = clusters[a]
        n_b, mean_b, cov_b, _ = clusters[b]
        mean, cov = merge_moments(
            np.array([n_a, n_b]),
            np.stack([mean_a, mean_b]),
            np.stack([cov_a, cov_b]),
            covariance_type,
        )
        return merge_cost(n_a, cov_a, n_b, cov_b, cov, covariance_type), mean, cov

    for a in range(n_leaves):
        for b in range(a + 1, n_leaves):
            costs[(a, b)] = pair_cost(a, b)
    linkage = np.zeros((max(n_leaves - 1, 0), 4))
    for step in range(n_leaves - 1):
        a, b = min(costs, key=lambda pair: (costs[pair][0], pair))
        cost, mean, cov = costs[(a, b)]
        new = n_leaves + step
        size = clusters[a][3] + clusters[b][3]
        linkage[step] = (a, b, max(cost, 0.0), size)
        clusters[new] = (clusters[a][0] + clusters[b][0], mean, cov, size)
        del clusters[a], clusters[b]
        costs = {
            pair: c for pair, c in costs.items() if a not in pair and b not in pair
        }
        for other in clusters:
            if other != new:
                costs[(other, new)] = pair_cost(other, new)
    return linkage


def cut_linkage(linkage, n_leaves, n_clusters):
    """Cluster label of every leaf after the first ``n_leaves - n_clusters`` merges.

    Labels are numbered by the smallest leaf they hold, so leaf 0 is in cluster 0.

    Returns
    -------
    labels : ndarray of shape (n_leaves,)
    """
    owner = np.arange(n_leaves)
    members = {i: [i] for i in range(n_leaves)}
    for step in range(max(n_leaves - n_clusters, 0)):
        a, b = int(linkage[step, 0]), int(linkage[step, 1])
        members[n_leaves + step] = members.pop(a) + members.pop(b)
    for cluster in members.values():
        owner[cluster] = min(cluster)
    _, labels = np.unique(owner, return_inverse=True)
    return labels
