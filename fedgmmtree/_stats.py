"""Sufficient statistics: the only thing a client ever sends about its data.

A :class:`Moments` value holds, for each of ``K`` components, the soft count
``nk``, the first moment and the second moment of ``x - center`` and the sum of
log-likelihoods. Values add, so the statistics of a concatenation are the sum of
the statistics of its parts, whichever centre each part used.
"""

from dataclasses import dataclass

import numpy as np

from ._gaussian import e_step, precisions_cholesky, row_blocks


@dataclass(frozen=True)
class Moments:
    """Centred moment sums of the samples routed to one node.

    Attributes
    ----------
    nk : ndarray of shape (n_components,)
        Sum of responsibilities per component.
    first : ndarray of shape (n_components, n_features)
        ``sum_i r_ik (x_i - center)``.
    second : ndarray of shape (n_components, n_features, n_features) or \
            (n_components, n_features)
        ``sum_i r_ik (x_i - center)(x_i - center)^T``, or its diagonal.
    loglik : float
        ``sum_i log p(x_i)`` under the mixture that gave the responsibilities
        (0 when no mixture was evaluated).
    center : ndarray of shape (n_features,)
        The point the moments are taken around.
    """

    nk: np.ndarray
    first: np.ndarray
    second: np.ndarray
    loglik: float
    center: np.ndarray

    @property
    def n_samples(self) -> float:
        """Total (soft) number of samples."""
        return float(self.nk.sum())

    @property
    def covariance_type(self) -> str:
        """``"full"`` or ``"diag"``, read from the shape of ``second``."""
        return "full" if self.second.ndim == 3 else "diag"

    def shifted(self, center: np.ndarray) -> "Moments":
        """The same statistics taken around another centre (exact algebra)."""
        if np.array_equal(center, self.center):
            return self
        # x - new = (x - old) + a with a = old - new
        offset = self.center - center
        first = self.first + self.nk[:, np.newaxis] * offset
        if self.second.ndim == 3:
            cross = np.einsum("ki,j->kij", self.first, offset)
            second = (
                self.second
                + cross
                + np.transpose(cross, (0, 2, 1))
                + self.nk[:, np.newaxis, np.newaxis] * np.outer(offset, offset)
            )
        else:
            second = (
                self.second
                + 2.0 * self.first * offset
                + self.nk[:, np.newaxis] * offset**2
            )
        return Moments(self.nk, first, second, self.loglik, np.asarray(center))

    def __add__(self, other: "Moments") -> "Moments":
        if other.nk.shape != self.nk.shape or other.second.shape != self.second.shape:
            raise ValueError(
                "Cannot add statistics of different shapes: "
                f"{self.second.shape} and {other.second.shape}."
            )
        other = other.shifted(self.center)
        return Moments(
            self.nk + other.nk,
            self.first + other.first,
            self.second + other.second,
            self.loglik + other.loglik,
            self.center,
        )

    def pooled(self) -> "Moments":
        """The statistics of all components together, as one component."""
        return Moments(
            self.nk.sum(keepdims=True),
            self.first.sum(axis=0, keepdims=True),
            self.second.sum(axis=0, keepdims=True),
            self.loglik,
            self.center,
        )

    def to_arrays(self, prefix: str) -> dict[str, np.ndarray]:
        """Named arrays for the wire, one key per field."""
        return {
            f"{prefix}.nk": self.nk,
            f"{prefix}.first": self.first,
            f"{prefix}.second": self.second,
            f"{prefix}.loglik": np.array([self.loglik]),
            f"{prefix}.center": self.center,
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], prefix: str) -> "Moments":
        """Inverse of :meth:`to_arrays`; raises KeyError for a missing field."""
        return cls(
            np.asarray(arrays[f"{prefix}.nk"], dtype=np.float64),
            np.asarray(arrays[f"{prefix}.first"], dtype=np.float64),
            np.asarray(arrays[f"{prefix}.second"], dtype=np.float64),
            float(np.asarray(arrays[f"{prefix}.loglik"]).reshape(-1)[0]),
            np.asarray(arrays[f"{prefix}.center"], dtype=np.float64),
        )


