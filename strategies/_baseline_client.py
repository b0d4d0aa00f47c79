"""ClientApp handlers of the federated baselines (FedEM, k-FED, FedGenGMM).

:func:`add_baseline_handlers` registers them on any ClientApp, next to the
FedGMMTree handlers. Each handler reads its settings from the message, computes
on the client's training rows and replies with named arrays only: additive
statistics (FedEM), local centres and their counts (k-FED), a local mixture and
the row count (FedGenGMM), or, for evaluation, counts of (cluster, label) pairs
and the held-out log-likelihood. The maths sits in plain functions
(``*_reply``) that take arrays and return arrays, so they are tested without
Flower.

Message types (``"<category>.<action>"``):

========================  ===============================================
``query.global_moments``  one-component statistics (FedEM's first round)
``train.flat_em``         one E-step's statistics (FedEM), or hard ones
``train.kfed``            local k-means centres and counts (k-FED)
``train.fedgengmm``       a local mixture chosen by BIC (FedGenGMM)
``evaluate.mixture``      scores of a flat mixture
``evaluate.centroids``    scores of a nearest-centre labelling
========================  ===============================================
"""

import warnings
from collections.abc import Callable

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, RecordDict
from flwr.clientapp import ClientApp
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

from fedgmmtree._stats import local_moments, mixture_moments, moments_from_resp
from fedgmmtree.metrics import contingency_pairs

from ._baseline_models import Centroids, FlatMixture, client_seed, nearest_centre

INSTRUCTIONS_KEY = "instructions"
CONFIG_KEY = "config"
STATS_KEY = "stats"
CLIENT_KEY = "client"
MODEL_KEY = "model"
EVALUATION_KEY = "evaluation"

GLOBAL_MOMENTS = "query.global_moments"
FLAT_EM = "train.flat_em"
KFED = "train.kfed"
FEDGENGMM = "train.fedgengmm"
EVALUATE_MIXTURE = "evaluate.mixture"
EVALUATE_CENTROIDS = "evaluate.centroids"


def global_moments_reply(X: np.ndarray, config: dict) -> dict[str, np.ndarray]:
    """One-component statistics of the client's rows, around their own mean.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    config : dict
        ``covariance-type``.

    Returns
    -------
    arrays : dict of ndarray
        :class:`fedgmmtree.Moments` fields under the prefix ``"moments"``.
    """
    return local_moments(X, str(config["covariance-type"])).to_arrays("moments")


def flat_em_reply(
    X: np.ndarray, arrays: dict[str, np.ndarray], config: dict
) -> dict[str, np.ndarray]:
    """Statistics of one E-step of a flat mixture, around a centre the server sets.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    arrays : dict of ndarray
        ``moments.center`` of shape (n_features,), and either the mixture
        (``mixture.weights``, ``mixture.means``, ``mixture.covariances``) or,
        when ``config["hard"]`` is true, ``centroids.centres`` of shape
        (n_components, n_features): each row then counts fully for its nearest
        centre, as scikit-learn initialises a mixture from k-means labels.
    config : dict
        ``covariance-type`` and ``hard``.

    Returns
    -------
    arrays : dict of ndarray
        :class:`fedgmmtree.Moments` fields under the prefix ``"moments"``; the
        log-likelihood sum is that of the mixture (0 for hard statistics).
    """
    covariance_type = str(config["covariance-type"])
    center = arrays["moments.center"]
    if config.get("hard", False):
        centres = arrays["centroids.centres"]
        resp = np.zeros((X.shape[0], centres.shape[0]))
        if X.shape[0]:
            resp[np.arange(X.shape[0]), nearest_centre(X, centres)[0]] = 1.0
        moments = moments_from_resp(X, resp, center, covariance_type)
    else:
        mixture = FlatMixture.from_arrays(arrays)
        moments = mixture_moments(
            X,
            center,
            mixture.weights_,
            mixture.means_,
            mixture.covariances_,
            covariance_type,
        )
    return moments.to_arrays("moments")


