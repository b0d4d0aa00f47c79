"""Client partitions for simulations: which rows of a data set each client holds.

Simulation layer. Every partitioner returns ``list[np.ndarray]``: one sorted
int64 array of row indices per client, and every row lies on exactly one client.
The caller slices its own float64 arrays with them, so the data never passes
through another dtype.

Flower's flwr-datasets partitioners do the assignment where they serve: an
in-memory ``datasets.Dataset`` with an ``idx`` and a ``label`` column is
partitioned, and the ``idx`` column of each partition is read back. Importing
flwr-datasets takes seconds, so it is imported inside the functions.

Schemes
-------
iid
    Rows shuffled with the seed, then cut into near-equal contiguous shards
    (``IidPartitioner``).
dirichlet
    Label skew: each class is divided over the clients by proportions drawn
    from a Dirichlet distribution with concentration ``alpha``
    (``DirichletPartitioner``); a small ``alpha`` gives clients dominated by one
    or two labels.
pathological
    Each client holds rows of exactly ``classes_per_client`` classes
    (``PathologicalPartitioner``, or a cyclic assignment where Flower's cannot
    keep every class, see :func:`pathological`).
quantity_skew
    Client sizes follow a Zipf (power) law with exponent ``power``; rows are
    IID (``SizePartitioner`` on shuffled rows).
feature_skew
    Rows IID, plus a seeded affine distortion of the features per client
    (:func:`feature_skew`, :func:`feature_distortions`).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from numbers import Integral, Real
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from datasets import Dataset as HFDataset
    from flwr_datasets.partitioner import Partitioner

__all__ = [
    "SCHEMES",
    "AffineDistortion",
    "dirichlet",
    "feature_distortions",
    "feature_skew",
    "iid",
    "partition",
    "pathological",
    "quantity_skew",
]

SCHEMES = ("iid", "dirichlet", "pathological", "quantity_skew", "feature_skew")

_CLASS_ASSIGNMENTS = ("auto", "first-deterministic", "deterministic", "random")

# Stream id mixed into the seed for feature distortions, so that they are
# independent of the row assignment drawn from the same seed.
_DISTORTION_STREAM = 1


@dataclass(frozen=True, eq=False)
class AffineDistortion:
    """Per-feature affine map ``X * scale + shift`` applied to one client's data.

    Parameters
    ----------
    scale : ndarray of shape (n_features,)
        Positive multiplicative factor per feature.
    shift : ndarray of shape (n_features,)
        Additive offset per feature, in the units of the data.
    """

    scale: np.ndarray
    shift: np.ndarray

    def apply(self, X: np.ndarray) -> np.ndarray:
        """Return the distorted copy of ``X``.

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_features)
            One client's rows.

        Returns
        -------
        X_distorted : ndarray of shape (n_samples, n_features)
            ``X * scale + shift``, float64.
        """
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.scale.shape[0]:
            raise ValueError(
                f"Expected X of shape (n_samples, {self.scale.shape[0]}), "
                f"but got shape {X.shape}."
            )
        return X * self.scale + self.shift


def partition(
    y: np.ndarray,
    scheme: str,
    num_partitions: int,
    seed: int = 0,
    **options: Any,
) -> list[np.ndarray]:
    """Split the rows of a data set over clients with the named scheme.

    Parameters
    ----------
    y : ndarray of shape (n_samples,)
        Labels; only their count matters for ``iid``, ``quantity_skew`` and
        ``feature_skew``.
    scheme : {"iid", "dirichlet", "pathological", "quantity_skew", \
"feature_skew"}
        Partitioning scheme.
    num_partitions : int
        Number of clients, at most ``n_samples``.
    seed : int, default=0
        Seed of every random choice; the same seed gives the same partition.
    **options
        Options of the scheme's function (``alpha``, ``classes_per_client``,
        ``power``, ``strength``, ...).

    Returns
    -------
    parts : list of ndarray of shape (n_rows_client,)
        Sorted int64 row indices per client; every row appears exactly once.

    Notes
    -----
    For ``"feature_skew"`` only the (IID) rows come back; the distortions for
    the same seed come from :func:`feature_distortions` or, with the rows,
    from :func:`feature_skew`.
    """
    if scheme == "feature_skew":
        _check_strength(options.get("strength", 0.5))
        unknown = sorted(set(options) - {"strength"})
        if unknown:
            raise ValueError(
                f"feature_skew accepts the option 'strength' only, but got {unknown}."
            )
        return iid(y, num_partitions, seed)
    functions: dict[str, Callable[..., list[np.ndarray]]] = {
        "iid": iid,
        "dirichlet": dirichlet,
        "pathological": pathological,
        "quantity_skew": quantity_skew,
    }
    if scheme not in functions:
        raise ValueError(
            f"Unknown partition scheme {scheme!r}; expected one of {list(SCHEMES)}."
        )
    return functions[scheme](y, num_partitions, seed, **options)


def iid(y: np.ndarray, num_partitions: int, seed: int = 0) -> list[np.ndarray]:
    """Split rows uniformly at random into near-equal client shares.

    Parameters
    ----------
    y : ndarray of shape (n_samples,)
        Labels (only their count is used).
    num_partitions : int
        Number of clients, at most ``n_samples``.
    seed : int, default=0
        Seed of the shuffle.

    Returns
    -------
    parts : list of ndarray of shape (n_rows_client,)
        Sorted int64 row indices per client; sizes differ by at most one.
    """
    from flwr_datasets.partitioner import IidPartitioner

    labels = _check_labels(y)
    _check_counts(len(labels), num_partitions, seed)

    # IidPartitioner cuts contiguous shards, so the shuffle happens here.
    order = np.random.default_rng(seed).permutation(len(labels))
    table = _index_table(order, labels[order])
    parts = _flower_parts(IidPartitioner(num_partitions), table, num_partitions)
    return _checked(parts, len(labels), "iid")


def dirichlet(
    y: np.ndarray,
    num_partitions: int,
    seed: int = 0,
    *,
    alpha: float = 0.5,
    min_partition_size: int = 1,
    self_balancing: bool = False,
) -> list[np.ndarray]:
    """Split rows with label skew drawn from a Dirichlet distribution.

    Each class is divided over the clients by proportions drawn from
    ``Dirichlet(alpha, ..., alpha)``. A draw that leaves a client with fewer
    than ``min_partition_size`` rows is redrawn (up to 11 draws in all), so no
    client is ever empty.

    Parameters
    ----------
    y : ndarray of shape (n_samples,)
        Class labels.
    num_partitions : int
        Number of clients, at most ``n_samples // min_partition_size``.
    seed : int, default=0
        Seed of the Dirichlet draws.
    alpha : float, default=0.5
        Concentration; small values (0.05) give clients dominated by one or two
        labels, large values (100) approach IID label shares.
    min_partition_size : int, default=1
        Fewest rows a client may get; at least 1.
    self_balancing : bool, default=False
        Stop giving rows of later classes to clients already above the mean
        size (Flower's option).

    Returns
    -------
    parts : list of ndarray of shape (n_rows_client,)
        Sorted int64 row indices per client.
    """
    from flwr_datasets.partitioner import DirichletPartitioner

    labels = _check_labels(y)
    _check_counts(len(labels), num_partitions, seed)
    _check_dirichlet_settings(len(labels), num_partitions, alpha, min_partition_size)

    partitioner = DirichletPartitioner(
        num_partitions=num_partitions,
        partition_by="label",
        alpha=float(alpha),
        min_partition_size=int(min_partition_size),
        self_balancing=bool(self_balancing),
        shuffle=False,
        seed=seed,
    )
    table = _index_table(np.arange(len(labels)), labels)
    try:
        # Each redraw warns; the outcome is either a partition or the error below.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The specified min_partition")
            parts = _flower_parts(partitioner, table, num_partitions)
    except ValueError as error:
        if "max number of attempts" not in str(error):
            raise
        lower = " or lower min_partition_size" if min_partition_size > 1 else ""
        raise ValueError(
            f"dirichlet partition with alpha={alpha} and {num_partitions} clients "
            f"over {len(np.unique(labels))} classes gave some client fewer than "
            f"min_partition_size={min_partition_size} rows in 11 draws; raise "
            f"alpha, use fewer clients{lower}."
        ) from error
    return _checked(parts, len(labels), "dirichlet")


def pathological(
    y: np.ndarray,
    num_partitions: int,
    seed: int = 0,
    *,
    classes_per_client: int = 2,
    class_assignment: str = "auto",
) -> list[np.ndarray]:
    """Split rows so that each client holds exactly ``classes_per_client`` classes.

    The rows of a class are divided evenly over the clients that hold it.

    Parameters
    ----------
    y : ndarray of shape (n_samples,)
        Class labels.
    num_partitions : int
        Number of clients; ``num_partitions * classes_per_client`` must be at
        least the number of classes so that every class has a client.
    seed : int, default=0
        Seed of the class assignment.
    classes_per_client : int, default=2
        Classes per client, between 1 and the number of classes.
    class_assignment : {"auto", "first-deterministic", "deterministic", \
"random"}, default="auto"
        How classes are given to clients. The last three are Flower's
        ``PathologicalPartitioner`` modes. ``"auto"`` uses
        ``"first-deterministic"`` (client ``i`` gets class ``i mod n_classes``
        and random others, as in the NIID-Bench paper) when there are at least
        as many clients as classes, since every class is then held; with fewer
        clients, Flower's modes can leave classes on no client, so ``"auto"``
        deals a seeded permutation of the classes out cyclically, which holds
        every class.

    Returns
    -------
    parts : list of ndarray of shape (n_rows_client,)
        Sorted int64 row indices per client.

    Raises
    ------
    ValueError
        If the setting cannot hold every row: too few clients or classes per
        client to cover the classes, a class with fewer rows than clients that
        hold it, or a Flower mode that left classes on no client.
    """
    labels = _check_labels(y)
    _check_counts(len(labels), num_partitions, seed)
    classes, class_counts = np.unique(labels, return_counts=True)
    _check_pathological_settings(
        len(classes), num_partitions, classes_per_client, class_assignment
    )

    if class_assignment == "auto" and num_partitions < len(classes):
        holders = _cyclic_class_holders(
            len(classes), num_partitions, classes_per_client, seed
        )
        _check_class_sizes(classes, class_counts, holders, classes_per_client)
        parts = _split_classes(labels, classes, holders, num_partitions)
    else:
        mode = "first-deterministic" if class_assignment == "auto" else class_assignment
        parts = _flower_pathological(
            labels, num_partitions, classes_per_client, mode, seed
        )
    return _checked(
        parts,
        len(labels),
        f"pathological partition with classes_per_client={classes_per_client}, "
        f"class_assignment={class_assignment!r} and {num_partitions} clients over "
        f"{len(classes)} classes",
        remedy="use class_assignment='auto', which gives every class a client",
    )


def quantity_skew(
    y: np.ndarray,
    num_partitions: int,
    seed: int = 0,
    *,
    power: float = 1.0,
) -> list[np.ndarray]:
    """Split rows IID into client shares whose sizes follow a power law.

    The client of rank ``r`` (1 = largest) gets a share proportional to
    ``r ** -power``, with at least one row; which client gets which rank is
    drawn from the seed. ``power=0`` gives equal sizes, ``power=1`` (Zipf) a
    largest client about ``num_partitions`` times the smallest.

    Parameters
    ----------
    y : ndarray of shape (n_samples,)
        Labels (only their count is used).
    num_partitions : int
        Number of clients, at most ``n_samples``.
    seed : int, default=0
        Seed of the rank order and of the row shuffle.
    power : float, default=1.0
        Non-negative exponent of the power law.

    Returns
    -------
    parts : list of ndarray of shape (n_rows_client,)
        Sorted int64 row indices per client.
    """
    from flwr_datasets.partitioner import SizePartitioner

    labels = _check_labels(y)
    _check_counts(len(labels), num_partitions, seed)
    if not isinstance(power, Real) or not np.isfinite(power) or power < 0:
        raise ValueError(
            f"quantity_skew expects a finite power >= 0, but got power={power!r}."
        )

    # Sizes first, then contiguous blocks of a shuffled index column.
    rng = np.random.default_rng(seed)
    ranks = rng.permutation(num_partitions) + 1.0
    sizes = _power_law_sizes(len(labels), ranks**-power)
    order = rng.permutation(len(labels))
    table = _index_table(order, labels[order])
    partitioner = SizePartitioner([int(size) for size in sizes])
    parts = _flower_parts(partitioner, table, num_partitions)
    return _checked(parts, len(labels), "quantity_skew")


def feature_skew(
    X: np.ndarray,
    num_partitions: int,
    seed: int = 0,
    *,
    strength: float = 0.5,
) -> tuple[list[np.ndarray], list[AffineDistortion]]:
    """Split rows IID and draw an affine feature distortion per client.

    The rows are those of :func:`iid` with the same seed. Client ``c`` should
    see ``distortions[c].apply(X[parts[c]])`` instead of ``X[parts[c]]``.
    Shifts are scaled by each feature's (pooled) standard deviation of ``X``,
    so ``strength`` means the same on every data set.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        The data to be distributed.
    num_partitions : int
        Number of clients, at most ``n_samples``.
    seed : int, default=0
        Seed of the rows and of the distortions.
    strength : float, default=0.5
        Size of the distortion; see :func:`feature_distortions`.

    Returns
    -------
    parts : list of ndarray of shape (n_rows_client,)
        Sorted int64 row indices per client.
    distortions : list of AffineDistortion
        One per client, in the order of ``parts``.
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(
            f"Expected X of shape (n_samples, n_features), but got shape {X.shape}."
        )
    parts = iid(np.zeros(X.shape[0], dtype=np.int64), num_partitions, seed)
    distortions = feature_distortions(
        num_partitions,
        X.shape[1],
        seed,
        strength=strength,
        feature_std=X.std(axis=0),
    )
    return parts, distortions


def feature_distortions(
    num_partitions: int,
    n_features: int,
    seed: int = 0,
    *,
    strength: float = 0.5,
    feature_std: np.ndarray | None = None,
) -> list[AffineDistortion]:
    """Draw one affine feature distortion per client.

    For client ``c`` and feature ``j``: ``scale = exp(strength * a)`` and
    ``shift = strength * b * feature_std[j]`` with ``a``, ``b`` standard normal.
    ``strength=0`` is the identity. The draws use a stream of their own, so they
    do not change the rows that the same seed gives.

    Parameters
    ----------
    num_partitions : int
        Number of clients.
    n_features : int
        Number of features.
    seed : int, default=0
        Seed of the draws.
    strength : float, default=0.5
        Non-negative size of the distortion.
    feature_std : ndarray of shape (n_features,), default=None
        Unit of the shifts per feature; ones (standardised data) if None.

    Returns
    -------
    distortions : list of AffineDistortion
        One per client.
    """
    _check_strength(strength)
    if isinstance(num_partitions, bool) or not isinstance(num_partitions, Integral):
        raise ValueError(f"num_partitions must be an int, but got {num_partitions!r}.")
    if num_partitions < 1 or n_features < 1:
        raise ValueError(
            "feature_distortions needs num_partitions >= 1 and n_features >= 1, "
            f"but got {num_partitions} and {n_features}."
        )
    unit = _feature_unit(feature_std, n_features)

    rng = np.random.default_rng([_check_seed(seed), _DISTORTION_STREAM])
    log_scales = strength * rng.standard_normal((num_partitions, n_features))
    shifts = strength * rng.standard_normal((num_partitions, n_features)) * unit
    return [
        AffineDistortion(scale=np.exp(log_scale), shift=shift)
        for log_scale, shift in zip(log_scales, shifts, strict=True)
    ]


def _check_labels(y: np.ndarray) -> np.ndarray:
    """Return ``y`` as a 1-D array with at least one row."""
    labels = np.asarray(y)
    if labels.ndim != 1 or labels.shape[0] == 0:
        raise ValueError(
            f"Expected labels y of shape (n_samples,) with n_samples >= 1, "
            f"but got shape {labels.shape}."
        )
    return labels


def _check_seed(seed: int) -> int:
    """Return ``seed`` if it is a non-negative int."""
    if isinstance(seed, bool) or not isinstance(seed, Integral) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, but got {seed!r}.")
    return int(seed)


def _check_counts(n_samples: int, num_partitions: int, seed: int) -> None:
    """Refuse a client count that would leave some client empty."""
    _check_seed(seed)
    if isinstance(num_partitions, bool) or not isinstance(num_partitions, Integral):
        raise ValueError(f"num_partitions must be an int, but got {num_partitions!r}.")
    if num_partitions < 1:
        raise ValueError(f"num_partitions must be >= 1, but got {num_partitions}.")
    if num_partitions > n_samples:
        raise ValueError(
            f"Cannot split {n_samples} rows over {num_partitions} clients: every "
            f"client needs at least one row; use at most {n_samples} clients."
        )


def _check_strength(strength: float) -> None:
    """Refuse a negative or non-finite distortion strength."""
    if not isinstance(strength, Real) or not np.isfinite(strength) or strength < 0:
        raise ValueError(
            f"feature_skew expects a finite strength >= 0, but got {strength!r}."
        )


def _check_dirichlet_settings(
    n_samples: int, num_partitions: int, alpha: float, min_partition_size: int
) -> None:
    """Refuse Dirichlet settings that are invalid or cannot be met."""
    if not isinstance(alpha, Real) or not np.isfinite(alpha) or alpha <= 0:
        raise ValueError(f"dirichlet expects alpha > 0, but got alpha={alpha!r}.")
    if not isinstance(min_partition_size, Integral) or min_partition_size < 1:
        raise ValueError(
            "dirichlet expects min_partition_size >= 1 (0 allows empty clients), "
            f"but got min_partition_size={min_partition_size!r}."
        )
    if num_partitions * min_partition_size > n_samples:
        raise ValueError(
            f"dirichlet partition with min_partition_size={min_partition_size} and "
            f"{num_partitions} clients needs {num_partitions * min_partition_size} "
            f"rows, but there are {n_samples}; lower one of them."
        )


def _check_pathological_settings(
    n_classes: int, num_partitions: int, classes_per_client: int, mode: str
) -> None:
    """Refuse pathological settings that are invalid or cannot hold every class."""
    if mode not in _CLASS_ASSIGNMENTS:
        raise ValueError(
            f"class_assignment must be one of {list(_CLASS_ASSIGNMENTS)}, "
            f"but got {mode!r}."
        )
    if not isinstance(classes_per_client, Integral) or not (
        1 <= classes_per_client <= n_classes
    ):
        raise ValueError(
            f"pathological partition expects 1 <= classes_per_client <= {n_classes} "
            f"(the number of classes), but got classes_per_client="
            f"{classes_per_client!r}."
        )
    if num_partitions * classes_per_client < n_classes:
        needed = -(-n_classes // num_partitions)
        raise ValueError(
            f"pathological partition with classes_per_client={classes_per_client} "
            f"and {num_partitions} clients over {n_classes} classes leaves "
            f"{n_classes - num_partitions * classes_per_client} classes on no "
            f"client; use classes_per_client >= {needed} or at least "
            f"{-(-n_classes // classes_per_client)} clients."
        )


def _cyclic_class_holders(
    n_classes: int, num_partitions: int, classes_per_client: int, seed: int
) -> np.ndarray:
    """Deal a seeded permutation of class positions out to clients in turn.

    Returns
    -------
    holders : ndarray of shape (num_partitions, classes_per_client)
        Class positions (into the sorted unique labels) per client, distinct
        within a row; every class appears when
        ``num_partitions * classes_per_client >= n_classes``.
    """
    order = np.random.default_rng(seed).permutation(n_classes)
    slots = np.arange(num_partitions * classes_per_client) % n_classes
    return order[slots].reshape(num_partitions, classes_per_client)


def _check_class_sizes(
    classes: np.ndarray,
    class_counts: np.ndarray,
    holders: np.ndarray,
    classes_per_client: int,
) -> None:
    """Refuse a class that has fewer rows than the clients that hold it."""
    times_held = np.bincount(holders.ravel(), minlength=len(classes))
    short = np.flatnonzero(times_held > class_counts)
    if short.size:
        first = short[0]
        label = classes[first].item()
        raise ValueError(
            f"pathological partition with classes_per_client={classes_per_client}: "
            f"class {label!r} has only {class_counts[first]} row(s) but is held by "
            f"{times_held[first]} clients; use fewer clients or fewer classes per "
            f"client."
        )


def _split_classes(
    labels: np.ndarray,
    classes: np.ndarray,
    holders: np.ndarray,
    num_partitions: int,
) -> list[np.ndarray]:
    """Divide each class's rows evenly over the clients that hold it."""
    rows: list[list[np.ndarray]] = [[] for _ in range(num_partitions)]
    for position, label in enumerate(classes):
        clients = np.flatnonzero((holders == position).any(axis=1))
        shares = np.array_split(np.flatnonzero(labels == label), len(clients))
        for client, share in zip(clients, shares, strict=True):
            rows[client].append(share)
    return [np.sort(np.concatenate(chunks)).astype(np.int64) for chunks in rows]


def _flower_pathological(
    labels: np.ndarray,
    num_partitions: int,
    classes_per_client: int,
    mode: str,
    seed: int,
) -> list[np.ndarray]:
    """Run Flower's ``PathologicalPartitioner`` in the given mode."""
    from flwr_datasets.partitioner import PathologicalPartitioner

    partitioner = PathologicalPartitioner(
        num_partitions=num_partitions,
        partition_by="label",
        num_classes_per_partition=int(classes_per_client),
        class_assignment_mode=mode,
        shuffle=False,
        seed=seed,
    )
    table = _index_table(np.arange(len(labels)), labels)

    # An unused class is warned about and then refused by _checked.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Classes: ")
        return _flower_parts(partitioner, table, num_partitions)


def _power_law_sizes(n_samples: int, weights: np.ndarray) -> np.ndarray:
    """Return sizes >= 1 that sum to ``n_samples``, proportional to ``weights``.

    The rows left after one per client go by largest remainder.
    """
    spare = n_samples - len(weights)
    quota = spare * weights / weights.sum()
    sizes = np.floor(quota).astype(np.int64)
    leftover = spare - int(sizes.sum())
    by_remainder = np.argsort(-(quota - sizes), kind="stable")
    sizes[by_remainder[:leftover]] += 1
    return sizes + 1


def _feature_unit(feature_std: np.ndarray | None, n_features: int) -> np.ndarray:
    """Return the per-feature unit of the shifts."""
    if feature_std is None:
        return np.ones(n_features)
    unit = np.asarray(feature_std, dtype=np.float64)
    if unit.shape != (n_features,) or not np.all(np.isfinite(unit)):
        raise ValueError(
            f"Expected finite feature_std of shape ({n_features},), but got "
            f"shape {unit.shape}."
        )
    return unit


def _index_table(index: np.ndarray, labels: np.ndarray) -> HFDataset:
    """Build the in-memory table that Flower's partitioners work on."""
    from datasets import Dataset as HFDataset

    return HFDataset.from_dict(
        {"idx": np.asarray(index, dtype=np.int64), "label": labels}
    )


def _flower_parts(
    partitioner: Partitioner, table: HFDataset, num_partitions: int
) -> list[np.ndarray]:
    """Partition ``table`` and read back the sorted ``idx`` column per client."""
    partitioner.dataset = table
    parts = []
    for partition_id in range(num_partitions):
        rows = partitioner.load_partition(partition_id).with_format("arrow")[:]
        parts.append(np.sort(rows["idx"].to_numpy()).astype(np.int64))
    return parts


def _checked(
    parts: Sequence[np.ndarray],
    n_samples: int,
    setting: str,
    remedy: str = "please report this setting as a bug",
) -> list[np.ndarray]:
    """Return ``parts`` if every row is on exactly one client and none is empty."""
    counts = np.bincount(np.concatenate(parts), minlength=n_samples)
    missing = np.flatnonzero(counts == 0)
    if missing.size:
        raise ValueError(
            f"{setting} leaves {missing.size} of {n_samples} rows on no client "
            f"(first: row {missing[0]}); {remedy}."
        )
    if np.any(counts > 1):
        raise ValueError(f"{setting} put some rows on more than one client.")
    empty = [client for client, rows in enumerate(parts) if rows.size == 0]
    if empty:
        raise ValueError(
            f"{setting} left clients {empty} without rows; use fewer clients."
        )
    return list(parts)
