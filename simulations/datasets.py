"""Data sets for simulations and benchmarks, loaded as float64 arrays with labels.

Simulation layer: numpy, scikit-learn and pyarrow only, no Flower.

Names that :func:`load_dataset` understands:

- ``"digits"``, ``"wine"``, ``"iris"``, ``"breast_cancer"``: scikit-learn's
  bundled sets, offline.
- ``"blobs"``: well separated Gaussian clusters (:func:`make_blobs`).
- ``"hierarchical"``: clusters of clusters with two-level truth
  (:func:`make_hierarchical`).
- ``"gagolewski/<battery>/<dataset>"``: a set of Gagolewski's clustering
  benchmark suite under ``data_dir`` (the folder that holds the battery folders
  such as ``fcps/``), or a path ending in ``.data.gz``. ``NAME.data.gz`` holds
  whitespace separated floats, one row per line; ``NAME.labels0.gz`` one
  integer label per line. Labels are kept as given: where a set marks noise,
  its label is 0 and the clusters are 1, 2, ...
- ``"parquet:<path>"`` (or ``"parquet"`` with the option ``path``): a Parquet
  file, or a folder of ``*.parquet`` files read
  in name order, with an ``embedding`` column (a list of floats per row) and an
  optional ``label`` column (y is all zeros without one), as
  ``download_data.py`` writes them.
"""

from __future__ import annotations

import gzip
import inspect
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from math import prod
from numbers import Integral, Real
from pathlib import Path
from typing import Any

import numpy as np
from scipy.spatial.distance import pdist

__all__ = [
    "DATASET_NAMES",
    "Dataset",
    "list_gagolewski",
    "load_dataset",
    "load_gagolewski",
    "load_parquet",
    "make_blobs",
    "make_hierarchical",
    "preprocess",
]

_SKLEARN_LOADERS = {
    "digits": "load_digits",
    "wine": "load_wine",
    "iris": "load_iris",
    "breast_cancer": "load_breast_cancer",
}

DATASET_NAMES = (
    *_SKLEARN_LOADERS,
    "blobs",
    "hierarchical",
    "gagolewski/<battery>/<dataset>",
    "<path>.data.gz",
    "parquet:<file or folder>",
    "parquet (with the option path=<file or folder>)",
)

_DEFAULT_SYNTHETIC_SAMPLES = 300


@dataclass(frozen=True, eq=False)
class Dataset:
    """A data set with ground-truth labels.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        The data, float64.
    y : ndarray of shape (n_samples,)
        Ground-truth labels, int64 (fine labels for a two-level truth).
    name : str
        Name it was loaded by.
    y_coarse : ndarray of shape (n_samples,) or None, default=None
        Coarse labels, int64, for a two-level truth; each fine label lies in
        exactly one coarse label.
    """

    X: np.ndarray
    y: np.ndarray
    name: str
    y_coarse: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.X.ndim != 2 or self.X.dtype != np.float64:
            raise ValueError(
                f"Dataset {self.name!r} expects X as a float64 array of shape "
                f"(n_samples, n_features), but got {self.X.dtype} of shape "
                f"{self.X.shape}."
            )
        for field, labels in (("y", self.y), ("y_coarse", self.y_coarse)):
            if labels is None:
                continue
            if labels.dtype != np.int64 or labels.shape != (self.X.shape[0],):
                raise ValueError(
                    f"Dataset {self.name!r} expects {field} as an int64 array of "
                    f"shape ({self.X.shape[0]},), but got {labels.dtype} of shape "
                    f"{labels.shape}."
                )

    @property
    def n_samples(self) -> int:
        """Number of rows."""
        return int(self.X.shape[0])

    @property
    def n_features(self) -> int:
        """Number of columns."""
        return int(self.X.shape[1])