def _distinct_rows(X: np.ndarray) -> int:
    return int(np.unique(X, axis=0).shape[0]) if X.shape[0] else 0


def kfed_reply(X: np.ndarray, config: dict, client: int) -> dict[str, np.ndarray]:
    """k-FED's local step: k-means with k' clusters on the client's rows.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    config : dict
        ``n-local-clusters`` (k', capped at the client's distinct rows),
        ``n-init`` and ``random-state``.
    client : int
        The client key; the local seed comes from ``(random-state, client)``.

    Returns
    -------
    arrays : dict of ndarray
        ``kfed.centres`` of shape (k', n_features) and ``kfed.counts`` of shape
        (k',), the rows in each local cluster (empty clusters left out).
    """
    n_clusters = min(int(config["n-local-clusters"]), _distinct_rows(X))
    if n_clusters == 0:
        return {
            "kfed.centres": np.zeros((0, X.shape[1])),
            "kfed.counts": np.zeros(0),
        }
    kmeans = KMeans(
        n_clusters=n_clusters,
        n_init=int(config["n-init"]),
        random_state=client_seed(int(config["random-state"]), client),
    ).fit(X)
    counts = np.bincount(kmeans.labels_, minlength=n_clusters).astype(np.float64)
    kept = counts > 0
    return {
        "kfed.centres": kmeans.cluster_centers_[kept],
        "kfed.counts": counts[kept],
    }


def fedgengmm_reply(X: np.ndarray, config: dict, client: int) -> dict[str, np.ndarray]:
    """FedGenGMM's local step: the mixture of lowest BIC over a small range.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    config : dict
        ``max-components`` (candidates 1 .. max, capped at the distinct rows),
        ``covariance-type``, ``reg-covar``, ``n-init`` and ``random-state``.
    client : int
        The client key; the local seed comes from ``(random-state, client)``.

    Returns
    -------
    arrays : dict of ndarray
        ``local.weights`` (k,), ``local.means`` (k, n_features),
        ``local.covariances`` (k, n_features, n_features) or (k, n_features),
        and ``local.n`` (1,), the client's row count (k = 0 without rows).
    """
    covariance_type = str(config["covariance-type"])
    n_features = X.shape[1]
    largest = min(int(config["max-components"]), _distinct_rows(X))
    best, best_bic = None, np.inf
    for n_components in range(1, largest + 1):
        candidate = GaussianMixture(
            n_components=n_components,
            covariance_type=covariance_type,
            reg_covar=float(config["reg-covar"]),
            n_init=int(config["n-init"]),
            random_state=client_seed(int(config["random-state"]), client),
        )
        with warnings.catch_warnings():
            # a local fit that stops at max_iter is still a usable summary
            warnings.simplefilter("ignore", ConvergenceWarning)
            candidate.fit(X)
        bic = candidate.bic(X)
        if bic < best_bic:
            best, best_bic = candidate, bic
    if best is None:
        shape = (
            (0, n_features, n_features)
            if covariance_type == "full"
            else (0, n_features)
        )
        return {
            "local.weights": np.zeros(0),
            "local.means": np.zeros((0, n_features)),
            "local.covariances": np.zeros(shape),
            "local.n": np.array([0.0]),
        }
    return {
        "local.weights": best.weights_,
        "local.means": best.means_,
        "local.covariances": best.covariances_,
        "local.n": np.array([float(X.shape[0])]),
    }


