"""Tests of simulations.partitions: row conservation, promised skew, errors."""

import numpy as np
import pytest
from sklearn.datasets import load_digits

from simulations import partitions
from simulations.partitions import (
    AffineDistortion,
    dirichlet,
    feature_distortions,
    feature_skew,
    iid,
    partition,
    pathological,
    quantity_skew,
)

SCHEME_OPTIONS = [
    ("iid", {}),
    ("dirichlet", {"alpha": 0.5}),
    ("dirichlet", {"alpha": 0.3, "self_balancing": True}),
    ("pathological", {"classes_per_client": 2}),
    ("pathological", {"classes_per_client": 3, "class_assignment": "deterministic"}),
    ("quantity_skew", {"power": 1.5}),
    ("feature_skew", {"strength": 1.0}),
]


@pytest.fixture(scope="module")
def digit_labels():
    return load_digits(return_X_y=True)[1]


@pytest.fixture(scope="module")
def uneven_labels():
    # Unequal class sizes and labels that are not 0..k-1.
    rng = np.random.default_rng(7)
    return rng.choice(
        [3, 5, 11, 12, 40, 41], size=600, p=[0.3, 0.25, 0.2, 0.1, 0.1, 0.05]
    )


def label_shares(labels, parts):
    """Return per-client label shares sorted descending, shape (clients, classes)."""
    classes = np.unique(labels)
    counts = np.array([[np.sum(labels[p] == c) for c in classes] for p in parts])
    shares = counts / counts.sum(axis=1, keepdims=True)
    return -np.sort(-shares, axis=1)


def assert_conserves_rows(parts, n_samples, num_partitions):
    assert len(parts) == num_partitions
    for rows in parts:
        assert rows.dtype == np.int64
        assert rows.size > 0
        assert np.all(np.diff(rows) > 0)
    np.testing.assert_array_equal(np.sort(np.concatenate(parts)), np.arange(n_samples))


@pytest.mark.parametrize(("scheme", "options"), SCHEME_OPTIONS)
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("num_partitions", [4, 10, 25])
def test_partition_every_row_exactly_once(
    uneven_labels, scheme, options, seed, num_partitions
):
    parts = partition(uneven_labels, scheme, num_partitions, seed, **options)

    assert_conserves_rows(parts, len(uneven_labels), num_partitions)


@pytest.mark.parametrize(("scheme", "options"), SCHEME_OPTIONS)
def test_partition_same_seed_same_rows_other_seed_other_rows(
    uneven_labels, scheme, options
):
    first = partition(uneven_labels, scheme, 8, 5, **options)
    again = partition(uneven_labels, scheme, 8, 5, **options)
    other = partition(uneven_labels, scheme, 8, 6, **options)

    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    if options.get("class_assignment") == "deterministic":
        return
    assert any(
        a.shape != b.shape or np.any(a != b) for a, b in zip(first, other, strict=True)
    )


def test_partition_one_client_holds_everything(uneven_labels):
    for scheme, options in SCHEME_OPTIONS:
        if scheme == "pathological":
            options = {"classes_per_client": len(np.unique(uneven_labels))}
        parts = partition(uneven_labels, scheme, 1, 0, **options)

        np.testing.assert_array_equal(parts[0], np.arange(len(uneven_labels)))


def test_iid_near_uniform_label_shares(digit_labels):
    parts = iid(digit_labels, 10, seed=0)

    sizes = [len(p) for p in parts]
    assert max(sizes) - min(sizes) <= 1
    global_shares = np.bincount(digit_labels) / len(digit_labels)
    for rows in parts:
        shares = np.bincount(digit_labels[rows], minlength=10) / len(rows)
        assert np.max(np.abs(shares - global_shares)) < 0.08
    assert label_shares(digit_labels, parts)[:, 0].mean() < 0.2


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dirichlet_small_alpha_one_or_two_labels_dominate(digit_labels, seed):
    parts = dirichlet(digit_labels, 10, seed, alpha=0.05)

    shares = label_shares(digit_labels, parts)
    assert shares[:, 0].mean() > 0.6
    assert shares[:, :2].sum(axis=1).mean() > 0.85