def load_dataset(
    name: str,
    *,
    data_dir: str | Path | None = None,
    n_samples: int | None = None,
    random_state: int = 0,
    **options: Any,
) -> Dataset:
    """Load a data set by name.

    Parameters
    ----------
    name : str
        One of the names in the module docstring (``DATASET_NAMES``).
    data_dir : str or Path, default=None
        Folder holding the Gagolewski battery folders; needed for
        ``"gagolewski/..."`` names. Relative paths in ``"<path>.data.gz"`` and
        ``"parquet:<path>"`` names are taken relative to it when given.
    n_samples : int, default=None
        For ``"blobs"`` and ``"hierarchical"``: how many rows to draw (300 if
        None). For every other set: a seeded random subset of this many rows,
        in their original order (all rows if None).
    random_state : int, default=0
        Seed of the synthetic draws and of the subset.
    **options
        Options of the loader: those of :func:`make_blobs`,
        :func:`make_hierarchical`, :func:`load_gagolewski` (``labels``) or
        :func:`load_parquet` (``path``, ``embedding_column``,
        ``label_column``). The scikit-learn sets take none.

    Returns
    -------
    dataset : Dataset
        ``X`` float64 of shape (n_samples, n_features), ``y`` int64.

    Raises
    ------
    ValueError
        For an unknown name or option, or a file that cannot be read as data.
    """
    if name in ("blobs", "hierarchical"):
        maker = make_blobs if name == "blobs" else make_hierarchical
        _check_options(name, maker, options, exclude={"n_samples", "random_state"})
        count = _DEFAULT_SYNTHETIC_SAMPLES if n_samples is None else n_samples
        return maker(count, random_state=random_state, **options)

    loader = _real_loader(name, data_dir)
    _check_options(name, loader, options)
    dataset = replace(loader(**options), name=name)
    return _subset(dataset, n_samples, random_state)


def make_blobs(
    n_samples: int = _DEFAULT_SYNTHETIC_SAMPLES,
    *,
    n_clusters: int = 3,
    n_features: int = 2,
    cluster_std: float = 1.0,
    separation: float = 10.0,
    random_state: int = 0,
) -> Dataset:
    """Draw well separated spherical Gaussian clusters.

    Centres are spread by farthest-point sampling and scaled so that the closest
    two lie ``separation * cluster_std`` apart; cluster sizes differ by at most
    one and rows come shuffled.

    Parameters
    ----------
    n_samples : int, default=300
        Number of rows, at least ``n_clusters``.
    n_clusters : int, default=3
        Number of clusters.
    n_features : int, default=2
        Dimension.
    cluster_std : float, default=1.0
        Standard deviation of every cluster along every axis.
    separation : float, default=10.0
        Least distance between two centres, in units of ``cluster_std``.
    random_state : int, default=0
        Seed of a ``numpy.random.Generator``.

    Returns
    -------
    dataset : Dataset
        ``y`` in ``0 .. n_clusters - 1``; no ``y_coarse``.
    """
    rng = np.random.default_rng(random_state)
    _check_positive_ints(n_clusters=n_clusters, n_features=n_features)
    _check_positive_floats(cluster_std=cluster_std, separation=separation)
    _check_sample_count(n_samples, n_clusters)

    centres = _spread_points(rng, n_clusters, n_features, separation * cluster_std)
    X, y = _draw_clusters(rng, centres, n_samples, cluster_std)
    return Dataset(X=X, y=y, name="blobs")


