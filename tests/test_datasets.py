"""Tests of simulations.datasets: loaders, synthetic truth, readers, preprocessing."""

import gzip
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.cluster import AgglomerativeClustering
from sklearn.metrics import adjusted_rand_score
from sklearn.preprocessing import StandardScaler

from simulations.datasets import (
    Dataset,
    list_gagolewski,
    load_dataset,
    load_gagolewski,
    load_parquet,
    make_blobs,
    make_hierarchical,
    preprocess,
)


def write_gz(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt") as handle:
        handle.write(text)
    return path


@pytest.fixture
def suite(tmp_path):
    """A tiny benchmark suite: battery 'toy' with set 'noisy' (label 0 = noise)."""
    write_gz(
        tmp_path / "toy" / "noisy.data.gz",
        "1.5 2.0 -3\n1.0e+000\t2.5e-001 4\n\n-7 8 9.25\n0 0 0\n",
    )
    write_gz(tmp_path / "toy" / "noisy.labels0.gz", "1\n1\n2\n0\n")
    write_gz(tmp_path / "toy" / "noisy.labels1.gz", "1\n2\n3\n4\n")
    write_gz(tmp_path / "toy" / "other.data.gz", "1\n2\n")
    write_gz(tmp_path / "toy" / "other.labels0.gz", "1\n2\n")
    (tmp_path / "toy" / "noisy.txt").write_text("description")
    return tmp_path


def write_parquet(path: Path, columns: dict) -> Path:
    pq.write_table(pa.table(columns), path)
    return path


@pytest.mark.parametrize(
    ("name", "shape", "n_classes"),
    [
        ("digits", (1797, 64), 10),
        ("wine", (178, 13), 3),
        ("iris", (150, 4), 3),
        ("breast_cancer", (569, 30), 2),
    ],
)
def test_load_dataset_bundled_shapes_and_dtypes(name, shape, n_classes):
    dataset = load_dataset(name)

    assert isinstance(dataset, Dataset)
    assert dataset.name == name
    assert dataset.X.shape == shape
    assert dataset.X.dtype == np.float64
    assert dataset.y.shape == (shape[0],)
    assert dataset.y.dtype == np.int64
    assert len(np.unique(dataset.y)) == n_classes
    assert dataset.y_coarse is None


def test_load_dataset_subset_keeps_rows_in_order():
    full = load_dataset("wine")

    subset = load_dataset("wine", n_samples=50, random_state=3)
    again = load_dataset("wine", n_samples=50, random_state=3)

    assert subset.X.shape == (50, 13)
    np.testing.assert_array_equal(subset.X, again.X)
    rows = [int(np.flatnonzero((full.X == row).all(axis=1))[0]) for row in subset.X]
    assert rows == sorted(rows)
    np.testing.assert_array_equal(subset.y, full.y[rows])


@pytest.mark.parametrize("name", ["blobs", "hierarchical"])
def test_load_dataset_synthetic_shapes_and_dtypes(name):
    dataset = load_dataset(name, n_samples=123, random_state=1, n_features=5)

    assert dataset.X.shape == (123, 5)
    assert dataset.X.dtype == np.float64
    assert dataset.y.dtype == np.int64
    assert np.all(np.isfinite(dataset.X))


def test_load_dataset_synthetic_default_size():
    assert load_dataset("blobs").n_samples == 300


def test_make_blobs_balanced_and_separated():
    dataset = make_blobs(
        301, n_clusters=4, n_features=3, cluster_std=2.0, separation=10.0
    )

    counts = np.bincount(dataset.y)
    assert counts.max() - counts.min() <= 1
    means = np.array([dataset.X[dataset.y == k].mean(axis=0) for k in range(4)])
    gaps = np.linalg.norm(means[:, None] - means[None], axis=-1)[np.triu_indices(4, 1)]
    assert gaps.min() > 0.8 * 10.0 * 2.0
    ward = AgglomerativeClustering(4, linkage="ward").fit_predict(dataset.X)
    assert adjusted_rand_score(dataset.y, ward) == 1.0


def test_make_blobs_seeded_without_global_state():
    # The legacy global generator is read, never seeded, to see that it is unused.
    state = np.random.get_state()[1].copy()  # noqa: NPY002

    first = make_blobs(random_state=5)
    again = make_blobs(random_state=5)
    other = make_blobs(random_state=6)

    np.testing.assert_array_equal(np.random.get_state()[1], state)  # noqa: NPY002
    np.testing.assert_array_equal(first.X, again.X)
    np.testing.assert_array_equal(first.y, again.y)
    assert not np.allclose(first.X, other.X)


def test_make_hierarchical_two_level_truth_consistent():
    dataset = make_hierarchical(450, branching=(3, 3), random_state=2)

    assert dataset.y_coarse is not None
    assert dataset.y_coarse.dtype == np.int64
    np.testing.assert_array_equal(np.unique(dataset.y), np.arange(9))
    np.testing.assert_array_equal(np.unique(dataset.y_coarse), np.arange(3))
    for fine in range(9):
        assert len(np.unique(dataset.y_coarse[dataset.y == fine])) == 1
    assert np.all(np.bincount(dataset.y_coarse) == 150)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_make_hierarchical_defaults_recovered_at_both_levels(seed):
    dataset = load_dataset("hierarchical", random_state=seed)

    fine = AgglomerativeClustering(9, linkage="ward").fit_predict(dataset.X)
    coarse = AgglomerativeClustering(3, linkage="ward").fit_predict(dataset.X)

    assert adjusted_rand_score(dataset.y, fine) == 1.0
    assert adjusted_rand_score(dataset.y_coarse, coarse) == 1.0


def test_make_hierarchical_three_levels_coarse_is_top_level():
    dataset = make_hierarchical(
        400,
        branching=(2, 2, 2),
        n_features=4,
        separations=(200.0, 40.0, 8.0),
        random_state=0,
    )

    np.testing.assert_array_equal(np.unique(dataset.y), np.arange(8))
    np.testing.assert_array_equal(dataset.y_coarse, dataset.y // 4)
    coarse = AgglomerativeClustering(2, linkage="ward").fit_predict(dataset.X)
    assert adjusted_rand_score(dataset.y_coarse, coarse) == 1.0


def test_make_hierarchical_mismatched_levels_raises():
    with pytest.raises(ValueError, match="branching and separations of the same"):
        make_hierarchical(branching=(3, 3), separations=(50.0,))


def test_make_synthetic_bad_options_raise():
    with pytest.raises(ValueError, match=r"n_samples >= 9 .*n_samples=5"):
        make_hierarchical(5)
    with pytest.raises(ValueError, match=r"branching\[1\] to be an int >= 1"):
        make_hierarchical(branching=(3, 0))
    with pytest.raises(ValueError, match="cluster_std to be a number > 0"):
        make_blobs(cluster_std=-1.0)


def test_load_gagolewski_reads_data_and_keeps_noise_label(suite):
    dataset = load_dataset("gagolewski/toy/noisy", data_dir=suite)

    expected = np.array(
        [[1.5, 2.0, -3.0], [1.0, 0.25, 4.0], [-7.0, 8.0, 9.25], [0.0, 0.0, 0.0]]
    )
    np.testing.assert_array_equal(dataset.X, expected)
    assert dataset.X.dtype == np.float64
    np.testing.assert_array_equal(dataset.y, [1, 1, 2, 0])
    assert dataset.y.dtype == np.int64
    assert dataset.name == "gagolewski/toy/noisy"


def test_load_gagolewski_other_labelling_and_path(suite):
    by_path = load_dataset(str(suite / "toy" / "noisy.data.gz"), labels=1)
    relative = load_dataset("toy/other.data.gz", data_dir=suite)

    np.testing.assert_array_equal(by_path.y, [1, 2, 3, 4])
    assert relative.X.shape == (2, 1)


def test_list_gagolewski_names_sets(suite):
    assert list_gagolewski(suite, "toy") == ["noisy", "other"]


def test_list_gagolewski_missing_battery_raises(suite):
    with pytest.raises(FileNotFoundError, match=r"No battery folder.*\['toy'\]"):
        list_gagolewski(suite, "fcps")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("1 2\n3 nan\n", r"bad\.data\.gz, line 2, column 2: non-finite value 'nan'"),
        ("1 2\n3 4\n-inf 1\n", r"bad\.data\.gz, line 3, column 1: non-finite"),
        ("1 2\n3 4\n5\n", r"bad\.data\.gz, line 3: 1 values, but the first row has 2"),
        ("1 2\n3 x\n", r"bad\.data\.gz, line 2, column 2: 'x' is not a number"),
        ("", r"bad\.data\.gz holds no rows"),
    ],
)
def test_load_gagolewski_corrupted_data_raises(tmp_path, data, message):
    path = write_gz(tmp_path / "bad.data.gz", data)
    write_gz(tmp_path / "bad.labels0.gz", "1\n2\n3\n")

    with pytest.raises(ValueError, match=message):
        load_gagolewski(path)