def evaluation_reply(model, data) -> dict[str, np.ndarray]:
    """Counts of (cluster, label) pairs on all the client's rows, held-out scores.

    Parameters
    ----------
    model : FlatMixture or Centroids
    data : ClientData
        ``X_train``, ``y_train``, ``X_test``, ``y_test``.

    Returns
    -------
    arrays : dict of ndarray
        ``pairs.*`` (when the client has labels), ``test.n`` and, for a
        mixture, ``test.loglik`` (the sum of held-out log-densities).
    """
    arrays: dict[str, np.ndarray] = {}
    if data.y_train is not None:
        X_all = np.vstack([data.X_train, data.X_test])
        y_all = np.concatenate([data.y_train, data.y_test])
        arrays.update(contingency_pairs(model.predict(X_all), y_all))
    n_test = data.X_test.shape[0]
    arrays["test.n"] = np.array([n_test])
    if isinstance(model, FlatMixture):
        loglik = float(model.score_samples(data.X_test).sum()) if n_test else 0.0
        arrays["test.loglik"] = np.array([loglik])
    return arrays


def to_record(arrays: dict[str, np.ndarray]) -> ArrayRecord:
    """Named numpy arrays as an ArrayRecord, one key each."""
    return ArrayRecord({key: Array(np.asarray(value)) for key, value in arrays.items()})


def from_record(record: ArrayRecord) -> dict[str, np.ndarray]:
    """An ArrayRecord as named numpy arrays."""
    return {key: value.numpy() for key, value in record.items()}


def _arrays(msg: Message) -> dict[str, np.ndarray]:
    return from_record(msg.content.array_records.get(INSTRUCTIONS_KEY, ArrayRecord()))


def _config(msg: Message) -> dict:
    return dict(msg.content[CONFIG_KEY])


def _reply(msg: Message, key: int, record_key: str, arrays: dict) -> Message:
    content = RecordDict(
        {
            record_key: to_record(arrays),
            CLIENT_KEY: ConfigRecord({"client-key": int(key)}),
        }
    )
    return Message(content=content, reply_to=msg)


def add_baseline_handlers(app: ClientApp, load: Callable) -> ClientApp:
    """Register the baselines' handlers on a ClientApp and return it.

    Parameters
    ----------
    app : ClientApp
        Typically ``fedgmmtree.client_app.make_client_app(load)``; the actions
        used here do not clash with its default ``train`` and ``evaluate``.
    load : callable
        ``load(context) -> (client key, ClientData)``, the same loader the
        ClientApp was made with.

    Returns
    -------
    app : ClientApp
        The same object, for chaining.
    """

    @app.query("global_moments")
    def global_moments(msg: Message, context: Context) -> Message:
        """Statistics of all the client's rows as one Gaussian."""
        key, data = load(context)
        return _reply(
            msg, key, STATS_KEY, global_moments_reply(data.X_train, _config(msg))
        )

    @app.train("flat_em")
    def flat_em(msg: Message, context: Context) -> Message:
        """One E-step of FedEM on the client's rows."""
        key, data = load(context)
        reply = flat_em_reply(data.X_train, _arrays(msg), _config(msg))
        return _reply(msg, key, STATS_KEY, reply)

    @app.train("kfed")
    def kfed(msg: Message, context: Context) -> Message:
        """k-FED's local k-means."""
        key, data = load(context)
        return _reply(msg, key, STATS_KEY, kfed_reply(data.X_train, _config(msg), key))

    @app.train("fedgengmm")
    def fedgengmm(msg: Message, context: Context) -> Message:
        """FedGenGMM's local mixture."""
        key, data = load(context)
        reply = fedgengmm_reply(data.X_train, _config(msg), key)
        return _reply(msg, key, STATS_KEY, reply)

    @app.evaluate("mixture")
    def evaluate_mixture(msg: Message, context: Context) -> Message:
        """Scores of a flat mixture on the client's rows."""
        key, data = load(context)
        model = FlatMixture.from_arrays(_arrays(msg))
        return _reply(msg, key, EVALUATION_KEY, evaluation_reply(model, data))

    @app.evaluate("centroids")
    def evaluate_centroids(msg: Message, context: Context) -> Message:
        """Scores of a nearest-centre labelling on the client's rows."""
        key, data = load(context)
        model = Centroids.from_arrays(_arrays(msg))
        return _reply(msg, key, EVALUATION_KEY, evaluation_reply(model, data))

    return app