def make_hierarchical(
    n_samples: int = _DEFAULT_SYNTHETIC_SAMPLES,
    *,
    branching: Sequence[int] = (3, 3),
    n_features: int = 2,
    cluster_std: float = 1.0,
    separations: Sequence[float] = (60.0, 10.0),
    random_state: int = 0,
) -> Dataset:
    """Draw clusters of clusters: a tree of Gaussian centres with two-level truth.

    The root has ``branching[0]`` children, each of those ``branching[1]``, and
    so on; siblings at level ``l`` lie at least ``separations[l] * cluster_std``
    apart around their parent's centre. Rows are drawn around the leaves, whose
    sizes differ by at most one, and come shuffled. For clean two-level
    structure keep each separation several times the next one (the defaults
    give a well separated 3 x 3 hierarchy in 2-D).

    Parameters
    ----------
    n_samples : int, default=300
        Number of rows, at least the number of leaves ``prod(branching)``.
    branching : sequence of int, default=(3, 3)
        Children per node, one entry per level.
    n_features : int, default=2
        Dimension.
    cluster_std : float, default=1.0
        Standard deviation of every leaf cluster along every axis.
    separations : sequence of float, default=(60.0, 10.0)
        Least distance between sibling centres per level, in units of
        ``cluster_std``; same length as ``branching``.
    random_state : int, default=0
        Seed of a ``numpy.random.Generator``.

    Returns
    -------
    dataset : Dataset
        ``y`` is the leaf (fine) label in ``0 .. prod(branching) - 1``;
        ``y_coarse`` the top-level label in ``0 .. branching[0] - 1``.
    """
    rng = np.random.default_rng(random_state)
    branching = tuple(branching)
    separations = tuple(separations)
    if not branching or len(separations) != len(branching):
        raise ValueError(
            "make_hierarchical expects non-empty branching and separations of the "
            f"same length, but got branching={branching} and "
            f"separations={separations}."
        )
    _check_positive_ints(n_features=n_features, **_named("branching", branching))
    _check_positive_floats(
        cluster_std=cluster_std, **_named("separations", separations)
    )
    _check_sample_count(n_samples, prod(branching))

    centres = np.zeros((1, n_features))
    for n_children, separation in zip(branching, separations, strict=True):
        centres = np.concatenate(
            [
                centre
                + _spread_points(rng, n_children, n_features, separation * cluster_std)
                for centre in centres
            ]
        )
    X, y = _draw_clusters(rng, centres, n_samples, cluster_std)
    y_coarse = y // (len(centres) // branching[0])
    return Dataset(X=X, y=y, name="hierarchical", y_coarse=y_coarse)


def load_gagolewski(path: str | Path, *, labels: int = 0) -> Dataset:
    """Read one set of Gagolewski's clustering benchmark suite.

    Parameters
    ----------
    path : str or Path
        The ``NAME.data.gz`` file; the labels are read from
        ``NAME.labels<labels>.gz`` beside it.
    labels : int, default=0
        Which reference labelling to read (``labels0``, ``labels1``, ...).

    Returns
    -------
    dataset : Dataset
        ``y`` as given in the file: 0 marks noise where a set has noise.

    Raises
    ------
    ValueError
        If a file holds a non-number, NaN or inf, a ragged row, or the label
        count differs from the row count; the message names file and line.
    FileNotFoundError
        If a file is missing.
    """
    data_path = Path(path)
    if not data_path.name.endswith(".data.gz"):
        raise ValueError(f"Expected a file named NAME.data.gz, but got {data_path}.")
    stem = data_path.name.removesuffix(".data.gz")
    labels_path = data_path.with_name(f"{stem}.labels{labels}.gz")

    X = _read_table(data_path, np.float64, ndim=2)
    y = _read_table(labels_path, np.int64, ndim=1)
    if y.shape[0] != X.shape[0]:
        raise ValueError(
            f"{labels_path} holds {y.shape[0]} labels, but {data_path} holds "
            f"{X.shape[0]} rows; expected one label per row."
        )
    return Dataset(X=X, y=y, name=str(data_path))


def list_gagolewski(data_dir: str | Path, battery: str) -> list[str]:
    """List the sets of one battery of Gagolewski's benchmark suite.

    Parameters
    ----------
    data_dir : str or Path
        Folder holding the battery folders.
    battery : str
        Battery folder, e.g. ``"fcps"``.

    Returns
    -------
    names : list of str
        Sorted set names (``load_dataset(f"gagolewski/{battery}/{name}")``).
    """
    folder = Path(data_dir) / battery
    if not folder.is_dir():
        available = sorted(p.name for p in Path(data_dir).glob("*") if p.is_dir())
        raise FileNotFoundError(
            f"No battery folder {folder}; batteries found in {data_dir}: {available}."
        )
    return sorted(p.name.removesuffix(".data.gz") for p in folder.glob("*.data.gz"))