def test_load_gagolewski_label_count_mismatch_raises(tmp_path):
    path = write_gz(tmp_path / "bad.data.gz", "1 2\n3 4\n")
    write_gz(tmp_path / "bad.labels0.gz", "1\n2\n3\n")

    with pytest.raises(
        ValueError, match=r"holds 3 labels, but .*bad\.data\.gz holds 2"
    ):
        load_gagolewski(path)


def test_load_gagolewski_bad_label_raises(tmp_path):
    path = write_gz(tmp_path / "bad.data.gz", "1 2\n3 4\n")
    write_gz(tmp_path / "bad.labels0.gz", "1\n1.5\n")

    with pytest.raises(ValueError, match=r"labels0\.gz, line 2, column 1: '1\.5' is"):
        load_gagolewski(path)


def test_load_gagolewski_not_gzip_raises(tmp_path):
    path = tmp_path / "bad.data.gz"
    path.write_text("1 2\n")
    write_gz(tmp_path / "bad.labels0.gz", "1\n")

    with pytest.raises(ValueError, match="not a readable gzip text file"):
        load_gagolewski(path)


def test_load_gagolewski_missing_files_raise(suite):
    with pytest.raises(FileNotFoundError, match=r"noisy\.labels7\.gz"):
        load_dataset("gagolewski/toy/noisy", data_dir=suite, labels=7)
    with pytest.raises(FileNotFoundError, match=r"absent\.data\.gz"):
        load_dataset("gagolewski/toy/absent", data_dir=suite)


