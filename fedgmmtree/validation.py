"""Checks of a client's data and replies: errors say what, where and how to fix.

Numpy core: imports no Flower. :func:`check_client_data` guards the input of
``GMMTree.fit`` and of the ClientApp; :func:`check_reply` is the first look the
server takes at the arrays a client sends back, before the growth protocol reads
them.
"""

import numpy as np
from scipy import sparse

# Squares of larger values overflow the second moments once summed.
MAX_ABS_VALUE = 1e100

# Relative slack of the Cauchy-Schwarz test on received moments (rounding only).
_CONSISTENCY_RTOL = 1e-8


def _where(client) -> str:
    return "" if client is None else f" on client {client}"


def _columns(columns) -> str:
    columns = [int(c) for c in columns]
    shown = ", ".join(str(c) for c in columns[:10])
    more = f" and {len(columns) - 10} more" if len(columns) > 10 else ""
    return f"column {shown}" if len(columns) == 1 else f"columns {shown}{more}"


def _as_float_array(X, where):
    """``X`` as a float64 ndarray, or a ValueError naming what is not a number."""
    if sparse.issparse(X):
        raise ValueError(
            f"Data{where} must be a dense array, but got a sparse {type(X).__name__}. "
            "Convert it with X.toarray()."
        )
    raw = np.asarray(X)
    kind = raw.dtype.kind
    if kind in "USV":
        raise ValueError(
            f"Data{where} must be numeric, but got an array of {raw.dtype} (text). "
            "Convert it to numbers explicitly, e.g. with X.astype(float)."
        )
    if kind == "c":
        raise ValueError(
            f"Data{where} must be real, but got complex values ({raw.dtype}). "
            "Pass the real part, the modulus, or both as separate columns."
        )
    if kind in "mM":
        raise ValueError(
            f"Data{where} must be numeric, but got {raw.dtype} (dates or times). "
            "Convert them to numbers, e.g. seconds since an epoch."
        )
    if kind != "O":
        return raw.astype(np.float64, copy=False)
    out = np.empty(raw.shape, dtype=np.float64)
    for index, value in np.ndenumerate(raw):
        try:
            out[index] = np.float64(value)
        except (TypeError, ValueError, OverflowError):
            place = (
                f"column {index[1]} (row {index[0]})" if len(index) == 2 else "entry"
            )
            raise ValueError(
                f"Data{where} must be numeric, but {place} holds {value!r} of type "
                f"{type(value).__name__}."
            ) from None
    return out


def check_client_data(X, client=None, n_features=None, min_samples=0) -> np.ndarray:
    """Return ``X`` as a 2-D float64 array, or raise a ValueError saying why not.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Dense, real and finite, with at least one column.
    client : int or str, optional
        Named in the error messages.
    n_features : int, optional
        The number of features every client must have.
    min_samples : int, default=0
        Fewest rows accepted. A client of a federation may hold no rows (it then
        reports a count of 0 and gets no further work); ``GMMTree.fit`` needs 1.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features), float64
    """
    where = _where(client)
    X = _as_float_array(X, where)
    if X.ndim != 2:
        hint = " Reshape 1-D data with X.reshape(-1, 1)." if X.ndim == 1 else ""
        raise ValueError(
            f"Data{where} must be a 2-D array (n_samples, n_features), but got "
            f"{X.ndim}-D data of shape {X.shape}.{hint}"
        )
    if X.shape[1] == 0:
        raise ValueError(
            f"Data{where} must have at least one feature (column), but got shape "
            f"{X.shape}."
        )
    if X.shape[0] < min_samples:
        raise ValueError(
            f"Data{where} must have at least {min_samples} row(s), but got shape "
            f"{X.shape}."
        )
    if n_features is not None and X.shape[1] != n_features:
        raise ValueError(
            f"Data{where} has {X.shape[1]} features, but the model expects "
            f"{n_features}."
        )
    for kind, bad in (("NaN", np.isnan(X)), ("infinity", np.isinf(X))):
        if bad.any():
            rows, columns = np.nonzero(bad)
            raise ValueError(
                f"Input X contains {kind}{where} in {_columns(np.unique(columns))} "
                f"({rows.size} value(s), first at row {rows[0]}, column "
                f"{columns[0]}). Remove or impute those values before fitting."
            )
    huge = np.abs(X) > MAX_ABS_VALUE
    if huge.any():
        rows, columns = np.nonzero(huge)
        raise ValueError(
            f"Input X holds {X[rows[0], columns[0]]:.3g}{where} in "
            f"{_columns(np.unique(columns))} (first at row {rows[0]}, column "
            f"{columns[0]}); values beyond +-{MAX_ABS_VALUE:.0e} overflow the second "
            "moments. Rescale those columns first."
        )
    return X