def load_parquet(
    path: str | Path,
    *,
    embedding_column: str = "embedding",
    label_column: str = "label",
) -> Dataset:
    """Read embeddings (and labels) from a Parquet file or folder.

    Parameters
    ----------
    path : str or Path
        A ``.parquet`` file, or a folder whose ``*.parquet`` files are read in
        name order and stacked.
    embedding_column : str, default="embedding"
        Column with one list of floats per row, the same length in every row.
    label_column : str, default="label"
        Column with labels; if absent, y is all zeros. Integer labels are kept;
        string labels become the codes of their sorted distinct values.

    Returns
    -------
    dataset : Dataset
        ``X`` float64 of shape (n_rows, embedding length).

    Raises
    ------
    ValueError
        For a missing embedding column, a null, ragged or non-finite embedding
        or a null label; the message names file and row. Also if some files have
        the label column and others do not.
    """
    files = _parquet_files(Path(path))
    pieces = [_read_parquet(file, embedding_column, label_column) for file in files]

    with_labels = [labels is not None for _, labels in pieces]
    if any(with_labels) and not all(with_labels):
        raise ValueError(
            f"Column {label_column!r} is in some files of {path} but not in "
            f"{[str(f) for f, has in zip(files, with_labels, strict=True) if not has]}."
        )
    widths = {X.shape[1] for X, _ in pieces}
    if len(widths) > 1:
        raise ValueError(
            f"The files of {path} hold embeddings of different lengths "
            f"{sorted(widths)}; expected one length."
        )
    X = np.concatenate([X for X, _ in pieces])
    if all(with_labels):
        y = _encode_labels(np.concatenate([labels for _, labels in pieces]))
    else:
        y = np.zeros(X.shape[0], dtype=np.int64)
    return Dataset(X=X, y=y, name=f"parquet:{path}")


def preprocess(
    X: np.ndarray,
    *,
    standardize: bool = False,
    pca: int | None = None,
    random_state: int = 0,
) -> np.ndarray:
    """Standardise and/or project pooled data, for centralised benchmarks.

    This sees all rows at once, so it is the centralised reference; the
    federated path computes its own statistics from the clients.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Data, finite.
    standardize : bool, default=False
        Centre every column and divide by its standard deviation; constant
        columns become zeros instead of NaN.
    pca : int, default=None
        Keep this many principal components (after standardising), between 1
        and ``min(n_samples, n_features)``.
    random_state : int, default=0
        Seed of the randomised PCA solver where scikit-learn picks it.

    Returns
    -------
    X_out : ndarray of shape (n_samples, n_features) or (n_samples, pca)
        A new float64 array.
    """
    X = np.array(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] == 0 or not np.all(np.isfinite(X)):
        raise ValueError(
            "preprocess expects a finite array of shape (n_samples, n_features) "
            f"with n_samples >= 1, but got shape {X.shape}."
        )
    if standardize:
        X = _standardize(X)
    if pca is not None:
        X = _project(X, pca, random_state)
    return X


def _standardize(X: np.ndarray) -> np.ndarray:
    """Return ``X`` with zero-mean, unit-variance columns; constant ones zero."""
    constant = X.max(axis=0) == X.min(axis=0)
    mean = np.where(constant, X[0], X.mean(axis=0))
    std = np.where(constant, 1.0, X.std(axis=0))
    return (X - mean) / std


def _project(X: np.ndarray, n_components: int, random_state: int) -> np.ndarray:
    """Return the first ``n_components`` principal component scores of ``X``."""
    from sklearn.decomposition import PCA

    limit = min(X.shape)
    if (
        isinstance(n_components, bool)
        or not isinstance(n_components, Integral)
        or not 1 <= n_components <= limit
    ):
        raise ValueError(
            f"preprocess expects pca between 1 and min(n_samples, n_features) = "
            f"{limit}, but got pca={n_components!r}."
        )
    model = PCA(n_components=int(n_components), random_state=random_state)
    return model.fit_transform(X).astype(np.float64, copy=False)


