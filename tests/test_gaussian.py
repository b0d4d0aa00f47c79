import numpy as np
import pytest
from scipy.stats import multivariate_normal
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

from fedgmmtree._gaussian import (
    gaussian_from_moments,
    gaussian_loglik_from_moments,
    log_gaussian_prob,
    merge_moments,
    precisions_cholesky,
)
from fedgmmtree._stats import mixture_moments


def _random_spd(rng, d):
    a = rng.normal(size=(d, d))
    return a @ a.T + d * np.eye(d)


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_log_gaussian_prob_matches_scipy(covariance_type):
    rng = np.random.default_rng(0)
    d, k = 4, 3
    X = rng.normal(size=(50, d)) * 3
    means = rng.normal(size=(k, d))
    covs = np.stack([_random_spd(rng, d) for _ in range(k)])
    if covariance_type == "diag":
        covs = np.stack([np.diag(c) for c in covs])
    prec = precisions_cholesky(covs, covariance_type)
    got = log_gaussian_prob(X, means, prec, covariance_type)
    for j in range(k):
        cov = covs[j] if covariance_type == "full" else np.diag(covs[j])
        expected = multivariate_normal(means[j], cov).logpdf(X)
        np.testing.assert_allclose(got[:, j], expected, rtol=1e-10)


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_em_step_matches_sklearn_gaussian_mixture(covariance_type):
    rng = np.random.default_rng(1)
    X = np.vstack([rng.normal(0, 1, (80, 3)), rng.normal(4, 2, (70, 3))])
    weights = np.array([0.4, 0.6])
    means = np.array([[0.5, 0.0, 0.0], [3.0, 3.0, 3.0]])
    covs = np.stack([np.eye(3) * 2, np.eye(3) * 3])
    if covariance_type == "diag":
        covs = np.stack([np.diag(c) for c in covs])
    prec = precisions_cholesky(covs, covariance_type)
    precisions = (
        np.einsum("kij,klj->kil", prec, prec) if covariance_type == "full" else prec**2
    )
    gm = GaussianMixture(
        2,
        covariance_type=covariance_type,
        max_iter=1,
        weights_init=weights,
        means_init=means,
        precisions_init=precisions,
        reg_covar=1e-6,
    )
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        gm.fit(X)
    center = X.mean(axis=0) + 10.0
    moments = mixture_moments(X, center, weights, means, covs, covariance_type)
    w, m, c = gaussian_from_moments(
        moments.nk, moments.first, moments.second, center, 1e-6, covariance_type
    )
    np.testing.assert_allclose(w, gm.weights_, rtol=1e-10)
    np.testing.assert_allclose(m, gm.means_, rtol=1e-10)
    np.testing.assert_allclose(c, gm.covariances_, rtol=1e-9)


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_gaussian_loglik_from_moments_equals_sum_of_log_densities(covariance_type):
    rng = np.random.default_rng(2)
    X = rng.normal(5.0, 2.0, size=(60, 3))
    mean = np.array([4.0, 5.5, 6.0])
    cov = _random_spd(rng, 3)
    if covariance_type == "diag":
        cov = np.diag(cov)
    center = np.array([5.0, 5.0, 5.0])
    moments = mixture_moments(
        X, center, np.ones(1), mean[None], cov[None], covariance_type
    )
    got = gaussian_loglik_from_moments(
        moments.n_samples,
        moments.first[0],
        moments.second[0],
        center,
        mean,
        cov,
        covariance_type,
    )
    full = cov if covariance_type == "full" else np.diag(cov)
    expected = multivariate_normal(mean, full).logpdf(X).sum()
    assert got == pytest.approx(expected, rel=1e-11)
    assert moments.loglik == pytest.approx(expected, rel=1e-11)


def test_merge_moments_matches_pooled_samples():
    rng = np.random.default_rng(3)
    a = rng.normal(0, 1, (300, 2))
    b = rng.normal(3, 2, (100, 2))
    means = np.stack([a.mean(0), b.mean(0)])
    covs = np.stack([np.cov(a.T, bias=True), np.cov(b.T, bias=True)])
    mean, cov = merge_moments(np.array([300.0, 100.0]), means, covs, "full")
    pooled = np.vstack([a, b])
    np.testing.assert_allclose(mean, pooled.mean(0), rtol=1e-12)
    np.testing.assert_allclose(cov, np.cov(pooled.T, bias=True), rtol=1e-10)
