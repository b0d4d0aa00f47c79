import numpy as np
import pytest

from fedgmmtree._stats import (
    Moments,
    check_moments,
    local_moments,
    mixture_moments,
    moments_from_resp,
    sum_moments,
)


def _mixture(d):
    weights = np.array([0.3, 0.7])
    means = np.array([np.zeros(d), np.ones(d) * 2])
    covs = np.stack([np.eye(d), np.eye(d) * 2])
    return weights, means, covs


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_moments_of_concatenation_equal_sum_of_parts(covariance_type):
    rng = np.random.default_rng(0)
    X = rng.normal(1.0, 2.0, size=(200, 3))
    weights, means, covs = _mixture(3)
    if covariance_type == "diag":
        covs = np.ones((2, 3)) * np.array([[1.0], [2.0]])
    center = np.array([0.5, 1.0, 1.5])
    whole = mixture_moments(X, center, weights, means, covs, covariance_type)
    parts = [
        mixture_moments(X[s], center, weights, means, covs, covariance_type)
        for s in (slice(0, 50), slice(50, 51), slice(51, 51), slice(51, 200))
    ]
    total = sum_moments(parts)
    for name in ("nk", "first", "second"):
        np.testing.assert_allclose(
            getattr(total, name), getattr(whole, name), rtol=1e-12, atol=1e-9
        )
    assert total.loglik == pytest.approx(whole.loglik, rel=1e-12)


def test_local_moments_with_different_centres_add_exactly():
    rng = np.random.default_rng(1)
    X = rng.normal(0.0, 1.0, size=(300, 2)) + 1e6
    parts = [local_moments(X[:100], "full"), local_moments(X[100:], "full")]
    total = sum_moments(parts).shifted(X.mean(axis=0))
    expected = np.cov(X.T, bias=True) * X.shape[0]
    np.testing.assert_allclose(total.second[0], expected, rtol=1e-9)
    np.testing.assert_allclose(total.first[0], 0.0, atol=1e-6)


def test_moments_accumulate_float32_input_in_float64():
    X = np.array([[9999.0], [0.0]], dtype=np.float32)
    moments = local_moments(X, "full")
    assert moments.second.dtype == np.float64
    assert moments.second[0, 0, 0] / 2 == pytest.approx(9999.0**2 / 4, rel=1e-12)


def test_moments_round_trip_through_named_arrays():
    rng = np.random.default_rng(2)
    m = local_moments(rng.normal(size=(20, 3)), "diag")
    back = Moments.from_arrays(m.to_arrays("node.1.0"), "node.1.0")
    for name in ("nk", "first", "second", "center"):
        assert np.array_equal(getattr(back, name), getattr(m, name))
    assert back.loglik == m.loglik


def test_moments_addition_refuses_different_shapes():
    a = local_moments(np.zeros((3, 2)), "full")
    b = local_moments(np.zeros((3, 3)), "full")
    with pytest.raises(ValueError, match="different shapes"):
        a + b


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda m: Moments(-m.nk, m.first, m.second, m.loglik, m.center), "negative"),
        (
            lambda m: Moments(m.nk, m.first * np.nan, m.second, m.loglik, m.center),
            "non-finite",
        ),
        (
            lambda m: Moments(m.nk, m.first[:, :1], m.second, m.loglik, m.center),
            "shape",
        ),
        (
            lambda m: Moments(m.nk, m.first, -m.second, m.loglik, m.center),
            "positive semi-definite",
        ),
        (
            lambda m: Moments(m.nk, m.first, m.second, float("inf"), m.center),
            "loglik",
        ),
    ],
)
def test_check_moments_names_what_is_wrong(mutate, reason):
    rng = np.random.default_rng(3)
    good = mixture_moments(rng.normal(size=(30, 2)), np.zeros(2), *_mixture(2), "full")
    assert check_moments(good, 2, 2, "full") is None
    assert reason in check_moments(mutate(good), 2, 2, "full")


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_moments_read_in_row_blocks_equal_the_textbook_sums(
    covariance_type, monkeypatch
):
    import fedgmmtree._gaussian as gaussian

    rng = np.random.default_rng(3)
    X = rng.normal(5.0, 2.0, size=(2_000, 6))
    resp = rng.dirichlet(np.ones(3), size=2_000)
    center = X.mean(axis=0)
    diff = X - center
    monkeypatch.setattr(gaussian, "BLOCK_BYTES", 1)  # 256-row blocks
    moments = moments_from_resp(X, resp, center, covariance_type)
    np.testing.assert_allclose(moments.first, resp.T @ diff, rtol=1e-12)
    if covariance_type == "full":
        expected = np.einsum("nk,ni,nj->kij", resp, diff, diff)
    else:
        expected = resp.T @ diff**2
    np.testing.assert_allclose(moments.second, expected, rtol=1e-10)