def _real_loader(name: str, data_dir: str | Path | None) -> Callable[..., Dataset]:
    """Return the loader (taking options only) for a non-synthetic name."""
    if name in _SKLEARN_LOADERS:
        return partial(_load_sklearn, name)
    if name.startswith("gagolewski/"):
        return partial(load_gagolewski, _gagolewski_path(name, data_dir))
    if name.endswith(".data.gz"):
        return partial(load_gagolewski, _resolve(name, data_dir))
    if name.startswith("parquet:"):
        return partial(load_parquet, _resolve(name.removeprefix("parquet:"), data_dir))
    if name == "parquet":
        return _load_parquet_option
    raise ValueError(
        f"Unknown dataset {name!r}; expected one of {list(DATASET_NAMES)}."
    )


def _resolve(path: str, data_dir: str | Path | None) -> Path:
    """Return ``path``, taken relative to ``data_dir`` when it is relative."""
    if data_dir is None or Path(path).is_absolute():
        return Path(path)
    return Path(data_dir) / path


def _load_parquet_option(
    *,
    path: str | Path | None = None,
    embedding_column: str = "embedding",
    label_column: str = "label",
) -> Dataset:
    """Load ``"parquet"`` with the path given as an option."""
    if path is None:
        raise ValueError(
            "Dataset 'parquet' needs the option path=<file or folder>, or use the "
            "name 'parquet:<file or folder>'."
        )
    return load_parquet(
        path, embedding_column=embedding_column, label_column=label_column
    )


def _load_sklearn(name: str) -> Dataset:
    """Load one of scikit-learn's bundled sets."""
    import sklearn.datasets

    X, y = getattr(sklearn.datasets, _SKLEARN_LOADERS[name])(return_X_y=True)
    return Dataset(
        X=np.asarray(X, dtype=np.float64), y=np.asarray(y, dtype=np.int64), name=name
    )


def _gagolewski_path(name: str, data_dir: str | Path | None) -> Path:
    """Map ``"gagolewski/<battery>/<dataset>"`` to its data file."""
    parts = name.split("/")
    if len(parts) != 3 or not all(parts):
        raise ValueError(
            f"Expected a name 'gagolewski/<battery>/<dataset>', but got {name!r}."
        )
    if data_dir is None:
        raise ValueError(
            f"Dataset {name!r} needs data_dir: the folder that holds the battery "
            "folders (fcps/, uci/, ...) of the clustering benchmark suite."
        )
    return Path(data_dir) / parts[1] / f"{parts[2]}.data.gz"


def _check_options(
    name: str,
    loader: Callable[..., Dataset],
    options: dict[str, Any],
    exclude: frozenset[str] | set[str] = frozenset(),
) -> None:
    """Refuse options that the loader does not take."""
    kinds = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    accepted = {
        parameter.name
        for parameter in inspect.signature(loader).parameters.values()
        if parameter.kind in kinds
    } - set(exclude)
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise ValueError(
            f"Dataset {name!r} got unknown options {unknown}; it accepts "
            f"{sorted(accepted) or 'none'}."
        )


def _subset(dataset: Dataset, n_samples: int | None, random_state: int) -> Dataset:
    """Return a seeded random subset of rows, kept in their original order."""
    if n_samples is None:
        return dataset
    _check_sample_count(n_samples, 1)
    if n_samples > dataset.n_samples:
        raise ValueError(
            f"Dataset {dataset.name!r} has {dataset.n_samples} rows, but "
            f"n_samples={n_samples} were asked for."
        )
    rng = np.random.default_rng(random_state)
    rows = np.sort(rng.choice(dataset.n_samples, size=n_samples, replace=False))
    coarse = None if dataset.y_coarse is None else dataset.y_coarse[rows]
    return Dataset(
        X=dataset.X[rows], y=dataset.y[rows], name=dataset.name, y_coarse=coarse
    )


