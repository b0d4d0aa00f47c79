"""Fuzzing: small random data sets, partitions and settings.

A fit either succeeds with finite parameters and leaf weights that sum to 1, or
raises a documented error: ValueError (bad input or settings) or
FederationError (no data, too few replies). Nothing else may escape, and no NaN
may reach the model. Derandomized, so CI sees the same examples every run.
"""

import re
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from threadpoolctl import threadpool_limits

from fedgmmtree import DataWarning, FederationError, GMMTree
from simulations.engine import simulate
from strategies import FedGMMTree

# the errors the package documents; any other ValueError (e.g. NaN reaching a
# Cholesky) is a bug, not a documented outcome
DOCUMENTED = r"must be|must have|Input X|^Data|No data|too few clients answered"

FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(autouse=True, scope="module")
def _one_blas_thread():
    with threadpool_limits(1):
        yield


@st.composite
def data_sets(draw):
    """Blobs with odd scales, offsets, duplicated rows and constant columns."""
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    n_features = draw(st.integers(1, 4))
    sizes = draw(st.lists(st.integers(1, 60), min_size=1, max_size=4))
    spread = 10.0 ** draw(st.integers(-3, 2))
    offset = draw(st.sampled_from([0.0, 1.0, -1e4, 1e6]))
    centers = offset + 12 * spread * rng.normal(size=(len(sizes), n_features))
    blobs = [
        rng.normal(c, spread, (n, n_features))
        for c, n in zip(centers, sizes, strict=True)
    ]
    X = np.vstack(blobs)
    if draw(st.booleans()):
        X = np.round(X / spread) * spread  # many duplicated rows
    if n_features > 1 and draw(st.booleans()):
        X[:, -1] = offset  # a constant column
    return X


growth_settings = st.fixed_dictionaries(
    {
        "n_children": st.integers(2, 3),
        "covariance_type": st.sampled_from(["full", "diag"]),
        "split_criterion": st.sampled_from(["bic", "aic", "normality"]),
        "min_samples_leaf": st.integers(1, 5),
        "max_depth": st.sampled_from([None, 0, 1, 3]),
        "max_leaves": st.sampled_from([None, 2, 5]),
        "reg_covar": st.sampled_from([1e-6, 1e-3]),
        "max_iter": st.integers(1, 15),
        "tol": st.sampled_from([1e-3, 1e-1]),
        "n_init": st.integers(1, 2),
        "standardize": st.booleans(),
        "routing": st.sampled_from(["hard", "soft"]),
        "sample_size": st.sampled_from([None, None, 25]),
        "subspace_dim": st.sampled_from([None, None, 1, 0.5]),
        "random_state": st.integers(0, 3),
    }
)


def _assert_valid_model(model, X):
    assert np.all(np.isfinite(model.means_))
    assert np.all(np.isfinite(model.covariances_))
    assert np.all(np.isfinite(model.weights_)) and np.all(model.weights_ >= 0)
    assert model.weights_.sum() == pytest.approx(1.0, rel=1e-9)
    assert np.all(np.isfinite(model.tree_.n_samples))
    labels = model.predict(X)
    assert labels.shape == (X.shape[0],)
    assert np.all(np.isfinite(model.score_samples(X)))


@FUZZ
@given(X=data_sets(), params=growth_settings)
def test_gmmtree_fit_is_finite_or_raises_a_documented_error(X, params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        try:
            model = GMMTree(**params).fit(X)
        except ValueError as error:
            assert re.search(DOCUMENTED, str(error)), error
            return
    _assert_valid_model(model, X)


@settings(FUZZ, max_examples=25)
@given(
    X=data_sets(),
    params=growth_settings,
    n_clients=st.integers(1, 4),
    split_seed=st.integers(0, 2**16),
    min_count=st.sampled_from([0, 0, 5]),
)
def test_fedgmmtree_fit_is_finite_or_raises_a_documented_error(
    X, params, n_clients, split_seed, min_count
):
    # random assignment of rows: some clients may hold nothing
    owner = np.random.default_rng(split_seed).integers(0, n_clients, X.shape[0])
    parts = [X[owner == c] for c in range(n_clients)]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        try:
            strategy = FedGMMTree(**params, min_count=min_count, max_retries=0)
            model = simulate(parts, strategy, timeout=5.0).model
        except (ValueError, FederationError) as error:
            assert re.search(DOCUMENTED, str(error)), error
            return
    _assert_valid_model(model, X)
    if min_count == 0:
        assert model.tree_.n_samples[0] == X.shape[0]