def _nodes_of(arrays, key):
    value = np.asarray(arrays[key])
    if value.dtype.kind not in "iu" or value.ndim != 1:
        raise ValueError(f"{key} must be a 1-D array of ints, but got {value.dtype}")
    return [int(v) for v in value]


def moments_consistency(nk, first, second) -> str | None:
    """Reason why exact moment sums cannot come from any data, or ``None``.

    Sums over the same weighted rows obey Cauchy-Schwarz per component and
    feature: ``first[k, j] ** 2 <= nk[k] * second[k, j, j]``. Statistics with
    privacy noise need not; do not call this on them.
    """
    nk = np.asarray(nk, dtype=np.float64)
    first = np.asarray(first, dtype=np.float64)
    second = np.asarray(second, dtype=np.float64)
    if first.ndim != 2 or nk.shape != (first.shape[0],):
        return None
    diag = np.diagonal(second, axis1=1, axis2=2) if second.ndim == 3 else second
    if diag.shape != first.shape:
        return None
    # negative counts or variances are the growth protocol's to report
    usable = (nk[:, np.newaxis] >= 0) & (diag >= 0)
    bound = nk[:, np.newaxis] * diag
    excess = np.where(usable, first**2 - bound, 0.0)
    slack = _CONSISTENCY_RTOL * (np.abs(first**2) + np.abs(bound)) + 1e-300
    if np.any(excess > slack):
        k, j = (int(i[0]) for i in np.nonzero(excess > slack))
        return (
            f"inconsistent moments: component {k}, feature {j} has first moment "
            f"{first[k, j]:.6g} but count {nk[k]:.6g} and second moment "
            f"{diag[k, j]:.6g} (first**2 must be <= count * second)"
        )
    return None


def check_reply(arrays, asked_nodes=None, exact=True) -> list[tuple[int, str]]:
    """What is wrong with the named arrays of one client's reply, per tree node.

    The server's first look at a reply, before the growth protocol (which checks
    shapes, counts and positive semi-definiteness) reads it: every value must be a
    finite real array, a node may appear only once and only if it was asked for,
    and exact moments must be consistent with one another.

    Parameters
    ----------
    arrays : dict of str to ndarray
        The reply.
    asked_nodes : collection of int, optional
        The tree nodes the client was asked about (None for the root round).
    exact : bool, default=True
        Whether the statistics carry no privacy noise (then their consistency and
        the sign of ``routed.n`` are checked too).

    Returns
    -------
    problems : list of (int, str)
        ``(tree node, reason)``; node -1 means the reply as a whole. Empty when
        the reply may be read.
    """
    problems = []
    for key in sorted(arrays):
        value = np.asarray(arrays[key])
        if value.dtype.kind not in "biuf":
            problems.append((-1, f"field {key!r} is not real numbers ({value.dtype})"))
        elif not np.all(np.isfinite(value)):
            problems.append((-1, f"field {key!r} holds non-finite values"))
    if problems:
        return problems
    if asked_nodes is not None:
        try:
            nodes = _nodes_of(arrays, "reply.nodes")
        except (KeyError, ValueError) as exc:
            return [(-1, f"no readable node list: {exc}")]
        seen = set()
        for node in nodes:
            if node in seen:
                problems.append((node, "node listed twice in reply.nodes"))
            elif node not in asked_nodes:
                problems.append((node, "statistics for a node it was not asked about"))
            seen.add(node)
    if not exact:
        return problems
    if "routed.n" in arrays and np.any(np.asarray(arrays["routed.n"]) < 0):
        problems.append((-1, "negative routed.n"))
    prefixes = sorted(
        {key.rsplit(".", 1)[0] for key in arrays if key.endswith(".first")}
    )
    for prefix in prefixes:
        fields = [f"{prefix}.{name}" for name in ("nk", "first", "second")]
        if not all(field in arrays for field in fields):
            continue
        reason = moments_consistency(*(arrays[field] for field in fields))
        if reason is not None:
            parts = prefix.split(".")
            node = int(parts[1]) if parts[0] == "node" and parts[1].isdigit() else -1
            problems.append((node, f"{prefix}: {reason}"))
    return problems