def _spread_points(
    rng: np.random.Generator, n_points: int, n_features: int, min_distance: float
) -> np.ndarray:
    """Return centred points whose closest pair is exactly ``min_distance`` apart.

    Farthest-point sampling from a Gaussian pool keeps the points evenly spread.

    Returns
    -------
    points : ndarray of shape (n_points, n_features)
    """
    if n_points == 1:
        return np.zeros((1, n_features))
    pool = rng.standard_normal((32 * n_points, n_features))
    chosen = [0]
    distance = np.linalg.norm(pool - pool[0], axis=1)
    for _ in range(n_points - 1):
        chosen.append(int(np.argmax(distance)))
        distance = np.minimum(distance, np.linalg.norm(pool - pool[chosen[-1]], axis=1))
    points = pool[chosen] - pool[chosen].mean(axis=0)
    return points * (min_distance / pdist(points).min())


def _draw_clusters(
    rng: np.random.Generator, centres: np.ndarray, n_samples: int, std: float
) -> tuple[np.ndarray, np.ndarray]:
    """Draw near-equal numbers of rows around each centre, shuffled.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,)
        Index of the centre of each row, int64.
    """
    sizes = np.full(len(centres), n_samples // len(centres))
    sizes[: n_samples % len(centres)] += 1
    y = np.repeat(np.arange(len(centres), dtype=np.int64), sizes)
    X = centres[y] + std * rng.standard_normal((n_samples, centres.shape[1]))
    order = rng.permutation(n_samples)
    return X[order], y[order]


def _named(prefix: str, values: Sequence[Any]) -> dict[str, Any]:
    """Name the entries of a sequence for the checks, e.g. ``branching[0]``."""
    return {f"{prefix}[{i}]": value for i, value in enumerate(values)}


def _check_positive_ints(**values: Any) -> None:
    """Refuse any value that is not an int >= 1."""
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
            raise ValueError(f"Expected {key} to be an int >= 1, but got {value!r}.")


def _check_positive_floats(**values: Any) -> None:
    """Refuse any value that is not a finite number > 0."""
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, Real):
            raise ValueError(f"Expected {key} to be a number > 0, but got {value!r}.")
        if not 0 < value < np.inf:
            raise ValueError(f"Expected {key} to be a number > 0, but got {value!r}.")


def _check_sample_count(n_samples: int, least: int) -> None:
    """Refuse a row count below ``least``."""
    if isinstance(n_samples, bool) or not isinstance(n_samples, Integral):
        raise ValueError(f"Expected n_samples to be an int, but got {n_samples!r}.")
    if n_samples < least:
        raise ValueError(
            f"Expected n_samples >= {least} (one row per cluster at least), but got "
            f"n_samples={n_samples}."
        )


def _read_table(path: Path, dtype: type, ndim: int) -> np.ndarray:
    """Read a gzipped whitespace-separated table; explain any bad line.

    Returns
    -------
    table : ndarray of shape (n_rows, n_columns) or (n_rows,)
        ``ndim`` 2 for data, 1 for one label per line.
    """
    if not path.is_file():
        raise FileNotFoundError(f"No file {path}.")
    try:
        # An empty file is refused below, with the file's name.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="loadtxt: input contained no")
            table = np.loadtxt(path, dtype=dtype, ndmin=ndim)
    except ValueError:
        _raise_bad_line(path, dtype)
        raise
    except (OSError, EOFError) as error:
        raise ValueError(f"{path} is not a readable gzip text file: {error}") from error

    if table.shape[0] == 0:
        raise ValueError(f"{path} holds no rows.")
    if table.ndim != ndim:
        raise ValueError(
            f"{path} should hold one label per line, but holds {table.shape[1]} "
            "values per line."
        )
    if dtype is np.float64 and not np.all(np.isfinite(table)):
        _raise_bad_line(path, dtype)
    return table


def _raise_bad_line(path: Path, dtype: type) -> None:
    """Find the first unreadable, ragged or non-finite entry and raise for it."""
    parse = float if dtype is np.float64 else int
    width = None
    with gzip.open(path, "rt") as lines:
        for line_number, line in enumerate(lines, start=1):
            tokens = line.split()
            if not tokens:
                continue
            if width is None:
                width = len(tokens)
            if len(tokens) != width:
                raise ValueError(
                    f"{path}, line {line_number}: {len(tokens)} values, but the "
                    f"first row has {width}; every row needs the same number."
                )
            for column, token in enumerate(tokens, start=1):
                _check_token(path, line_number, column, token, parse)