def test_load_gagolewski_name_errors(suite):
    with pytest.raises(ValueError, match="needs data_dir"):
        load_dataset("gagolewski/toy/noisy")
    with pytest.raises(ValueError, match="'gagolewski/<battery>/<dataset>'"):
        load_dataset("gagolewski/noisy", data_dir=suite)


def test_load_parquet_embeddings_and_labels(tmp_path):
    path = write_parquet(
        tmp_path / "wiki.parquet",
        {
            "text": ["a", "b", "c"],
            "embedding": pa.array(
                [[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]], type=pa.list_(pa.float32())
            ),
            "label": [2, 0, 2],
        },
    )

    dataset = load_dataset(f"parquet:{path}")

    assert dataset.X.dtype == np.float64
    expected = np.array([[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]], dtype=np.float32)
    np.testing.assert_array_equal(dataset.X, expected.astype(np.float64))
    np.testing.assert_array_equal(dataset.y, [2, 0, 2])
    assert dataset.y.dtype == np.int64


def test_load_parquet_folder_in_name_order_without_labels(tmp_path):
    write_parquet(tmp_path / "part-1.parquet", {"embedding": [[3.0], [4.0]]})
    write_parquet(tmp_path / "part-0.parquet", {"embedding": [[1.0], [2.0]]})

    dataset = load_dataset("parquet", path=tmp_path)

    np.testing.assert_array_equal(dataset.X[:, 0], [1.0, 2.0, 3.0, 4.0])
    np.testing.assert_array_equal(dataset.y, np.zeros(4, dtype=np.int64))