def test_dirichlet_large_alpha_close_to_iid(digit_labels):
    skewed = label_shares(digit_labels, dirichlet(digit_labels, 10, 0, alpha=0.05))
    mild = label_shares(digit_labels, dirichlet(digit_labels, 10, 0, alpha=1000.0))

    assert mild[:, 0].mean() < 0.2 < skewed[:, 0].mean()


@pytest.mark.parametrize("num_partitions", [3, 5, 10, 20])
def test_pathological_each_client_exact_class_count(digit_labels, num_partitions):
    classes_per_client = 4 if num_partitions == 3 else 2

    parts = pathological(
        digit_labels, num_partitions, seed=0, classes_per_client=classes_per_client
    )

    assert_conserves_rows(parts, len(digit_labels), num_partitions)
    for rows in parts:
        assert len(np.unique(digit_labels[rows])) == classes_per_client


def test_quantity_skew_sizes_follow_power_law(digit_labels):
    num_partitions = 10

    parts = quantity_skew(digit_labels, num_partitions, seed=0, power=1.0)

    # Independent reference: share of rank r is r**-1 / H_10, after one row each.
    sizes = np.sort([len(p) for p in parts])[::-1]
    ranks = np.arange(1, num_partitions + 1)
    expected = 1 + (len(digit_labels) - num_partitions) / ranks / np.sum(1 / ranks)
    assert np.all(np.abs(sizes - expected) <= 1)
    assert sizes[0] / sizes[-1] > 5


def test_quantity_skew_power_zero_equal_sizes(digit_labels):
    parts = quantity_skew(digit_labels, 7, seed=3, power=0.0)

    sizes = [len(p) for p in parts]
    assert max(sizes) - min(sizes) <= 1


def test_quantity_skew_sizes_differ_strongly_for_every_seed(digit_labels):
    for seed in range(5):
        sizes = [len(p) for p in quantity_skew(digit_labels, 10, seed)]

        assert max(sizes) > 5 * min(sizes)
        assert np.std(sizes) / np.mean(sizes) > 0.5


def test_feature_skew_rows_iid_and_distortion_applied():
    rng = np.random.default_rng(0)
    X = rng.normal(loc=5.0, scale=[1.0, 10.0, 0.1], size=(400, 3))

    parts, distortions = feature_skew(X, 6, seed=4, strength=0.5)

    for a, b in zip(parts, iid(np.zeros(400), 6, seed=4), strict=True):
        np.testing.assert_array_equal(a, b)
    assert len(distortions) == 6
    for rows, distortion in zip(parts, distortions, strict=True):
        assert np.all(distortion.scale > 0)
        np.testing.assert_allclose(
            distortion.apply(X[rows]), X[rows] * distortion.scale + distortion.shift
        )
    # Shifts are in units of each feature's standard deviation.
    shifts = np.array([d.shift for d in distortions])
    ratio = np.abs(shifts).mean(axis=0) / X.std(axis=0)
    assert ratio.max() / ratio.min() < 5


def test_feature_skew_clients_differ_more_than_iid():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((1000, 4))

    parts, distortions = feature_skew(X, 5, seed=0, strength=1.0)

    plain = np.array([X[rows].mean(axis=0) for rows in parts])
    skewed = np.array(
        [
            d.apply(X[rows]).mean(axis=0)
            for rows, d in zip(parts, distortions, strict=True)
        ]
    )
    assert skewed.std(axis=0).mean() > 5 * plain.std(axis=0).mean()


def test_feature_distortions_zero_strength_identity():
    X = np.random.default_rng(2).standard_normal((20, 3))

    for distortion in feature_distortions(4, 3, seed=0, strength=0.0):
        np.testing.assert_array_equal(distortion.apply(X), X)


def test_feature_distortions_deterministic_for_seed():
    first = feature_distortions(3, 2, seed=9)
    again = feature_distortions(3, 2, seed=9)

    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a.scale, b.scale)
        np.testing.assert_array_equal(a.shift, b.shift)