def _check_token(
    path: Path, line_number: int, column: int, token: str, parse: type
) -> None:
    """Raise if ``token`` is not a finite number of the expected kind."""
    kind = "a number" if parse is float else "an integer label"
    try:
        value = parse(token)
    except ValueError:
        raise ValueError(
            f"{path}, line {line_number}, column {column}: {token!r} is not {kind}."
        ) from None
    if not np.isfinite(value):
        raise ValueError(
            f"{path}, line {line_number}, column {column}: non-finite value "
            f"{token!r}; the data must be finite."
        )


def _parquet_files(path: Path) -> list[Path]:
    """Return the Parquet file itself, or a folder's ``*.parquet`` in name order."""
    if path.is_dir():
        files = sorted(path.glob("*.parquet"))
        if not files:
            raise FileNotFoundError(f"No *.parquet files in {path}.")
        return files
    if not path.is_file():
        raise FileNotFoundError(f"No Parquet file or folder {path}.")
    return [path]


def _read_parquet(
    path: Path, embedding_column: str, label_column: str
) -> tuple[np.ndarray, np.ndarray | None]:
    """Read one Parquet file into embeddings and raw labels (None if absent)."""
    import pyarrow.parquet as pq

    schema_names = pq.read_schema(path).names
    if embedding_column not in schema_names:
        raise ValueError(
            f"{path} has no column {embedding_column!r}; its columns are "
            f"{schema_names}."
        )
    columns = [embedding_column]
    if label_column in schema_names:
        columns.append(label_column)
    table = pq.read_table(path, columns=columns)

    X = _embedding_matrix(path, table.column(embedding_column).combine_chunks())
    if label_column not in schema_names:
        return X, None
    labels = table.column(label_column).combine_chunks()
    if labels.null_count:
        first = int(np.flatnonzero(labels.is_null().to_numpy(zero_copy_only=False))[0])
        raise ValueError(f"{path}, row {first}: label {label_column!r} is null.")
    return X, labels.to_numpy(zero_copy_only=False)


def _embedding_matrix(path: Path, column: Any) -> np.ndarray:
    """Stack a pyarrow list column into a float64 matrix, checking every row.

    Returns
    -------
    X : ndarray of shape (n_rows, embedding length)
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if not pa.types.is_list(column.type) and not (
        pa.types.is_large_list(column.type) or pa.types.is_fixed_size_list(column.type)
    ):
        raise ValueError(
            f"{path}: expected the embedding column to hold lists of floats, but "
            f"its type is {column.type}."
        )
    if len(column) == 0:
        raise ValueError(f"{path} has no rows.")
    if column.null_count:
        first = int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0])
        raise ValueError(f"{path}, row {first}: the embedding is null.")

    lengths = pc.list_value_length(column).to_numpy(zero_copy_only=False)
    ragged = np.flatnonzero(lengths != lengths[0])
    if ragged.size:
        row = int(ragged[0])
        raise ValueError(
            f"{path}, row {row}: embedding of length {lengths[row]}, but row 0 has "
            f"length {lengths[0]}; every row needs the same length."
        )
    values = column.flatten().to_numpy(zero_copy_only=False).astype(np.float64)
    X = values.reshape(len(column), int(lengths[0]))
    bad = np.argwhere(~np.isfinite(X))
    if bad.size:
        row, col = bad[0]
        raise ValueError(
            f"{path}, row {row}, column {col}: non-finite embedding value "
            f"{X[row, col]}; the data must be finite."
        )
    return X


def _encode_labels(labels: np.ndarray) -> np.ndarray:
    """Return integer labels as int64; others as codes of their sorted values."""
    if np.issubdtype(labels.dtype, np.integer):
        return labels.astype(np.int64)
    _, codes = np.unique(labels.astype(str), return_inverse=True)
    return codes.astype(np.int64)
