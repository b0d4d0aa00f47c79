"""Clustering scores from contingency counts, so clients never send labels.

Each client counts (cluster, label) pairs on its own data; the server adds the
counts and scores the pooled table with scikit-learn, which gives exactly the
scores of the pooled labels.
"""

import numpy as np
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score


def contingency_pairs(clusters, labels) -> dict[str, np.ndarray]:
    """Counts of each (cluster, label) pair, as named arrays.

    Parameters
    ----------
    clusters : ndarray of shape (n_samples,)
    labels : ndarray of shape (n_samples,)

    Returns
    -------
    pairs : dict with ``"pairs.cluster"``, ``"pairs.label"``, ``"pairs.count"``
    """
    stacked = np.stack([np.asarray(clusters), np.asarray(labels)], axis=1)
    if stacked.shape[0] == 0:
        empty = np.zeros(0, dtype=np.int64)
        return {"pairs.cluster": empty, "pairs.label": empty, "pairs.count": empty}
    unique, counts = np.unique(stacked.astype(np.int64), axis=0, return_counts=True)
    return {
        "pairs.cluster": unique[:, 0],
        "pairs.label": unique[:, 1],
        "pairs.count": counts.astype(np.int64),
    }


def clustering_scores(pairs: dict[tuple[int, int], int]) -> dict[str, float]:
    """ARI and NMI of a pooled contingency table ``{(cluster, label): count}``."""
    keys = sorted(pairs)
    counts = np.array([pairs[k] for k in keys], dtype=np.int64)
    clusters = np.repeat([k[0] for k in keys], counts)
    labels = np.repeat([k[1] for k in keys], counts)
    return {
        "ari": float(adjusted_rand_score(labels, clusters)),
        "nmi": float(normalized_mutual_info_score(labels, clusters)),
    }
