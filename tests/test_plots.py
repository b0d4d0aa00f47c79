"""Tests of simulations.plots on centrally fitted trees, including edge cases."""

import numpy as np
import pytest
from matplotlib.image import imread
from threadpoolctl import threadpool_limits

from fedgmmtree import GMMTree
from simulations.datasets import make_blobs
from simulations.plots import leaf_colours, plot_loglik, plot_projection, plot_tree

FAST = {"n_init": 1, "max_iter": 30, "tol": 1e-2, "random_state": 0}


@pytest.fixture(scope="module")
def blobs():
    data = make_blobs(n_samples=240, n_clusters=3, n_features=3, random_state=1)
    return data.X, data.y


@pytest.fixture(autouse=True)
def one_blas_thread():
    # tiny matrices: BLAS threads only contend for the cores
    with threadpool_limits(limits=1):
        yield


@pytest.fixture(scope="module")
def model(blobs):
    with threadpool_limits(limits=1):
        return GMMTree(**FAST).fit(blobs[0])


def assert_png(path, min_width=600):
    image = imread(path)
    assert image.shape[1] >= min_width
    # not a blank canvas
    assert image[..., :3].std() > 0.05


@pytest.mark.parametrize(
    "settings",
    [
        {"n_clusters": 2},
        {"covariance_type": "diag"},
        {"n_components_pca": 2, "standardize": True},
    ],
)
def test_every_plot_draws_a_fitted_tree(blobs, tmp_path, settings):
    X, y = blobs
    model = GMMTree(**FAST, **settings).fit(X)

    assert_png(plot_tree(model, tmp_path / "tree.png"))
    assert_png(plot_projection(model, X, tmp_path / "projection.png", y=y))
    assert_png(plot_loglik(model.history_, tmp_path / "loglik.png", -3.0))


def test_plots_of_a_single_leaf_on_one_feature(tmp_path):
    X = np.random.default_rng(0).normal(size=(50, 1))
    model = GMMTree(**FAST).fit(X)
    assert model.n_leaves_ == 1

    assert_png(plot_tree(model, tmp_path / "tree.png"))
    assert_png(plot_projection(model, X, tmp_path / "projection.png"))


def test_projection_draws_a_seeded_subset_of_many_points(blobs, model, tmp_path):
    X, y = blobs
    path = plot_projection(model, X, tmp_path / "p.png", y=y, max_points=50)
    assert_png(path)


def test_leaf_colours_are_distinct_for_many_leaves():
    for n in (3, 15, 40):
        colours = leaf_colours(n)
        assert colours.shape == (n, 4)
        assert len({tuple(c) for c in colours}) == n