def zero_moments(n_components, n_features, covariance_type, center) -> Moments:
    """Statistics of no samples."""
    second_shape = (
        (n_components, n_features, n_features)
        if covariance_type == "full"
        else (n_components, n_features)
    )
    return Moments(
        np.zeros(n_components),
        np.zeros((n_components, n_features)),
        np.zeros(second_shape),
        0.0,
        np.asarray(center, dtype=np.float64),
    )


def moments_from_resp(X, resp, center, covariance_type, loglik=0.0) -> Moments:
    """Statistics of ``X`` weighted by responsibilities, around ``center``.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    resp : ndarray of shape (n_samples, n_components)
    center : ndarray of shape (n_features,)
    covariance_type : {"full", "diag"}
    loglik : float, default=0.0

    Returns
    -------
    moments : Moments
    """
    X = np.asarray(X, dtype=np.float64)
    resp = np.asarray(resp, dtype=np.float64)
    n_components, n_features = resp.shape[1], X.shape[1]
    nk = resp.sum(axis=0)
    first = np.zeros((n_components, n_features))
    if covariance_type == "full":
        second = np.zeros((n_components, n_features, n_features))
    else:
        second = np.zeros((n_components, n_features))
    for block in row_blocks(X.shape[0], n_features):
        diff = X[block] - center
        r = resp[block]
        first += r.T @ diff
        if covariance_type == "full":
            # (d * sqrt(r))^T (d * sqrt(r)) lets BLAS use its symmetric update
            roots = np.sqrt(np.maximum(r, 0.0))
            for k in range(n_components):
                scaled = diff * roots[:, [k]]
                second[k] += scaled.T @ scaled
        else:
            diff *= diff
            second += r.T @ diff
    return Moments(nk, first, second, float(loglik), np.asarray(center, np.float64))


def local_moments(X, covariance_type) -> Moments:
    """One-component statistics of ``X`` around its own mean (a client's root)."""
    X = np.asarray(X, dtype=np.float64)
    n_features = X.shape[1]
    if X.shape[0] == 0:
        return zero_moments(1, n_features, covariance_type, np.zeros(n_features))
    center = X.mean(axis=0)
    return moments_from_resp(X, np.ones((X.shape[0], 1)), center, covariance_type)


def mixture_moments(X, center, weights, means, covariances, covariance_type):
    """E-step of a candidate child mixture and the statistics it gives.

    Returns
    -------
    moments : Moments
        Statistics around ``center`` with the mixture's log-likelihood sum.
    """
    n_components, n_features = means.shape
    if X.shape[0] == 0:
        return zero_moments(n_components, n_features, covariance_type, center)
    prec_chol = precisions_cholesky(covariances, covariance_type)
    resp, log_prob_norm = e_step(X, weights, means, prec_chol, covariance_type)
    return moments_from_resp(X, resp, center, covariance_type, log_prob_norm.sum())


def sum_moments(parts) -> Moments:
    """Sum statistics in the given order (callers fix the order for determinism)."""
    parts = list(parts)
    total = parts[0]
    for part in parts[1:]:
        total = total + part
    return total


def check_moments(
    moments: Moments, n_components, n_features, covariance_type, strict=True
):
    """Reason why received statistics are unusable, or ``None`` when they are fine.

    Checks shapes and finiteness and, when ``strict`` (no privacy noise was
    added), non-negative counts and that each second moment is positive
    semi-definite up to rounding.
    """
    expected = {
        "nk": (n_components,),
        "first": (n_components, n_features),
        "second": (n_components, n_features, n_features)
        if covariance_type == "full"
        else (n_components, n_features),
        "center": (n_features,),
    }
    for name, shape in expected.items():
        value = getattr(moments, name)
        if value.shape != shape:
            return f"{name} has shape {value.shape}, expected {shape}"
        if not np.all(np.isfinite(value)):
            return f"{name} holds non-finite values"
    if not np.isfinite(moments.loglik):
        return "loglik is not finite"
    if not strict:
        return None
    if np.any(moments.nk < 0):
        return "negative counts in nk"
    scale = np.abs(moments.second).max(initial=0.0)
    tolerance = 1e-9 * scale + 1e-12
    if covariance_type == "diag":
        if np.any(moments.second < -tolerance):
            return "negative second moments"
    else:
        for k in range(n_components):
            sym = 0.5 * (moments.second[k] + moments.second[k].T)
            if np.linalg.eigvalsh(sym).min(initial=0.0) < -tolerance:
                return f"second moment of component {k} is not positive semi-definite"
    return None
