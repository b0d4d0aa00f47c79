"""Flower server strategies: ``FedGMMTree`` and the baselines."""

from ._baseline_client import add_baseline_handlers
from ._baseline_models import Centroids, FlatMixture
from .fedem import FedEM
from .fedgengmm import FedGenGMM
from .fedgmmtree import FedGMMTree
from .kfed import KFed

__all__ = [
    "Centroids",
    "FedEM",
    "FedGMMTree",
    "FedGenGMM",
    "FlatMixture",
    "KFed",
    "add_baseline_handlers",
]
