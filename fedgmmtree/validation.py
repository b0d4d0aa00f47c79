"""Checks of a client's data, with errors that say what, where and how to fix."""

import numpy as np

# Squares of larger values overflow the second moments once summed.
MAX_ABS_VALUE = 1e100


def _where(client) -> str:
    return "" if client is None else f" on client {client}"


def check_client_data(X, client=None, n_features=None) -> np.ndarray:
    """Return ``X`` as a 2-D float64 array, or raise a ValueError saying why not.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    client : int or str, optional
        Named in the error messages.
    n_features : int, optional
        The number of features every client must have.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features), float64
    """
    where = _where(client)
    try:
        X = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"Data{where} must be numeric, but got {exc}.") from exc
    if X.ndim != 2:
        raise ValueError(
            f"Data{where} must be a 2-D array (n_samples, n_features), but got "
            f"shape {X.shape}. Reshape 1-D data with X.reshape(-1, 1)."
        )
    if n_features is not None and X.shape[1] != n_features:
        raise ValueError(
            f"Data{where} has {X.shape[1]} features, but the model expects "
            f"{n_features}."
        )
    bad = ~np.isfinite(X)
    if bad.any():
        row, column = (int(i[0]) for i in np.nonzero(bad))
        kind = "NaN" if np.isnan(X[row, column]) else "infinity"
        raise ValueError(
            f"Input X contains {kind}{where} in column {column} (first at row "
            f"{row}). Remove or impute missing values before fitting."
        )
    huge = np.abs(X) > MAX_ABS_VALUE
    if huge.any():
        row, column = (int(i[0]) for i in np.nonzero(huge))
        raise ValueError(
            f"Input X holds {X[row, column]:.3g}{where} in column {column} (row "
            f"{row}); values beyond +-{MAX_ABS_VALUE:.0e} overflow the second "
            "moments. Rescale that column first."
        )
    return X