def test_load_parquet_string_labels_become_codes(tmp_path):
    path = write_parquet(
        tmp_path / "x.parquet",
        {"embedding": [[1.0], [2.0], [3.0]], "topic": ["sport", "art", "sport"]},
    )

    dataset = load_parquet(path, label_column="topic")

    np.testing.assert_array_equal(dataset.y, [1, 0, 1])


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ({"embedding": [[1.0, 2.0], [3.0]]}, r"row 1: embedding of length 1"),
        ({"embedding": [[1.0, 2.0], [3.0, np.nan]]}, r"row 1, column 1: non-finite"),
        ({"embedding": [[1.0], None]}, r"row 1: the embedding is null"),
        ({"vector": [[1.0]]}, r"no column 'embedding'; its columns are \['vector'\]"),
        ({"embedding": [1.0, 2.0]}, r"lists of floats, but its type is double"),
        ({"embedding": [[1.0], [2.0]], "label": [1, None]}, r"row 1: label"),
    ],
)
def test_load_parquet_bad_file_raises(tmp_path, columns, message):
    path = write_parquet(tmp_path / "bad.parquet", columns)

    with pytest.raises(ValueError, match=rf"bad\.parquet.*{message}"):
        load_parquet(path)


def test_load_parquet_missing_path_raises(tmp_path):
    with pytest.raises(ValueError, match="needs the option path="):
        load_dataset("parquet")
    with pytest.raises(FileNotFoundError, match=r"No \*\.parquet files"):
        load_dataset(f"parquet:{tmp_path}")


def test_load_dataset_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match=r"Unknown dataset 'mnist'.*'digits'.*'blobs'"):
        load_dataset("mnist")


def test_load_dataset_unknown_option_raises():
    with pytest.raises(ValueError, match=r"'digits' got unknown options \['k'\]"):
        load_dataset("digits", k=3)
    with pytest.raises(ValueError, match=r"accepts \['cluster_std', 'n_clusters'"):
        load_dataset("blobs", n_cluster=3)


def test_load_dataset_too_many_rows_raises():
    with pytest.raises(ValueError, match="has 150 rows, but n_samples=151"):
        load_dataset("iris", n_samples=151)


def test_dataset_wrong_dtype_raises():
    with pytest.raises(ValueError, match="float64 array of shape"):
        Dataset(X=np.zeros((3, 2), dtype=np.float32), y=np.zeros(3, np.int64), name="x")
    with pytest.raises(ValueError, match=r"y as an int64 array of shape \(3,\)"):
        Dataset(X=np.zeros((3, 2)), y=np.zeros(4, np.int64), name="x")


def test_preprocess_standardize_matches_scikit_learn():
    X = np.random.default_rng(0).normal(3.0, [1.0, 5.0, 0.2], size=(50, 3))

    np.testing.assert_allclose(
        preprocess(X, standardize=True), StandardScaler().fit_transform(X)
    )


def test_preprocess_constant_column_no_nan():
    X = np.c_[np.full(6, 0.1), np.arange(6.0)]

    out = preprocess(X, standardize=True)

    assert np.all(np.isfinite(out))
    np.testing.assert_array_equal(out[:, 0], 0.0)
    np.testing.assert_allclose(out[:, 1].std(), 1.0)


def test_preprocess_pca_components_uncorrelated_and_ordered():
    X = load_dataset("wine").X

    out = preprocess(X, standardize=True, pca=4)

    assert out.shape == (178, 4)
    assert out.dtype == np.float64
    covariance = np.cov(out, rowvar=False)
    np.testing.assert_allclose(covariance, np.diag(np.diag(covariance)), atol=1e-8)
    assert np.all(np.diff(np.diag(covariance)) < 0)


def test_preprocess_leaves_input_untouched():
    X = np.arange(12.0).reshape(4, 3)

    preprocess(X, standardize=True)

    np.testing.assert_array_equal(X, np.arange(12.0).reshape(4, 3))


def test_preprocess_bad_input_raises():
    with pytest.raises(ValueError, match=r"pca between 1 and .* = 3, but got pca=4"):
        preprocess(np.zeros((10, 3)), pca=4)
    with pytest.raises(ValueError, match="expects a finite array"):
        preprocess(np.array([[1.0, np.nan]]))