def test_partition_feature_skew_returns_rows_of_feature_skew():
    X = np.random.default_rng(3).standard_normal((50, 2))
    y = np.zeros(50, dtype=np.int64)

    rows, _ = feature_skew(X, 4, seed=1)

    for a, b in zip(rows, partition(y, "feature_skew", 4, 1), strict=True):
        np.testing.assert_array_equal(a, b)


def test_affine_distortion_wrong_width_raises():
    distortion = AffineDistortion(scale=np.ones(3), shift=np.zeros(3))

    with pytest.raises(ValueError, match=r"shape \(n_samples, 3\)"):
        distortion.apply(np.zeros((4, 2)))


@pytest.mark.parametrize("scheme", partitions.SCHEMES)
def test_partition_more_clients_than_rows_raises(scheme):
    y = np.arange(5) % 2
    options = {"classes_per_client": 1} if scheme == "pathological" else {}

    with pytest.raises(ValueError, match="Cannot split 5 rows over 6 clients"):
        partition(y, scheme, 6, 0, **options)


def test_partition_unknown_scheme_raises():
    with pytest.raises(ValueError, match="Unknown partition scheme 'shards'"):
        partition(np.zeros(10), "shards", 2, 0)


def test_partition_bad_arguments_raise():
    y = np.zeros(10)

    with pytest.raises(ValueError, match="num_partitions must be >= 1"):
        iid(y, 0)
    with pytest.raises(ValueError, match="seed must be an int >= 0"):
        iid(y, 2, seed=-1)
    with pytest.raises(ValueError, match=r"shape \(n_samples,\)"):
        iid(np.zeros((5, 2)), 2)
    with pytest.raises(ValueError, match="accepts the option 'strength' only"):
        partition(y, "feature_skew", 2, 0, alpha=0.1)


def test_pathological_more_classes_per_client_than_classes_raises(digit_labels):
    with pytest.raises(ValueError, match=r"classes_per_client <= 10.*got.*=11"):
        pathological(digit_labels, 5, classes_per_client=11)


def test_pathological_too_few_clients_for_classes_raises(digit_labels):
    with pytest.raises(
        ValueError,
        match=r"classes_per_client=1 and 3 clients over 10 classes leaves 7 classes",
    ):
        pathological(digit_labels, 3, classes_per_client=1)


def test_pathological_class_smaller_than_its_holders_raises():
    y = np.array([0] * 50 + [1] * 50 + [2])

    with pytest.raises(ValueError, match="class 2 has only 1 row.* held by 2 clients"):
        pathological(y, 2, classes_per_client=3)


def test_pathological_flower_mode_dropping_classes_raises(digit_labels):
    # One random class for each of 10 clients misses some of the 10 classes.
    with pytest.raises(ValueError, match=r"rows on no client.*class_assignment='auto'"):
        pathological(
            digit_labels, 10, 0, classes_per_client=1, class_assignment="random"
        )


def test_pathological_unknown_assignment_raises(digit_labels):
    with pytest.raises(ValueError, match="class_assignment must be one of"):
        pathological(digit_labels, 10, class_assignment="cyclic")


def test_dirichlet_invalid_settings_raise(digit_labels):
    with pytest.raises(ValueError, match="alpha > 0"):
        dirichlet(digit_labels, 5, alpha=0.0)
    with pytest.raises(ValueError, match="min_partition_size >= 1"):
        dirichlet(digit_labels, 5, min_partition_size=0)
    with pytest.raises(ValueError, match="needs 2000 rows, but there are 1797"):
        dirichlet(digit_labels, 20, min_partition_size=100)


def test_dirichlet_unreachable_minimum_raises():
    y = np.repeat([0, 1], 40)

    with pytest.raises(ValueError, match=r"alpha=0.001 and 40 clients.*in 11 draws"):
        dirichlet(y, 40, 0, alpha=0.001)


def test_quantity_skew_negative_power_raises():
    with pytest.raises(ValueError, match="power >= 0"):
        quantity_skew(np.zeros(10), 2, power=-1.0)


def test_feature_skew_negative_strength_raises():
    with pytest.raises(ValueError, match="strength >= 0"):
        feature_skew(np.zeros((10, 2)), 2, strength=-0.5)
