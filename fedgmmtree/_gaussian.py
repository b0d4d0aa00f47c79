"""Gaussian densities, M-step and moment matching: the maths every layer calls.

Pure numpy functions with scikit-learn's names. Covariances are stored as
``(n_components, n_features, n_features)`` arrays for ``"full"`` and as
``(n_components, n_features)`` arrays for ``"diag"``.
"""

import numpy as np
from scipy import linalg
from scipy.special import logsumexp

COVARIANCE_TYPES = ("full", "diag")


# work on rows in blocks of about this many bytes of data, so that temporary
# arrays stay small against the data however many rows there are
BLOCK_BYTES = 2**22


def row_blocks(n_rows: int, n_features: int):
    """Slices that cover ``range(n_rows)`` in blocks of about ``BLOCK_BYTES``."""
    size = max(256, BLOCK_BYTES // (8 * max(int(n_features), 1)))
    for start in range(0, n_rows, size):
        yield slice(start, min(start + size, n_rows))


def check_covariance_type(covariance_type: str) -> str:
    """Return ``covariance_type`` or raise a ValueError naming the valid ones."""
    if covariance_type not in COVARIANCE_TYPES:
        raise ValueError(
            f"covariance_type must be one of {COVARIANCE_TYPES}, "
            f"but got {covariance_type!r}."
        )
    return covariance_type


def precisions_cholesky(covariances, covariance_type):
    """Cholesky factors of the precision matrices.

    Parameters
    ----------
    covariances : ndarray of shape (n_components, n_features, n_features) or \
            (n_components, n_features)
        Covariances, full or diagonal.
    covariance_type : {"full", "diag"}

    Returns
    -------
    precisions_chol : ndarray, same shape as ``covariances``
        Upper triangular ``P`` with ``P @ P.T`` the inverse covariance (full), or
        ``1 / sqrt(variances)`` (diag).
    """
    if covariance_type == "diag":
        if np.any(covariances <= 0.0):
            raise np.linalg.LinAlgError("a diagonal covariance is not positive")
        return 1.0 / np.sqrt(covariances)
    n_components, n_features, _ = covariances.shape
    precisions_chol = np.empty_like(covariances)
    eye = np.eye(n_features)
    for k in range(n_components):
        cov_chol = linalg.cholesky(covariances[k], lower=True)
        precisions_chol[k] = linalg.solve_triangular(cov_chol, eye, lower=True).T
    return precisions_chol


def log_det_cholesky(precisions_chol, covariance_type):
    """Log-determinant of each precision matrix from its Cholesky factor.

    Returns
    -------
    log_det : ndarray of shape (n_components,)
    """
    if covariance_type == "diag":
        return np.sum(np.log(precisions_chol), axis=1)
    diagonals = np.diagonal(precisions_chol, axis1=1, axis2=2)
    return np.sum(np.log(diagonals), axis=1)


def log_gaussian_prob(X, means, precisions_chol, covariance_type):
    """Log-density of every sample under every Gaussian.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    means : ndarray of shape (n_components, n_features)
    precisions_chol : ndarray
        From :func:`precisions_cholesky`.
    covariance_type : {"full", "diag"}

    Returns
    -------
    log_prob : ndarray of shape (n_samples, n_components)
    """
    n_samples, n_features = X.shape
    n_components = means.shape[0]
    log_det = log_det_cholesky(precisions_chol, covariance_type)
    if covariance_type == "diag":
        # sum_j ((x_j - mu_j) * p_j)^2 expanded so that no (n, k, d) array is built
        precisions = precisions_chol**2
        mahalanobis = (
            np.sum(means**2 * precisions, axis=1)
            - 2.0 * X @ (means * precisions).T
            + (X**2) @ precisions.T
        )
        np.maximum(mahalanobis, 0.0, out=mahalanobis)
    else:
        mahalanobis = np.empty((n_samples, n_components))
        for k in range(n_components):
            y = X @ precisions_chol[k]
            y -= means[k] @ precisions_chol[k]
            mahalanobis[:, k] = np.einsum("ij,ij->i", y, y)
    return -0.5 * (n_features * np.log(2 * np.pi) + mahalanobis) + log_det


def e_step(X, weights, means, precisions_chol, covariance_type):
    """Responsibilities and per-sample log-likelihood of a mixture.

    Returns
    -------
    resp : ndarray of shape (n_samples, n_components)
    log_prob_norm : ndarray of shape (n_samples,)
        ``log p(x)`` under the mixture.
    """
    weighted = log_gaussian_prob(X, means, precisions_chol, covariance_type)
    with np.errstate(divide="ignore"):
        weighted += np.log(weights)
    log_prob_norm = logsumexp(weighted, axis=1)
    with np.errstate(under="ignore"):
        resp = np.exp(weighted - log_prob_norm[:, np.newaxis])
    return resp, log_prob_norm


def gaussian_from_moments(nk, first, second, center, reg_covar, covariance_type):
    """M-step: weights, means and covariances from centred moment sums.

    The moments are sums over samples of ``r_k (x - center)`` and
    ``r_k (x - center)(x - center)^T`` (or its diagonal). Centring at a point close
    to the data keeps ``second / nk - d d^T`` free of catastrophic cancellation.

    Parameters
    ----------
    nk : ndarray of shape (n_components,)
    first : ndarray of shape (n_components, n_features)
    second : ndarray of shape (n_components, n_features, n_features) or \
            (n_components, n_features)
    center : ndarray of shape (n_features,)
    reg_covar : float
    covariance_type : {"full", "diag"}

    Returns
    -------
    weights : ndarray of shape (n_components,)
    means : ndarray of shape (n_components, n_features)
    covariances : ndarray, same shape as ``second``
        Empirical covariances plus ``reg_covar`` on the diagonal. A component with
        no mass gets the centre as mean and ``reg_covar`` as covariance; callers
        check ``nk`` before using it.
    """
    n_components, n_features = first.shape
    total = nk.sum()
    weights = nk / total if total > 0 else np.full(n_components, 1.0 / n_components)
    safe_nk = np.where(nk > 0, nk, 1.0)
    shift = first / safe_nk[:, np.newaxis]
    means = center + shift
    if covariance_type == "diag":
        covariances = second / safe_nk[:, np.newaxis] - shift**2
        np.maximum(covariances, 0.0, out=covariances)
        covariances += reg_covar
    else:
        covariances = second / safe_nk[:, np.newaxis, np.newaxis] - np.einsum(
            "ki,kj->kij", shift, shift
        )
        covariances = 0.5 * (covariances + np.transpose(covariances, (0, 2, 1)))
        covariances[:, np.arange(n_features), np.arange(n_features)] += reg_covar
    return weights, means, covariances


def empirical_covariances(covariances, reg_covar, covariance_type):
    """Covariances with the ``reg_covar`` floor taken off again."""
    if covariance_type == "diag":
        return covariances - reg_covar
    n_features = covariances.shape[-1]
    return covariances - reg_covar * np.eye(n_features)


def gaussian_loglik_from_moments(
    n, first, second, center, mean, covariance, covariance_type
):
    """Exact log-likelihood sum of the samples behind moments under one Gaussian.

    ``sum_i log N(x_i | mean, covariance)`` needs only ``n`` and the moments of
    ``x - center``: with ``a = center - mean``, ``sum (x - mean)(x - mean)^T =
    second + first a^T + a first^T + n a a^T``.

    Parameters
    ----------
    n : float
    first : ndarray of shape (n_features,)
    second : ndarray of shape (n_features, n_features) or (n_features,)
    center, mean : ndarray of shape (n_features,)
    covariance : ndarray of shape (n_features, n_features) or (n_features,)
    covariance_type : {"full", "diag"}

    Returns
    -------
    loglik : float
    """
    n_features = center.shape[0]
    offset = center - mean
    prec_chol = precisions_cholesky(covariance[np.newaxis], covariance_type)[0]
    if covariance_type == "diag":
        scatter = second + 2.0 * first * offset + n * offset**2
        quad = np.sum(scatter * prec_chol**2)
        log_det = np.sum(np.log(prec_chol))
    else:
        scatter = (
            second + np.outer(first, offset) + np.outer(offset, first)
        ) + n * np.outer(offset, offset)
        precision = prec_chol @ prec_chol.T
        quad = np.sum(scatter * precision)
        log_det = np.sum(np.log(np.diag(prec_chol)))
    return float(n * (log_det - 0.5 * n_features * np.log(2 * np.pi)) - 0.5 * quad)


def n_parameters(n_components, n_features, covariance_type):
    """Free parameters of a mixture (weights, means, covariances)."""
    if covariance_type == "full":
        cov_params = n_components * n_features * (n_features + 1) / 2.0
    else:
        cov_params = n_components * n_features
    return int(cov_params + n_components * n_features + n_components - 1)


def merge_moments(weights, means, covariances, covariance_type):
    """Moment-matched single Gaussian of a weighted set of Gaussians.

    Parameters
    ----------
    weights : ndarray of shape (n_components,)
        Non-negative, not necessarily normalised.
    means : ndarray of shape (n_components, n_features)
    covariances : ndarray
    covariance_type : {"full", "diag"}

    Returns
    -------
    mean : ndarray of shape (n_features,)
    covariance : ndarray of shape (n_features, n_features) or (n_features,)
    """
    share = weights / weights.sum()
    mean = share @ means
    diff = means - mean
    if covariance_type == "diag":
        covariance = share @ (covariances + diff**2)
    else:
        covariance = np.einsum("k,kij->ij", share, covariances) + np.einsum(
            "k,ki,kj->ij", share, diff, diff
        )
    return mean, covariance


def log_det_covariance(covariance, covariance_type):
    """Log-determinant of one covariance matrix."""
    if covariance_type == "diag":
        return float(np.sum(np.log(covariance)))
    sign, log_det = np.linalg.slogdet(covariance)
    if sign <= 0:
        raise np.linalg.LinAlgError("covariance is not positive definite")
    return float(log_det)


def weighted_log_prob_matrix(X, weights, means, covariances, covariance_type):
    """``log w_k + log N(x | mu_k, Sigma_k)`` for every sample and component."""
    prec_chol = precisions_cholesky(covariances, covariance_type)
    with np.errstate(divide="ignore"):
        return log_gaussian_prob(X, means, prec_chol, covariance_type) + np.log(weights)
